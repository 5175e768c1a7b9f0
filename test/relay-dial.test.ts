// Upstream connections dialled by the addon (relay 'splice' or 'auto'): an upgrade's, whose fd a
// 101 hands to the engine, and a plain request's that sends nothing after its head, whose response
// is read from the dial. No JS socket for the upstream either way. Connect failures, timeouts,
// refused and malformed answers must end exactly as with a JS upstream socket, and leave no descriptor.
import t, { type Test } from 'tap';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { WebSocket, WebSocketServer } from 'ws';
import { nativeRelay } from '../src/relay/index.js';
import {
  closeWss, fdCount, freePort, httpBackend, httpGet, nextMessage, openWs, parseResponse, port, rawBackend, rawExchange, requestKey, respond101,
  respondOnce, startProxy, switchingProtocols, upgradeHead, waitFor, wsEcho, type TestProxy,
} from './support/index.js';

const dialer = nativeRelay()?.dialer ?? null;
if (dialer === null) {
  t.pass('no native dialer in this build (the addon is absent or older): nothing to test here');
} else {
  run(dialer);
}

type D = NonNullable<typeof dialer>;

async function splice(t: Test, servers: string[], extra: object = {}): Promise<{ proxy: TestProxy; codes: string[] }> {
  const proxy = await startProxy({ upstreams: { b: { servers } }, relay: 'splice', ...extra });
  t.teardown(() => proxy.close());
  const codes: string[] = [];
  proxy.on('upstreamError', (e) => codes.push(e.code));
  return { proxy, codes };
}

/** Descriptors back to `base` (the proxy closes what it owns asynchronously). */
async function fdsBack(t: Test, base: number, what: string): Promise<void> {
  await waitFor(() => fdCount() <= base, 3000, `descriptors back to ${base} ${what}`).catch(() => {});
  t.ok(fdCount() <= base, `descriptors ${fdCount()} <= ${base} ${what}`);
}

