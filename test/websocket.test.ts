import t from 'tap';
import { WebSocket } from 'ws';
import { acceptFor, createProxy } from '../src/index.js';
import {
  EXAMPLE_ACCEPT as ACCEPT, EXAMPLE_KEY as KEY, FRONTS, closeWss, connect, frontPort, nextMessage, openWs, parseResponse, port, rawBackend,
  rawExchange, readAll, respond101, respondOnce, startProxy, upgradeHead, waitFor, wsEcho,
} from './support/index.js';

t.test('acceptFor computes the RFC 6455 example accept value', async (t) => {
  t.equal(acceptFor(KEY), ACCEPT);
});

t.test('ws client and ws server echo text and binary through the proxy', async (t) => {
  const wss = await wsEcho('one');
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  t.teardown(async () => { await proxy.close(); await closeWss(wss); });
  const opened: string[] = [];
  proxy.on('tunnel', (e) => opened.push(e.backend));
  const ws = await openWs(`ws://127.0.0.1:${port(proxy)}/chat`);
  const got: Array<{ data: Buffer; binary: boolean }> = [];
  ws.on('message', (data, binary) => got.push({ data: data as Buffer, binary }));
  ws.send('hello');
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  ws.send(big);
  await waitFor(() => got.length === 2, 5000, 'two echoes');
  t.equal(got[0]!.data.toString(), 'hello');
  t.equal(got[0]!.binary, false);
  t.ok(got[1]!.binary && got[1]!.data.equals(big), 'binary echoed byte for byte');
  t.same(opened, [`127.0.0.1:${port(wss)}`]);
  const closed = new Promise<{ bytesUp: number; bytesDown: number }>((r) => proxy.once('tunnelClose', r));
  ws.close(1000);
  const stats = await closed;
  t.ok(stats.bytesUp > 300_000 && stats.bytesDown > 300_000, 'byte counters cover both ways');
});

t.test('client frames pipelined behind the upgrade head reach the upstream after the handshake, in order', async (t) => {
  const wss = await wsEcho();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  t.teardown(async () => { await proxy.close(); await closeWss(wss); });
  const s = await connect(port(proxy));
  // A masked text frame "early" right behind the head, in the same write.
  const mask = Buffer.from([1, 2, 3, 4]);
  const payload = Buffer.from('early');
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
  const reply = readAll(s, 1500);
  s.write(Buffer.concat([Buffer.from(upgradeHead('/', '', KEY)), frame]));
  const out = await reply;
  s.destroy();
  const text = out.toString('latin1');
  t.match(text, /^HTTP\/1\.1 101 /);
  t.match(text, new RegExp(`Sec-WebSocket-Accept: ${ACCEPT.replace(/[+/]/g, '\\$&')}`, 'i'));
  const body = out.subarray(out.indexOf('\r\n\r\n') + 4);
  t.same([...body.subarray(0, 2)], [0x81, 5], 'an unmasked text frame of 5 bytes came back');
  t.equal(body.subarray(2, 7).toString(), 'early');
});

t.test('upstream bytes sent right behind its 101 reach the client', async (t) => {
  const backend = await rawBackend(respond101({ after: Buffer.from([0x81, 0x02, 0x68, 0x69]) })); // "hi"
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const ws = new WebSocket(`ws://127.0.0.1:${port(proxy)}/`);
  t.equal(await nextMessage(ws), 'hi');
  ws.terminate();
});

