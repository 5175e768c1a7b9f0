// Recipe: a plain node:http (and https) server hands its upgrades to proxy.ws. The `ws` package
// is the client and the server; the upstream sees the head forwarded by wsplice's own rules.
import http from 'node:http';
import t from 'tap';
import { WebSocket } from 'ws';
import { createProxy } from '../../src/index.js';
import { TestPki } from '../edge/fixtures/certs.js';
import {
  EXAMPLE_KEY as KEY, closeWss, connect, fdCount, nextMessage, openWs, parseResponse, port, rawBackend, readAll, respond101,
  respondOnce, upgradeHead, waitFor, wsEcho,
} from '../support/index.js';
import { upgradeServer } from './fixtures/servers.js';

t.test('http server + proxy.ws: ws client and ws server echo text and binary; the call resolves once the tunnel is open', async (t) => {
  const wss = await wsEcho('one');
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  const app = await upgradeServer(proxy);
  t.teardown(async () => { await proxy.close(); await app.close(); await closeWss(wss); });
  const tunnels: string[] = [];
  proxy.on('tunnel', (e) => tunnels.push(e.backend));
  const ws = await openWs(`ws://127.0.0.1:${app.port}/chat`);
  const got: Buffer[] = [];
  ws.on('message', (d) => got.push(d as Buffer));
  ws.send('hello');
  const big = Buffer.alloc(300_000, 7);
  ws.send(big);
  await waitFor(() => got.length === 2, 5000, 'two echoes');
  t.equal(got[0]!.toString(), 'hello');
  t.ok(got[1]!.equals(big), 'binary echoed byte for byte');
  await waitFor(() => app.settled.length === 1, 5000, 'the call to settle');
  const s = app.settled[0]!;
  t.ok(s.ok && s.value.upgraded, 'resolved: upgraded');
  // auto: a plain TCP socket and an IP backend run on splice from the 101 when the addon is built.
  t.equal(s.ok ? s.value.relay : null, proxy.relayKind, "the proxy's relay carries it (auto: splice with the addon, else js)");
  t.same(tunnels, [`127.0.0.1:${port(wss)}`], 'the tunnel event fires as for a listener');
  t.equal(proxy.stats().tunnels, 1);
  const closed = new Promise((r) => proxy.once('tunnelClose', r));
  ws.close(1000);
  await closed;
});

t.test('the splice relay carries a tunnel from a handed plain TCP socket', { skip: createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } } }).relayKind !== 'splice' && 'native relay not built' }, async (t) => {
  const wss = await wsEcho('one');
  const proxy = createProxy({ relay: 'splice', upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  const app = await upgradeServer(proxy);
  t.teardown(async () => { await proxy.close(); await app.close(); await closeWss(wss); });
  const ws = await openWs(`ws://127.0.0.1:${app.port}/`);
  const big = Buffer.alloc(1 << 20, 3);
  const reply = nextMessage(ws);
  ws.send(big);
  t.equal((await reply).length, big.length, '1 MiB echoed');
  await waitFor(() => app.settled.length === 1, 5000, 'the call to settle');
  t.same(app.settled[0], { ok: true, value: { upgraded: true, relay: 'splice' } });
  ws.terminate();
});

t.test('early data in head reaches the upstream after the 101, in order; the forwarded head follows the listener rules', async (t) => {
  const backend = await rawBackend(respond101({ after: 'down|' }));
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  const app = await upgradeServer(proxy);
  t.teardown(async () => { await proxy.close(); await app.close(); await backend.close(); });
  const s = await connect(app.port);
  const reply = readAll(s, 3000);
  s.write(upgradeHead('/chat', 'Proxy-Connection: keep-alive\r\nX-Forwarded-For: 10.0.0.1\r\n', KEY) + 'early|');
  await waitFor(() => backend.received.length === 1 && backend.received[0]!.includes('early|'), 5000, 'early data upstream');
  backend.sockets[0]!.end();
  const text = (await reply).toString('latin1');
  s.destroy();
  t.match(text, /^HTTP\/1\.1 101 /);
  t.ok(text.endsWith('down|'), 'the bytes behind the 101 reached the client');
  const up = backend.received[0]!.toString('latin1');
  t.match(up, /^GET \/chat HTTP\/1\.1\r\nHost: example\.test\r\n/, 'request line and Host first');
  t.notMatch(up, /proxy-connection/i, 'hop-by-hop header removed');
  t.match(up, /\r\nX-Forwarded-For: 10\.0\.0\.1, 127\.0\.0\.1\r\n/, 'X-Forwarded-For appended');
  t.match(up, /\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nearly\|$/, 'upgrade tokens, then the early data');
});

t.test('refusals answer on the socket as a listener does, and reject with the code', async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 500 x\r\nContent-Length: 0\r\n\r\n'));
  const proxy = createProxy({
    upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] }, down: { servers: ['127.0.0.1:1'] } },
    routes: [{ path: '/chat', upstream: 'b' }, { path: '/down', upstream: 'down' }],
  });
  const app = await upgradeServer(proxy);
  t.teardown(async () => { await proxy.close(); await app.close(); await backend.close(); });
  const cases: Array<[string, string, number, string]> = [
    ['no route', upgradeHead('/nowhere'), 404, 'WSPLICE_NO_ROUTE'],
    ['bad version', upgradeHead('/chat').replace('Version: 13', 'Version: 8'), 426, 'WSPLICE_WS_VERSION'],
    ['key not 16 bytes', upgradeHead('/chat', '', Buffer.alloc(15).toString('base64')), 400, 'WSPLICE_BAD_HANDSHAKE'],
    ['upstream down', upgradeHead('/down'), 502, 'WSPLICE_UPSTREAM_CONNECT'],
  ];
  for (const [name, head, status, code] of cases) {
    const n = app.settled.length;
    const s = await connect(app.port);
    const reply = readAll(s, 3000);
    s.write(head);
    const res = parseResponse((await reply).toString('latin1'));
    s.destroy();
    t.equal(res.status, status, `${name}: ${status}`);
    await waitFor(() => app.settled.length === n + 1, 5000, 'the call to settle');
    const r = app.settled[n]!;
    t.equal(r.ok ? 'resolved' : r.error.code, code, `${name}: rejected with ${code}`);
  }
  t.equal(backend.received.length, 0, 'no refused request reached the upstream');
});

