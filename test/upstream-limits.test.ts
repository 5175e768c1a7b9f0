import t from 'tap';
import { WebSocket } from 'ws';
import { ConfigError, createProxy, type ProxyOptions } from '../src/index.js';
import { get, namedBackend, names, tally } from './support/named-backends.js';
import { closeWss, frontPort, parseResponse, port, rawExchange, startProxy, upgradeHead, waitFor, wsEcho } from './support/index.js';

async function openWs(p: number): Promise<{ ws: WebSocket; name: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${p}/`);
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  ws.send('whoami');
  return { ws, name: await new Promise<string>((r) => ws.once('message', (m) => r(String(m)))) };
}

t.test('max_conns: when every backend is full, upgrades and plain requests get 503 with Retry-After', async (t) => {
  const a = await wsEcho('A');
  const proxy = await startProxy({ upstreams: { u: { servers: [{ address: `127.0.0.1:${port(a)}`, maxConns: 1 }] } } });
  t.teardown(async () => { await proxy.close(); await closeWss(a); });
  const first = await openWs(port(proxy));
  t.equal(first.name, 'A');
  const refused: string[] = [];
  proxy.on('refused', (e) => refused.push(`${e.status} ${e.code}`));
  const up = parseResponse(await rawExchange(port(proxy), upgradeHead('/')));
  t.equal(up.status, 503, 'the upgrade is refused, not tunnelled');
  t.equal(up.headers.get('retry-after'), '1');
  const plain = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
  t.equal(plain.status, 503);
  t.match(plain.body, /max_conns/);
  t.same(refused, ['503 WSPLICE_UPSTREAM_FULL', '503 WSPLICE_UPSTREAM_FULL']);
  t.equal(a.clients.size, 1, 'the full backend saw no second connection');
  // Room again once the tunnel closes.
  first.ws.close();
  await waitFor(() => proxy.upstreams()[0]!.backends[0]!.active === 0, 5000, 'release');
  const again = await openWs(port(proxy));
  t.equal(again.name, 'A');
  again.ws.terminate();
});

t.test('max_conns through proxy.web: a plain request to a full group gets 503 with Retry-After, as on a listener', async (t) => {
  const a = await namedBackend('A');
  const proxy = createProxy({ upstreams: { u: { servers: [{ address: `127.0.0.1:${a.port}`, maxConns: 1 }] } } });
  const p = await frontPort(proxy, 'proxy.web');
  t.teardown(async () => { await proxy.close(); await a.close(); });
  const g = proxy.groups.get('u')!;
  const held = g.pick()!; // the one connection max_conns allows, taken
  const full = await get(p);
  t.equal(full.status, 503);
  t.equal(full.headers['retry-after'], '1');
  t.match(full.body, /max_conns/);
  t.equal(a.served.length, 0, 'the full backend saw nothing');
  g.release(held);
  t.equal((await get(p)).body, 'A', 'served once there is room');
});

t.test('backup: used only while every primary is down or full', async (t) => {
  const [p, b] = await Promise.all([wsEcho('P'), wsEcho('B')]);
  const proxy = await startProxy({
    upstreams: { u: { servers: [{ address: `127.0.0.1:${port(p)}`, maxConns: 2 }, { address: `127.0.0.1:${port(b)}`, backup: true }] } },
  });
  t.teardown(async () => { await proxy.close(); await closeWss(p); await closeWss(b); });
  const open = [await openWs(port(proxy)), await openWs(port(proxy)), await openWs(port(proxy)), await openWs(port(proxy))];
  t.same(open.map((x) => x.name), ['P', 'P', 'B', 'B'], 'the primary fills to max_conns, then the backup takes the rest');
  open[0]!.ws.close();
  await waitFor(() => proxy.upstreams()[0]!.backends[0]!.active === 1, 5000, 'release');
  const next = await openWs(port(proxy));
  t.equal(next.name, 'P', 'back to the primary as soon as it has room');
  for (const x of [...open, next]) x.ws.terminate();
});

t.test('down: a server marked down is never picked', async (t) => {
  const [a, b] = await Promise.all([namedBackend('A'), namedBackend('B')]);
  const proxy = await startProxy({ upstreams: { u: { servers: [{ address: `127.0.0.1:${a.port}`, down: true }, `127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await a.close(); await b.close(); });
  t.same(tally(await names(port(proxy), 10)), { B: 10 });
  t.equal(proxy.upstreams()[0]!.backends[0]!.state, 'down');
});