for (const front of FRONTS) t.test(`${front}: client handshake refusals, before any upstream is touched`, async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 500 x\r\nContent-Length: 0\r\n\r\n'));
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  const p = await frontPort(proxy, front);
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const base = 'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n';
  const cases: Array<[string, string, number, RegExp]> = [
    ['missing key', `${base}Sec-WebSocket-Version: 13\r\n\r\n`, 400, /Sec-WebSocket-Key/],
    ['key of 15 bytes', `${base}Sec-WebSocket-Key: ${Buffer.alloc(15).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`, 400, /16 base64/],
    ['key not base64', `${base}Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\nSec-WebSocket-Version: 13\r\n\r\n`, 400, /16 base64/],
    ['two keys', `${base}Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`, 400, /more than one/],
    ['version 8', `${base}Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 8\r\n\r\n`, 426, /Version/],
    ['no version', `${base}Sec-WebSocket-Key: ${KEY}\r\n\r\n`, 426, /Version/],
    ['two versions', `${base}Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n\r\n`, 426, /Version/],
    ['a body', `${base}Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\nabc`, 400, /body/],
    ['no Host', `GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`, 400, /Host/],
  ];
  for (const [name, req, status, reason] of cases) {
    const res = parseResponse(await rawExchange(p, req));
    t.equal(res.status, status, `${name} -> ${status}`);
    // Node's own parser refuses a head without Host before any 'upgrade' event: its 400 has no reason.
    if (front === 'listener' || name !== 'no Host') t.match(res.body, reason, `${name}: the reason is given`);
    if (status === 426) t.equal(res.headers.get('sec-websocket-version'), '13', `${name}: 426 names version 13`);
    t.equal(res.headers.get('connection'), 'close');
  }
  t.equal(backend.received.length, 0, 'the upstream never saw a connection');
});

t.test('a 101 with a wrong Sec-WebSocket-Accept becomes 502 and never a tunnel', async (t) => {
  const backend = await rawBackend(respond101({
    head: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n',
  }));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const errors: string[] = [];
  proxy.on('upstreamError', (e) => errors.push(e.reason));
  const s = await connect(port(proxy));
  const reply = readAll(s, 3000);
  s.write(upgradeHead());
  s.write('GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n');
  const res = parseResponse((await reply).toString('latin1'));
  t.equal(res.status, 502);
  t.match(errors.join(), /Sec-WebSocket-Accept does not match/);
  t.notMatch(backend.received.join(''), /smuggled/, 'no client byte after the head reached the upstream');
  t.equal(proxy.stats().tunnelsTotal, 0);
});

t.test('other 101 defects are refused with 502', async (t) => {
  const defects: Array<[string, (key: string) => string]> = [
    ['Upgrade is another protocol', (k) => `Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(k)}\r\n`],
    ['Connection lacks upgrade', (k) => `Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: ${acceptFor(k)}\r\n`],
    ['no accept', () => 'Upgrade: websocket\r\nConnection: Upgrade\r\n'],
    ['two accepts', (k) => `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(k)}\r\nSec-WebSocket-Accept: ${acceptFor(k)}\r\n`],
    ['subprotocol not offered', (k) => `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(k)}\r\nSec-WebSocket-Protocol: evil\r\n`],
    ['extension not offered', (k) => `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(k)}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n`],
  ];
  for (const [name, headers] of defects) {
    const backend = await rawBackend(respond101({ head: (key) => `HTTP/1.1 101 Switching Protocols\r\n${headers(key)}\r\n` }));
    const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
    const res = parseResponse(await rawExchange(port(proxy), upgradeHead('/', 'Sec-WebSocket-Protocol: chat\r\n'), 3000));
    t.equal(res.status, 502, name);
    await proxy.close();
    await backend.close();
  }
});

t.test('a selected subprotocol the client offered passes, with Set-Cookie, unchanged', async (t) => {
  const backend = await rawBackend(respond101({ head: 'Sec-WebSocket-Protocol: chat\r\nSet-Cookie: a=b\r\n' }));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const ws = new WebSocket(`ws://127.0.0.1:${port(proxy)}/`, ['superchat', 'chat']);
  const headers = await new Promise<Record<string, string | string[] | undefined>>((r, j) => {
    ws.once('upgrade', (res) => r(res.headers));
    ws.once('error', j);
  });
  t.equal(headers['sec-websocket-protocol'], 'chat');
  t.same(headers['set-cookie'], ['a=b']);
  ws.terminate();
});

