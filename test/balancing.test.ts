import t from 'tap';
import type { Test } from 'tap';
import { WebSocket } from 'ws';
import type { RequestHead } from '../src/http1/head.js';
import type { WspliceProxy as Proxy, UpstreamConfig } from '../src/index.js';
import { ipHashKey } from '../src/upstream/balance/hash.js';
import { UpstreamGroup, parseAddress } from '../src/upstream/group.js';
import { get, namedBackend, names, tally, type NamedBackend } from './support/named-backends.js';
import { closeWss, openWs, parseResponse, port, rawBackend, rawExchange, startProxy, waitFor, whoami, wsEcho } from './support/index.js';

t.test('smooth weighted round-robin interleaves by weight (5:1:1 -> a a b a c a a)', async (t) => {
  const g = new UpstreamGroup('g', [
    { address: { kind: 'tcp', host: 'a', port: 1 }, weight: 5 },
    { address: { kind: 'tcp', host: 'b', port: 1 }, weight: 1 },
    { address: { kind: 'tcp', host: 'c', port: 1 }, weight: 1 },
  ]);
  const order = Array.from({ length: 14 }, () => g.pick()!.label[0]).join('');
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
  t.same([g.pick(undefined, now)!.label, g.pick(undefined, now)!.label, g.pick(undefined, now)!.label], ['b:1', 'b:1', 'b:1']);
  t.equal(g.pick(undefined, now + 1001)!.label[0] === 'a' || g.pick(undefined, now + 1001)!.label[0] === 'a', true, 'back after fail_timeout');
  g.fail(g.backends[0]!, now);
  g.fail(g.backends[1]!, now);
  t.ok(g.pick(undefined, now), 'all down: still picks one rather than refusing');
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

// ------------------------------------------------------------ balancing methods over real traffic

async function backends(t: Test, n: number): Promise<NamedBackend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => namedBackend(String.fromCharCode(65 + i))));
  t.teardown(async () => { for (const b of list) await b.close(); });
  return list;
}

async function proxyOver(t: Test, upstream: Omit<UpstreamConfig, 'servers'> & { servers: UpstreamConfig['servers'] }): Promise<Proxy> {
  const proxy = await startProxy({ upstreams: { u: upstream } });
  t.teardown(() => proxy.close());
  return proxy;
}

t.test('plain HTTP: 120 requests split exactly by weights 3:2:1', async (t) => {
  const [a, b, c] = await backends(t, 3);
  const proxy = await proxyOver(t, {
    servers: [{ address: `127.0.0.1:${a!.port}`, weight: 3 }, { address: `127.0.0.1:${b!.port}`, weight: 2 }, `127.0.0.1:${c!.port}`],
  });
  t.same(tally(await names(port(proxy), 120)), { A: 60, B: 40, C: 20 });
});

t.test('least_conn: a new tunnel goes to the backend with the fewest open ones', async (t) => {
  const servers = await Promise.all(['A', 'B', 'C'].map((n) => wsEcho(n)));
  t.teardown(async () => { for (const s of servers) await closeWss(s); });
  const proxy = await proxyOver(t, { balance: 'least_conn', servers: servers.map((s) => `127.0.0.1:${port(s)}`) });
  const open = async (): Promise<{ ws: WebSocket; name: string }> => {
    const ws = new WebSocket(`ws://127.0.0.1:${port(proxy)}/`);
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
    ws.send('whoami');
    return { ws, name: await new Promise<string>((r) => ws.once('message', (m) => r(String(m)))) };
  };
  const active = (): number[] => proxy.upstreams()[0]!.backends.map((b) => b.active);
  const first = [await open(), await open(), await open()];
  t.same(first.map((x) => x.name).sort(), ['A', 'B', 'C'], 'one each while they are even');
  t.same(active(), [1, 1, 1], 'open tunnels are counted per backend');
  // Take B's away: B is the emptiest.
  const onB = first.find((x) => x.name === 'B')!;
  onB.ws.close();
  await waitFor(() => active()[1] === 0, 5000, 'B released');
  const next = await open();
  t.equal(next.name, 'B', 'the emptiest backend');
  const onA = first.find((x) => x.name === 'A')!;
  onA.ws.close();
  await waitFor(() => active()[0] === 0, 5000, 'A released');
  const last = await open();
  t.equal(last.name, 'A');
  for (const x of [...first, next, last]) x.ws.terminate();
});

t.test('least_conn is weighted: open connections per unit of weight', async (t) => {
  const g = new UpstreamGroup('g', [
    { address: { kind: 'tcp', host: 'a', port: 1 }, weight: 3 },
    { address: { kind: 'tcp', host: 'b', port: 1 }, weight: 1 },
  ], 1, 1000, { balance: { method: 'least_conn' } });
  const picks = Array.from({ length: 8 }, () => g.pick()!.label[0]).join('');
  t.same(tally(picks.split('')), { a: 6, b: 2 }, 'held connections end 6:2, as the weights');
});

t.test('ip_hash: each client stays on one backend, IPv4 grouped by /24', async (t) => {
  const list = await backends(t, 3);
  const proxy = await proxyOver(t, { balance: 'ip_hash', servers: list.map((b) => `127.0.0.1:${b.port}`) });
  const byNet = new Map<number, Set<string>>();
  for (let net24 = 0; net24 < 12; net24++) {
    const seen = new Set<string>();
    for (const host of [2, 77, 200]) {
      for (let i = 0; i < 2; i++) seen.add((await get(port(proxy), { localAddress: `127.${net24}.0.${host}` })).body);
    }
    byNet.set(net24, seen);
  }
  for (const [n, seen] of byNet) t.equal(seen.size, 1, `127.${n}.0.0/24: every client on one backend (${[...seen]})`);
  const used = new Set([...byNet.values()].map((s) => [...s][0]));
  t.ok(used.size >= 2, `12 networks spread over ${used.size} of 3 backends`);
});