t.test('slow_start: a backend that comes back gets a small share first', async (t) => {
  const [a, b] = await Promise.all([namedBackend('A'), namedBackend('B')]);
  const proxy = await startProxy({
    upstreams: { u: { servers: [{ address: `127.0.0.1:${a.port}`, slowStartMs: 600_000 }, `127.0.0.1:${b.port}`] } },
  });
  t.teardown(async () => { await proxy.close(); await a.close(); await b.close(); });
  const g = proxy.groups.get('u')!;
  g.setHealthy(g.backends[0]!, false, 'test');
  g.setHealthy(g.backends[0]!, true, 'test'); // came back now: at the start of a 10-minute ramp
  const counts = tally(await names(port(proxy), 40));
  t.ok((counts.A ?? 0) <= 2, `A took ${counts.A ?? 0} of 40 at the start of its ramp`);
  t.equal((await get(port(proxy))).status, 200);
});

t.test('upstream options refused with the reason', async (t) => {
  const s = '127.0.0.1:1';
  const cases: Array<[ProxyOptions['upstreams'][string], string, RegExp]> = [
    [{ servers: [s], balance: { method: 'hash', key: '$nope' } }, 'upstreams.u.balance.key', /unknown variable "\$nope"/],
    [{ servers: [s], balance: { method: 'hash', key: 'static' } }, 'upstreams.u.balance.key', /no variable/],
    [{ servers: [{ address: s, weight: 0 }] }, 'upstreams.u.servers[0].weight', /integer >= 1/],
    [{ servers: [s, { address: '127.0.0.1:2', backup: true }], balance: { method: 'hash', key: '$remote_addr' } }, 'upstreams.u.servers[1].backup', /cannot be used with the hash/],
    [{ servers: [s, { address: '127.0.0.1:2', backup: true }], balance: 'ip_hash' }, 'upstreams.u.servers[1].backup', /ip_hash/],
    [{ servers: [s, { address: '127.0.0.1:2', backup: true }], balance: 'random' }, 'upstreams.u.servers[1].backup', /random/],
    [{ servers: [{ address: s, down: true }] }, 'upstreams.u.servers', /every server is marked down/],
    [{ servers: [{ address: s, backup: true }] }, 'upstreams.u.servers', /at least one primary/],
    [{ servers: [{ address: s, slowStartMs: 1000 }], balance: 'ip_hash' }, 'upstreams.u.servers[0].slowStartMs', /slow start cannot be used with the ip_hash/],
    [{ servers: [s], balance: 'fastest' as never }, 'upstreams.u.balance', /one of round_robin/],
    [{ servers: [s], sticky: { cookie: 'a b' } }, 'upstreams.u.sticky.cookie', /token/],
    [{ servers: [s], sticky: { cookie: 'srv', sameSite: 'none' } }, 'upstreams.u.sticky.sameSite', /secure/],
    [{ servers: [s], healthCheck: { status: [500, 200] } }, 'upstreams.u.healthCheck.status', /min <= max/],
    [{ servers: [s], healthCheck: { body: '(' } }, 'upstreams.u.healthCheck.body', /Invalid regular expression/],
    [{ servers: [{ address: s, resolve: true }] }, 'upstreams.u.servers[0].resolve', /host name/],
  ];
  for (const [u, field, reason] of cases) {
    let caught: unknown = null;
    try {
      createProxy({ upstreams: { u } });
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, field);
    t.equal((caught as ConfigError).field, field);
    t.match((caught as Error).message, reason);
  }
  t.doesNotThrow(() => createProxy({ upstreams: { u: { servers: [s, { address: '127.0.0.1:2', backup: true }], balance: 'least_conn' } } }), 'backup with least_conn is fine');
  t.doesNotThrow(() => createProxy({ upstreams: { u: { servers: [{ address: s, down: true }, { address: '127.0.0.1:2', backup: true }] } } }), 'primaries all down with a backup up is fine, as nginx');
});