t.test('options.target, changeOrigin, headers and xfwd for one call', async (t) => {
  const backend = await rawBackend(respond101());
  const proxy = createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } } });
  const app = await upgradeServer(proxy, { target: `ws://127.0.0.1:${backend.port}`, changeOrigin: true, xfwd: false, headers: { 'X-Via': 'app' } });
  t.teardown(async () => { await proxy.close(); await app.close(); await backend.close(); });
  const ws = await openWs(`ws://127.0.0.1:${app.port}/x`);
  ws.terminate();
  const up = backend.received[0]!.toString('latin1');
  t.match(up, new RegExp(`^GET /x HTTP/1\\.1\\r\\nHost: 127\\.0\\.0\\.1:${backend.port}\\r\\n`), 'Host is the target');
  t.notMatch(up, /x-forwarded/i, 'no X-Forwarded-* with xfwd: false');
  t.match(up, /\r\nX-Via: app\r\n/, 'header set');
});

t.test('an upstream that answers without switching: its answer is relayed, the call resolves upgraded: false', async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno'));
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  const app = await upgradeServer(proxy);
  t.teardown(async () => { await proxy.close(); await app.close(); await backend.close(); });
  const s = await connect(app.port);
  const reply = readAll(s, 3000);
  s.write(upgradeHead('/'));
  const res = parseResponse((await reply).toString('latin1'));
  t.equal(res.status, 403);
  t.equal(res.headers.get('connection'), 'close', 'the connection ends after it');
  s.destroy();
  await waitFor(() => app.settled.length === 1, 5000, 'the call to settle');
  t.same(app.settled[0], { ok: true, value: { upgraded: false, relay: null } });
});

t.test('https server + proxy.ws: wss through the app, ws upstream', async (t) => {
  const pki = new TestPki();
  const leaf = pki.leaf('leaf', ['127.0.0.1']);
  const wss = await wsEcho('tls');
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  const app = await upgradeServer(proxy, undefined, { cert: pki.read(leaf.cert), key: pki.read(leaf.key) });
  t.teardown(async () => { await proxy.close(); await app.close(); await closeWss(wss); pki.cleanup(); });
  const backendHeads: http.IncomingHttpHeaders[] = [];
  wss.on('headers', (_h, req) => backendHeads.push(req.headers));
  const ws = new WebSocket(`wss://127.0.0.1:${app.port}/`, { ca: pki.read(pki.ca.cert) });
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  const reply = nextMessage(ws);
  ws.send('whoami');
  t.equal(await reply, 'tls');
  t.equal(backendHeads[0]?.['x-forwarded-proto'], 'https', 'X-Forwarded-Proto says https');
  await waitFor(() => app.settled.length === 1, 5000, 'the call to settle');
  t.same(app.settled[0], { ok: true, value: { upgraded: true, relay: 'js' } }, 'a TLS socket stays on the JS relay');
  ws.terminate();
});

t.test('proxy.close() ends embedded tunnels; no descriptor is left behind', async (t) => {
  const wss = await wsEcho();
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } }, timeouts: { drainMs: 200 } });
  const app = await upgradeServer(proxy);
  t.teardown(async () => { await app.close(); await closeWss(wss); });
  const before = fdCount();
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await openWs(`ws://127.0.0.1:${app.port}/`));
  await waitFor(() => proxy.stats().tunnels === 5, 5000, 'five tunnels');
  const closes = clients.map((c) => new Promise((r) => c.once('close', r)));
  await proxy.close();
  await Promise.all(closes);
  t.equal(proxy.stats().tunnels, 0);
  await waitFor(() => fdCount() <= before, 5000, 'descriptors back to where they were');
  t.pass('no leak');
});