function run(d: D): void {
  t.test('a ws client and a ws server through a dialled upstream: the tunnel echoes, nothing is left', async (t) => {
    const wss = await wsEcho('native');
    t.teardown(() => closeWss(wss));
    const { proxy } = await splice(t, [`127.0.0.1:${port(wss)}`]);
    const first = await openWs(`ws://127.0.0.1:${port(proxy)}/`); // the engine's thread (and its epoll fds) exist from here on
    const gone = new Promise((r) => first.once('close', r));
    first.close();
    await gone;
    await waitFor(() => proxy.stats().tunnels === 0, 3000, 'the first tunnel ends');
    const base = fdCount();
    const before = d.dialled;
    const ws = await openWs(`ws://127.0.0.1:${port(proxy)}/`);
    const reply = nextMessage(ws);
    ws.send('hello');
    t.equal(await reply, 'hello', 'echoed through the engine');
    t.equal(d.dialled, before + 1, 'the upstream was dialled by the addon');
    const closedWs = new Promise((r) => ws.once('close', r));
    ws.close();
    await closedWs;
    await waitFor(() => proxy.stats().tunnels === 0, 3000, 'the tunnel ends');
    t.equal(d.open, 0, 'no dial left watched');
    await fdsBack(t, base, 'after the tunnel');
  });

  t.test('refused connects: retried on the next backend, then 502 when none is left', async (t) => {
    const dead1 = await freePort();
    const dead2 = await freePort();
    const wss = await wsEcho('alive');
    t.teardown(() => closeWss(wss));
    const ok = await splice(t, [`127.0.0.1:${dead1}`, `127.0.0.1:${port(wss)}`]);
    const ws = await openWs(`ws://127.0.0.1:${port(ok.proxy)}/`);
    const reply = nextMessage(ws);
    ws.send('whoami');
    t.equal(await reply, 'alive', 'the second backend took it');
    t.same(ok.codes, ['WSPLICE_UPSTREAM_CONNECT'], 'the refusal counted once');
    ws.close();
    const none = await splice(t, [`127.0.0.1:${dead1}`, `127.0.0.1:${dead2}`]);
    const base = fdCount();
    const res = parseResponse(await rawExchange(port(none.proxy), upgradeHead(), 3000));
    t.equal(res.status, 502, 'no backend could be reached');
    t.same(none.codes, ['WSPLICE_UPSTREAM_CONNECT', 'WSPLICE_UPSTREAM_CONNECT'], 'each try is one failure');
    const snap = none.proxy.upstreams()[0]!.backends;
    t.ok(snap.every((b) => /ECONNREFUSED/.test(b.lastError ?? '')), 'each backend names its refusal');
    await fdsBack(t, base, 'after the 502');
  });

  t.test('a backend that accepts and never answers: 504 after the response timeout', async (t) => {
    const silent = await rawBackend(() => {});
    t.teardown(() => silent.close());
    const { proxy, codes } = await splice(t, [`127.0.0.1:${silent.port}`], { timeouts: { responseMs: 300 } });
    const base = fdCount();
    const res = parseResponse(await rawExchange(port(proxy), upgradeHead(), 4000));
    t.equal(res.status, 504);
    t.same(codes, ['WSPLICE_UPSTREAM_TIMEOUT']);
    t.match(silent.received[0]?.toString('latin1') ?? '', /^GET \/ HTTP\/1\.1\r\n[\s\S]*\r\n\r\n$/, 'the addon wrote the whole head');
    await waitFor(() => silent.sockets[0]?.readableEnded === true || silent.sockets[0]?.destroyed === true, 3000, 'the proxy closes the upstream');
    await fdsBack(t, base, 'after the 504');
  });

  t.test('a connect that never completes: 504 after the connect timeout', async (t) => {
    // A listener that never accepts: once its backlog is full, the kernel drops SYNs and connect() hangs.
    const py = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => py.kill('SIGKILL'));
    const stuck = await new Promise<number>((r) => py.stdout.once('data', (b: Buffer) => r(Number(b.toString().trim()))));
    const fillers: net.Socket[] = [];
    t.teardown(() => { for (const f of fillers) f.destroy(); });
    for (let i = 0; i < 4; i++) fillers.push(net.connect(stuck, '127.0.0.1').on('error', () => {}));
    await new Promise((r) => setTimeout(r, 200));
    const { proxy, codes } = await splice(t, [`127.0.0.1:${stuck}`], { timeouts: { connectMs: 300 } });
    const before = d.dialled;
    const res = parseResponse(await rawExchange(port(proxy), upgradeHead(), 4000));
    t.equal(res.status, 504);
    t.same(codes, ['WSPLICE_UPSTREAM_TIMEOUT']);
    t.equal(d.dialled, before + 1, 'dialled by the addon');
    t.equal(d.open, 0, 'the dial was closed');
  });

  t.test('a 101 with a wrong Sec-WebSocket-Accept: refused with 502, no tunnel, no descriptor left', async (t) => {
    const bad = await rawBackend(respond101({ head: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n' }));
    t.teardown(() => bad.close());
    const { proxy, codes } = await splice(t, [`127.0.0.1:${bad.port}`]);
    const tunnels: unknown[] = [];
    proxy.on('tunnel', (e) => tunnels.push(e));
    const base = fdCount();
    for (let i = 0; i < 5; i++) {
      const res = parseResponse(await rawExchange(port(proxy), upgradeHead(), 3000));
      t.equal(res.status, 502, `try ${i}: refused`);
    }
    t.equal(tunnels.length, 0, 'never a tunnel');
    t.equal(codes.length, 5, 'each refusal reported');
    t.equal(d.open, 0, 'no dial left watched');
    await fdsBack(t, base, 'after five refused upgrades');
  });

  t.test('frames the backend sends right behind its 101 reach the client', async (t) => {
    // A text frame "early" (unmasked, server to client) in the same write as the 101 head.
    const frame = Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('early')]);
    const be = await rawBackend((sock, data) => {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0 || sock.listenerCount('data') === 0) return;
      sock.removeAllListeners('data');
      sock.write(Buffer.concat([Buffer.from(switchingProtocols(requestKey(data) ?? '')), frame]));
    });
    t.teardown(() => be.close());
    const { proxy } = await splice(t, [`127.0.0.1:${be.port}`]);
    const before = d.dialled;
    // Listening before 'open': the frame is parsed in the same read as the 101.
    const ws = new WebSocket(`ws://127.0.0.1:${port(proxy)}/`);
    const first = new Promise<string>((resolve, reject) => {
      ws.once('message', (m) => resolve(String(m)));
      ws.once('error', reject);
    });
    t.equal(await first, 'early', 'the frame behind the 101 arrived');
    t.equal(d.dialled, before + 1, 'dialled by the addon');
    ws.terminate();
  });

  t.test('a backend that resets the dialled connection: a 502 at once (not the response timeout), no descriptor left', async (t) => {
    const be = await rawBackend((sock) => sock.resetAndDestroy());
    t.teardown(() => be.close());
    const { proxy, codes } = await splice(t, [`127.0.0.1:${be.port}`], { timeouts: { responseMs: 60_000 } });
    const base = fdCount();
    const before = d.dialled;
    const res = parseResponse(await rawExchange(port(proxy), upgradeHead(), 20_000));
    t.equal(res.status, 502, 'the reset answered as a failed upstream');
    t.equal(d.dialled, before + 1, 'dialled by the addon');
    t.ok(codes.length > 0, `an upstream error was reported (${codes.join(', ')})`);
    t.equal(d.open, 0, 'no dial left watched');
    await fdsBack(t, base, 'after the reset');
  });

  t.test('a backend answering 400: relayed as it is, then the connection closes; no descriptor left', async (t) => {
    const body = 'no upgrade here';
    const be = await rawBackend(respondOnce(`HTTP/1.1 400 Bad Request\r\nContent-Length: ${body.length}\r\nX-Backend: yes\r\n\r\n${body}`));
    t.teardown(() => be.close());
    const { proxy } = await splice(t, [`127.0.0.1:${be.port}`]);
    const tunnels: unknown[] = [];
    proxy.on('tunnel', (e) => tunnels.push(e));
    const base = fdCount();
    const text = await rawExchange(port(proxy), upgradeHead() + 'early bytes', 3000);
    const res = parseResponse(text);
    t.equal(res.status, 400, 'the backend status');
    t.equal(res.headers.get('x-backend'), 'yes', 'its headers');
    t.equal(res.body, body, 'its body');
    t.equal(tunnels.length, 0, 'no tunnel');
    t.notMatch(be.received[0]?.toString('latin1') ?? '', /early bytes/, 'early data never reached the backend');
    await fdsBack(t, base, 'after the relayed 400');
  });

  t.test('a large 400 body: relayed whole from the dial', async (t) => {
    const body = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const be = await rawBackend(respondOnce(Buffer.concat([Buffer.from(`HTTP/1.1 400 Bad Request\r\nContent-Length: ${body.length}\r\n\r\n`), body])));
    t.teardown(() => be.close());
    const { proxy } = await splice(t, [`127.0.0.1:${be.port}`]);
    const before = d.dialled;
    const text = await rawExchange(port(proxy), upgradeHead(), 8000);
    const res = parseResponse(text);
    t.equal(res.status, 400);
    t.equal(res.body.length, body.length, 'every body byte');
    t.equal(d.dialled, before + 1, 'dialled by the addon');
  });

  t.test('plain requests: a GET without a body is answered through a dial, a POST with one on a JS socket; nothing is left', async (t) => {
    const be = await httpBackend();
    t.teardown(() => be.close());
    const { proxy } = await splice(t, [`127.0.0.1:${be.port}`]);
    const agent = { agent: false as const };
    await httpGet(port(proxy), '/warm', agent); // the proxy's lazily made parts exist from here on
    await waitFor(() => d.open === 0, 3000, 'the first dial closes');
    const base = fdCount();
    const before = d.dialled;
    const got = await httpGet(port(proxy), '/a?x=1', agent);
    t.equal(got.status, 200);
    t.equal(got.body, 'GET /a?x=1 ', 'the backend answer, whole');
    t.equal(d.dialled, before + 1, 'the GET was dialled by the addon');
    const posted = await httpGet(port(proxy), '/b', { ...agent, method: 'POST', headers: { 'content-type': 'text/plain' } }, 'payload');
    t.equal(posted.body, 'POST /b payload', 'the POST and its body reached the backend');
    t.equal(d.dialled, before + 1, 'a request with a body goes on a JS socket');
    const js = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${be.port}`] } }, relay: 'js' });
    t.teardown(() => js.close());
    t.equal((await httpGet(port(js), '/c', agent)).body, 'GET /c ', 'relay js answers the GET');
    t.equal(d.dialled, before + 1, 'relay js dials nothing in the addon');
    await waitFor(() => d.open === 0, 3000, 'the dial leaves the set once the backend closes');
    t.equal(d.open, 0, 'no dial left watched');
    await js.close();
    await fdsBack(t, base, 'after the plain requests');
  });

  t.test('a paused dial reads nothing until it is resumed', async (t) => {
    const reply = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
    const be = await rawBackend((sock, data) => { if (data.includes('\r\n\r\n')) sock.write(reply); });
    t.teardown(() => be.close());
    const seen: string[] = [];
    const u = d.dial('127.0.0.1', be.port, Buffer.from('GET / HTTP/1.1\r\nhost: x\r\n\r\n'), {
      dialConnected: (up) => { up.pause(); seen.push('connected'); },
      dialData: (_u, b) => seen.push(b.toString('latin1')),
      dialEnded: () => seen.push('end'),
      dialFailed: (_u, code) => seen.push(code),
    });
    t.ok(u !== null, 'dialled');
    t.teardown(() => u?.destroy());
    await waitFor(() => (be.sockets[0]?.bytesWritten ?? 0) >= reply.length, 3000, 'the backend sent its reply');
    await new Promise((r) => setTimeout(r, 150)); // turns of the loop in which a dial that still read would have
    t.same(seen, ['connected'], 'nothing read while paused');
    u!.resume();
    await waitFor(() => seen.length > 1, 3000, 'the reply is read once resumed');
    t.same(seen, ['connected', reply], 'the reply, whole, after the resume');
  });

  t.test('a backend closing before its response head: 502, as with a JS socket', async (t) => {
    const be = await rawBackend((sock, data) => { if (data.includes('\r\n\r\n')) sock.end(); });
    t.teardown(() => be.close());
    const { proxy, codes } = await splice(t, [`127.0.0.1:${be.port}`]);
    const res = parseResponse(await rawExchange(port(proxy), upgradeHead(), 3000));
    t.equal(res.status, 502);
    t.same(codes, ['WSPLICE_UPSTREAM_CLOSED']);
    t.equal(d.open, 0, 'no dial left watched');
  });

  t.test('early data behind the upgrade head reaches a ws server once the tunnel is up', async (t) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    t.teardown(() => closeWss(wss));
    const got = new Promise<string>((r) => wss.once('connection', (ws) => ws.once('message', (m) => r(String(m)))));
    const { proxy } = await splice(t, [`127.0.0.1:${port(wss)}`]);
    // A masked text frame "hi" right behind the head, in the same write.
    const mask = [1, 2, 3, 4];
    const payload = Buffer.from('hi').map((b, i) => b ^ mask[i % 4]!);
    const s = net.connect(port(proxy), '127.0.0.1');
    s.on('error', () => {});
    t.teardown(() => s.destroy());
    s.write(Buffer.concat([Buffer.from(upgradeHead()), Buffer.from([0x81, 0x82, ...mask]), payload]));
    t.equal(await got, 'hi', 'the early frame went upstream after the 101');
  });
  t.test('a dial in progress keeps a process alive, and none left lets it exit', async (t) => {
    // The backend answers only after 300 ms: a process whose dial did not hold the loop would exit first.
    const be = await rawBackend((sock, data) => {
      if (data.includes('\r\n\r\n')) setTimeout(() => sock.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'), 300);
    });
    t.teardown(() => be.close());
    const script = [
      `import { nativeRelay } from ${JSON.stringify(new URL('../dist/src/relay/index.js', import.meta.url).href)};`,
      'const seen = [];',
      'process.on("exit", () => console.log(seen.join(",")));',
      'const up = nativeRelay().dialer.dial("127.0.0.1", Number(process.argv[1]), Buffer.from("GET / HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n"), {',
      '  dialConnected: () => seen.push("connected"),',
      '  dialData: (_u, b) => seen.push(b.toString("latin1").split("\\r\\n")[0]),',
      '  dialEnded: () => { seen.push("end"); up.destroy(); },',
      '  dialFailed: (_u, code) => seen.push(code),',
      '});',
    ].join('\n');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, String(be.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    t.teardown(() => { clearTimeout(killer); child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
    t.equal(signal, null, 'it exited on its own, not killed after 10 s');
    t.equal(code, 0);
    t.equal(out.trim(), 'connected,HTTP/1.1 400 Bad Request,end', 'the answer came before the exit');
  });
}
