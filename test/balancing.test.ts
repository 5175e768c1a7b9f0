import t from 'tap';
import { UpstreamGroup, parseAddress } from '../src/upstream/group.js';
import { closeWss, openWs, parseResponse, port, rawBackend, rawExchange, startProxy, whoami, wsEcho } from './support/index.js';

t.test('smooth weighted round-robin interleaves by weight (5:1:1 -> a a b a c a a)', async (t) => {
  const g = new UpstreamGroup('g', [
    { address: { kind: 'tcp', host: 'a', port: 1 }, weight: 5 },
    { address: { kind: 'tcp', host: 'b', port: 1 }, weight: 1 },
    { address: { kind: 'tcp', host: 'c', port: 1 }, weight: 1 },
  ]);
  const order = Array.from({ length: 14 }, () => g.pick().label[0]).join('');
  t.equal(order, 'aabacaaaabacaa');
});

t.test('a failed backend is skipped for fail_timeout, unless all are down', async (t) => {
  const g = new UpstreamGroup('g', [
    { address: { kind: 'tcp', host: 'a', port: 1 }, weight: 1 },
    { address: { kind: 'tcp', host: 'b', port: 1 }, weight: 1 },
  ], 1, 1000);
  const now = 1_000_000;
  const a = g.backends[0]!;
  g.fail(a, now);
  t.same([g.pick(now).label, g.pick(now).label, g.pick(now).label], ['b:1', 'b:1', 'b:1']);
  t.equal(g.pick(now + 1001).label[0] === 'a' || g.pick(now + 1001).label[0] === 'a', true, 'back after fail_timeout');
  g.fail(g.backends[0]!, now);
  g.fail(g.backends[1]!, now);
  t.ok(g.pick(now), 'all down: still picks one rather than refusing');
});

t.test('addresses: host:port, [v6]:port, unix:/path; malformed ones refused', async (t) => {
  t.same(parseAddress('127.0.0.1:80'), { kind: 'tcp', host: '127.0.0.1', port: 80 });
  t.same(parseAddress('[::1]:8080'), { kind: 'tcp', host: '::1', port: 8080 });
  t.same(parseAddress('unix:/tmp/x.sock'), { kind: 'unix', path: '/tmp/x.sock' });
  for (const bad of ['127.0.0.1', ':80', '[::1]', 'h:0', 'h:70000', 'unix:', 'a b:1']) t.equal(parseAddress(bad), null, bad);
});

t.test('WebSocket connections are spread over several upstreams in weighted round-robin order', async (t) => {
  const servers = await Promise.all(['A', 'B', 'C'].map((n) => wsEcho(n)));
  const proxy = await startProxy({
    upstreams: {
      backend: {
        servers: [
          { address: `127.0.0.1:${port(servers[0]!)}`, weight: 2 },
          `127.0.0.1:${port(servers[1]!)}`,
          `127.0.0.1:${port(servers[2]!)}`,
        ],
      },
    },
  });
  t.teardown(async () => { await proxy.close(); for (const s of servers) await closeWss(s); });
  const names: string[] = [];
  for (let i = 0; i < 8; i++) {
    const ws = await openWs(`ws://127.0.0.1:${port(proxy)}/`);
    names.push(await whoami(ws));
    ws.close();
  }
  t.equal(names.join(''), 'ABCAABCA', 'weights 2:1:1, smooth order');
});

t.test('a dead backend is passed over: the request is retried on the next one, and the dead one is skipped after', async (t) => {
  const live = await rawBackend((sock, data) => {
    if (data.includes('\r\n\r\n')) sock.end('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlive');
  });
  const tmp = await rawBackend(() => {});
  const dead = tmp.port;
  await tmp.close();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${dead}`, `127.0.0.1:${live.port}`] } } });
  t.teardown(async () => { await proxy.close(); await live.close(); });
  const errors: string[] = [];
  proxy.on('upstreamError', (e) => errors.push(e.code));
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    statuses.push(parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n')).status);
  }
  t.same(statuses, [200, 200, 200, 200, 200]);
  t.same(errors, ['WSPLICE_UPSTREAM_CONNECT'], 'one failed connect, then the dead backend is skipped');
  t.equal(live.received.length, 5);
});

t.test('unix socket backends', async (t) => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const net = await import('node:net');
  const path = `${mkdtempSync(`${tmpdir()}/wsplice-`)}/b.sock`;
  const server = net.createServer((s) => s.on('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix')));
  await new Promise<void>((r) => server.listen(path, () => r()));
  const proxy = await startProxy({ upstreams: { b: { servers: [`unix:${path}`] } } });
  t.teardown(async () => { await proxy.close(); server.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
  t.equal(res.body, 'unix');
});