t.test('a non-101 answer to an upgrade is relayed as a response and the connection never becomes a tunnel', async (t) => {
  for (const status of ['426 Upgrade Required', '200 OK', '302 Found']) {
    const backend = await rawBackend(respondOnce(`HTTP/1.1 ${status}\r\nContent-Length: 4\r\nLocation: /x\r\n\r\nnope`));
    const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
    const s = await connect(port(proxy));
    const reply = readAll(s, 3000);
    s.write(upgradeHead());
    await waitFor(() => backend.received.length === 1 && backend.received[0]!.includes('\r\n\r\n'), 3000, 'head upstream');
    // The client now pretends the tunnel is open and smuggles a request.
    s.write('GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n');
    const text = (await reply).toString('latin1');
    const res = parseResponse(text);
    t.equal(res.status, Number(status.slice(0, 3)), `${status} relayed`);
    t.equal(res.body, 'nope', 'its body too');
    t.equal(res.headers.get('connection'), 'close', 'and the client connection closes');
    t.equal(backend.received.length, 1, 'one upstream connection only');
    t.notMatch(backend.received[0]!.toString('latin1'), /admin/, 'the smuggled request never reached the upstream');
    t.equal(proxy.stats().tunnelsTotal, 0);
    await proxy.close();
    await backend.close();
  }
});

t.test('an HTTP/1.0 upgrade request is served as plain HTTP, not tunnelled', async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = parseResponse(await rawExchange(port(proxy),
    `GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
  t.equal(res.status, 200);
  const seen = backend.received[0]!.toString('latin1');
  t.match(seen, /\r\nConnection: close\r\n/);
  t.notMatch(seen, /\r\nUpgrade:/i, 'Upgrade stripped');
});

t.test('Upgrade: h2c is stripped and the request proxied as plain HTTP', async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = parseResponse(await rawExchange(port(proxy),
    'GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n'));
  t.equal(res.status, 200);
  const seen = backend.received[0]!.toString('latin1');
  t.notMatch(seen, /upgrade|http2-settings/i, 'Upgrade and the Connection-named header removed');
});

t.test('a generic protocol on the allow-list is tunnelled', async (t) => {
  const backend = await rawBackend((sock, data) => {
    if (!(sock as unknown as { done?: boolean }).done && data.includes('\r\n\r\n')) {
      (sock as unknown as { done?: boolean }).done = true;
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n');
      return;
    }
    if ((sock as unknown as { done?: boolean }).done && data.toString().endsWith('ping')) sock.write('pong');
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, tunnelProtocols: ['foo'] });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 1500);
  s.write('GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n');
  await waitFor(() => backend.received.length === 1, 2000);
  await new Promise((r) => setTimeout(r, 100));
  s.write('ping');
  const text = (await reply).toString();
  s.destroy();
  t.match(text, /^HTTP\/1\.1 101/);
  t.match(text, /pong$/);
  t.match(backend.received[0]!.toString(), /\r\nUpgrade: foo\r\n/);
});

t.test('early data over the cap closes the connection and none of it reaches the upstream', async (t) => {
  // An upstream that takes its time to answer the upgrade.
  const backend = await rawBackend(() => {});
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, limits: { maxEarlyDataBytes: 1024 } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const codes: string[] = [];
  proxy.on('refused', (e) => codes.push(e.code));
  const s = await connect(port(proxy));
  const reply = readAll(s, 3000);
  s.write(upgradeHead());
  s.write(Buffer.alloc(4096, 0x61));
  await reply;
  t.same(codes, ['WSPLICE_EARLY_DATA_OVERFLOW']);
  t.ok(s.destroyed || s.readableEnded, 'the client connection was closed');
  await new Promise((r) => setTimeout(r, 200));
  t.notMatch(backend.received.map((b) => b.toString('latin1')).join(''), /aaaa/, 'no early byte reached the upstream');
});