t.test('ip_hash keys: IPv4 by /24 (mapped IPv6 too), IPv6 whole', async (t) => {
  t.equal(ipHashKey({ remoteAddress: '10.1.2.3', head: null }), '10.1.2');
  t.equal(ipHashKey({ remoteAddress: '::ffff:10.1.2.3', head: null }), '10.1.2');
  t.equal(ipHashKey({ remoteAddress: '2001:DB8::1', head: null }), '2001:db8::1');
});

t.test('hash $http_x_session: one session, one backend; several sessions spread', async (t) => {
  const list = await backends(t, 3);
  const proxy = await proxyOver(t, { balance: { method: 'hash', key: '$http_x_session', consistent: true }, servers: list.map((b) => `127.0.0.1:${b.port}`) });
  const where = new Map<string, Set<string>>();
  for (let s = 0; s < 20; s++) {
    const seen = new Set(await names(port(proxy), 3, { headers: { 'x-session': `s-${s}` } }));
    t.equal(seen.size, 1, `session s-${s} on one backend`);
    where.set(`s-${s}`, seen);
  }
  t.equal(new Set([...where.values()].map((s) => [...s][0])).size, 3, '20 sessions use all 3 backends');
});

function group(labels: string[], consistent: boolean): UpstreamGroup {
  return new UpstreamGroup('g', labels.map((l) => ({ address: { kind: 'tcp' as const, host: l, port: 80 }, weight: 1 })), 1, 1000, {
    balance: { method: 'hash', key: '$arg_k', consistent },
  });
}

function placement(g: UpstreamGroup, keys: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < keys; i++) {
    const head = { target: `/?k=key-${i}`, method: 'GET', names: [], keys: [], values: [] } as unknown as RequestHead;
    const b = g.pick({ remoteAddress: '127.0.0.1', head })!;
    g.release(b);
    out.push(b.label);
  }
  return out;
}

t.test('hash consistent: removing one of 5 backends moves about 1/5 of 10,000 keys, only its own', async (t) => {
  const labels = ['b0', 'b1', 'b2', 'b3', 'b4'];
  const before = placement(group(labels, true), 10_000);
  const after = placement(group(labels.filter((l) => l !== 'b2'), true), 10_000);
  let moved = 0;
  let movedOther = 0;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    if (before[i] !== 'b2:80') movedOther++;
  }
  t.ok(moved > 1400 && moved < 2600, `${moved} of 10000 moved (1/5 = 2000)`);
  t.equal(movedOther, 0, 'keys of the remaining backends stay where they were');
  const counts = tally(before);
  for (const l of labels) t.ok(counts[`${l}:80`]! > 1400 && counts[`${l}:80`]! < 2600, `${l} holds ${counts[`${l}:80`]} keys`);
  // Adding a sixth moves about 1/6, and only to the new one.
  const added = placement(group([...labels, 'b5'], true), 10_000);
  let toNew = 0;
  let elsewhere = 0;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === added[i]) continue;
    if (added[i] === 'b5:80') toNew++;
    else elsewhere++;
  }
  t.ok(toNew > 1100 && toNew < 2300, `${toNew} keys moved to the new backend (1/6 = 1667)`);
  t.equal(elsewhere, 0, 'no key moves between old backends');
});

t.test('plain hash (not consistent) moves most keys when a backend goes: the reason consistent exists', async (t) => {
  const labels = ['b0', 'b1', 'b2', 'b3', 'b4'];
  const before = placement(group(labels, false), 2000);
  const after = placement(group(labels.filter((l) => l !== 'b2'), false), 2000);
  const moved = before.filter((b, i) => b !== after[i]).length;
  t.ok(moved > 1000, `${moved} of 2000 moved`);
});

t.test('a hash skips a down backend to the next one on the ring, and returns when it is back', async (t) => {
  const g = group(['b0', 'b1', 'b2'], true);
  const before = placement(g, 300);
  const b1 = g.backends[1]!;
  g.setHealthy(b1, false, 'test');
  const during = placement(g, 300);
  t.equal(during.filter((l) => l === 'b1:80').length, 0, 'nothing on the down backend');
  t.equal(before.filter((l, i) => l !== 'b1:80' && during[i] !== l).length, 0, 'others keep their keys');
  g.setHealthy(b1, true, 'test');
  t.same(placement(g, 300), before, 'every key back where it was');
});

t.test('random two: of two draws the less loaded one; every backend used', async (t) => {
  const g = new UpstreamGroup('g', ['a', 'b', 'c', 'd'].map((h) => ({ address: { kind: 'tcp' as const, host: h, port: 1 }, weight: 1 })), 1, 1000, {
    balance: { method: 'random', two: true },
  });
  // Held connections: the power of two choices keeps the spread tight (never more than 2 apart here).
  for (let i = 0; i < 400; i++) g.pick();
  const loads = g.backends.map((b) => b.active);
  t.ok(Math.max(...loads) - Math.min(...loads) <= 4, `loads ${loads}`);
  t.equal(loads.reduce((x, y) => x + y, 0), 400);
});

t.test('random: weighted draws over real traffic', async (t) => {
  const [a, b] = await backends(t, 2);
  const proxy = await proxyOver(t, { balance: 'random', servers: [{ address: `127.0.0.1:${a!.port}`, weight: 3 }, `127.0.0.1:${b!.port}`] });
  const counts = tally(await names(port(proxy), 200));
  t.ok(counts.A! > 115 && counts.A! < 185, `A ${counts.A} of 200 (expected about 150)`);
  t.equal(counts.A! + counts.B!, 200);
});
