import diagnostics from 'node:diagnostics_channel';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { WebSocket } from 'ws';
import { createProxy } from '../src/index.js';
import {
  closeWss, connect, nextMessage, openWs, parseResponse, port, rawBackend, rawExchange, readAll, requestKey, respond101,
  startProxy, switchingProtocols, upgradeHead, whoami, wsEcho,
} from './support/index.js';

t.test('handleConnection serves sockets accepted by the app\'s own net.Server', async (t) => {
  const wss = await wsEcho('own');
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  const server = net.createServer({ allowHalfOpen: true }, proxy.handleConnection);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(async () => { await proxy.close(); server.close(); await closeWss(wss); });
  const ws = await openWs(`ws://127.0.0.1:${port(server)}/`);
  t.equal(await whoami(ws), 'own');
  ws.terminate();
});

t.test('several listeners serve the same routes', async (t) => {
  const wss = await wsEcho('multi');
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => { await proxy.close(); await closeWss(wss); });
  const ports = proxy.addresses().map((a) => (a as AddressInfo).port);
  t.equal(ports.length, 2);
  for (const p of ports) {
    (await openWs(`ws://127.0.0.1:${p}/`)).close();
  }
});

const v6 = net.createServer((s) => s.on('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6')));
const hasV6 = await new Promise<boolean>((r) => {
  v6.once('error', () => r(false));
  v6.listen(0, '::1', () => r(true));
});

t.test('IPv6 upstreams ([::1]:port)', { skip: hasV6 ? false : 'no IPv6 loopback on this machine' }, async (t) => {
  const proxy = await startProxy({ upstreams: { b: { servers: [`[::1]:${(v6.address() as AddressInfo).port}`] } } });
  t.teardown(async () => { await proxy.close(); v6.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
  t.equal(res.body, 'v6');
});
if (!hasV6) v6.close();

t.test('framing headers on a 101 are ignored: bytes after it are tunnel bytes', async (t) => {
  const backend = await rawBackend(respond101({ head: 'Content-Length: 2\r\n', after: Buffer.from([0x81, 0x05, ...Buffer.from('frame')]) }));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const ws = new WebSocket(`ws://127.0.0.1:${port(proxy)}/`);
  t.equal(await nextMessage(ws), 'frame');
  ws.terminate();
});

t.test('close() lets an exchange in flight finish, then refuses new connections', async (t) => {
  const backend = await rawBackend((sock, data) => {
    if (data.includes('\r\n\r\n')) setTimeout(() => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate'), 300);
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(() => backend.close());
  const p = port(proxy);
  const s = await connect(p);
  const reply = readAll(s, 3000);
  s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
  await new Promise((r) => setTimeout(r, 50));
  const closed = proxy.close();
  const res = parseResponse((await reply).toString());
  t.equal(res.status, 200);
  t.equal(res.body, 'late');
  t.equal(res.headers.get('connection'), 'close', 'a draining proxy does not keep the connection');
  await closed;
  await t.rejects(connect(p), 'the listener is gone');
});

t.test('close() ends tunnels still open after drainMs', async (t) => {
  const wss = await wsEcho();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } }, timeouts: { drainMs: 200 } });
  t.teardown(() => closeWss(wss));
  const reasons: string[] = [];
  proxy.on('tunnelClose', (e) => reasons.push(e.reason));
  const ws = await openWs(`ws://127.0.0.1:${port(proxy)}/`);
  const gone = new Promise((r) => ws.once('close', r));
  await proxy.close();
  await gone;
  t.same(reasons, ['shutdown']);
});

t.test('events are published on diagnostics_channel', async (t) => {
  const wss = await wsEcho();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } } });
  t.teardown(async () => { await proxy.close(); await closeWss(wss); });
  const seen: string[] = [];
  const subs: Array<[string, (m: unknown) => void]> = ['wsplice:connection', 'wsplice:request', 'wsplice:tunnel-open', 'wsplice:tunnel-close', 'wsplice:refused']
    .map((name) => [name, () => seen.push(name)]);
  for (const [name, fn] of subs) diagnostics.subscribe(name, fn);
  t.teardown(() => { for (const [name, fn] of subs) diagnostics.unsubscribe(name, fn); });
  const ws = await openWs(`ws://127.0.0.1:${port(proxy)}/`);
  const closed = new Promise((r) => proxy.once('tunnelClose', r));
  ws.close();
  await closed;
  await rawExchange(port(proxy), upgradeHead('/', '', 'short'));
  t.same(seen, ['wsplice:connection', 'wsplice:request', 'wsplice:tunnel-open', 'wsplice:tunnel-close', 'wsplice:connection', 'wsplice:refused']);
});

t.test('limits.maxConnections closes connections past the limit at accept', async (t) => {
  const wss = await wsEcho();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } }, limits: { maxConnections: 2 } });
  t.teardown(async () => { await proxy.close(); await closeWss(wss); });
  const open: WebSocket[] = [];
  for (let i = 0; i < 2; i++) {
    const ws = await openWs(`ws://127.0.0.1:${port(proxy)}/`);
    open.push(ws);
  }
  const third = new WebSocket(`ws://127.0.0.1:${port(proxy)}/`);
  const outcome = await new Promise<string>((r) => { third.once('open', () => r('open')); third.once('error', () => r('refused')); });
  t.equal(outcome, 'refused', 'the third is closed');
  t.equal(proxy.stats().tunnels, 2);
  open[0]!.close();
  await new Promise((r) => proxy.once('tunnelClose', r));
  const fourth = await openWs(`ws://127.0.0.1:${port(proxy)}/`);
  t.pass('a slot freed: the next one is served');
  for (const ws of [open[1]!, fourth]) ws.terminate();
});

t.test('a 101 head that arrives in pieces reaches the client whole and unchanged', async (t) => {
  let head = '';
  const backend = await rawBackend((sock, data) => {
    const s = sock as net.Socket & { done?: boolean };
    if (s.done || !data.includes('\r\n\r\n')) return;
    s.done = true;
    head = switchingProtocols(requestKey(data)!, 'X-Split: yes\r\n');
    sock.write(head.slice(0, 40));
    setTimeout(() => sock.write(head.slice(40)), 50);
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 500);
  s.write(upgradeHead());
  const text = (await reply).toString('latin1');
  s.destroy();
  t.equal(text, head);
});
