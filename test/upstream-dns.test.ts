// `resolve`: host names resolved at start and on an interval, every address a backend; a failed
// resolution keeps the last good set and says so.
import t from 'tap';
import { DnsRefresher, type Resolver } from '../src/upstream/dns.js';
import { UpstreamGroup } from '../src/upstream/group.js';
import { get, namedBackend } from './support/named-backends.js';
import { port, startProxy, waitFor } from './support/index.js';

t.test('a resolve server: localhost resolved to its addresses, requests served through them', async (t) => {
  const a = await namedBackend('A');
  const proxy = await startProxy({ upstreams: { u: { servers: [{ address: `localhost:${a.port}`, resolve: true }] } } });
  t.teardown(async () => { await proxy.close(); await a.close(); });
  await waitFor(() => proxy.upstreams()[0]!.names[0]!.resolvedAt > 0, 5000, 'the first resolution');
  const snap = proxy.upstreams()[0]!;
  t.ok(snap.names[0]!.addresses.includes('127.0.0.1'), `localhost -> ${snap.names[0]!.addresses.join(', ')}`);
  t.ok(snap.backends.some((b) => b.address === `127.0.0.1:${a.port}`), 'each address is a backend');
  t.equal((await get(port(proxy))).body, 'A');
});

t.test('a failed resolution keeps the last good set and says so; a new set replaces it', async (t) => {
  const group = new UpstreamGroup('u', [{ address: { kind: 'tcp', host: 'app.internal', port: 80 }, weight: 1 }]);
  const answers: Array<string[] | Error> = [['127.0.0.1'], Object.assign(new Error('queryA ENOTFOUND'), { code: 'ENOTFOUND' }), ['127.0.0.1', '127.0.0.2']];
  const resolver: Resolver = async () => {
    const next = answers.shift()!;
    if (next instanceof Error) throw next;
    return next;
  };
  const dns = new DnsRefresher(group, [{ address: { kind: 'tcp', host: 'app.internal', port: 80 }, weight: 1 }], 60_000, resolver);
  t.teardown(() => dns.stop());
  await dns.refresh();
  t.same(group.backends.map((b) => b.label), ['127.0.0.1:80']);
  const first = group.backends[0]!;
  await dns.refresh();
  t.same(group.backends.map((b) => b.label), ['127.0.0.1:80'], 'kept');
  t.match(dns.status()[0]!.lastError, /ENOTFOUND; keeping 1 address/);
  await dns.refresh();
  t.same(group.backends.map((b) => b.label), ['127.0.0.1:80', '127.0.0.2:80']);
  t.equal(group.backends[0], first, 'a backend that stays keeps its counters');
  t.equal(dns.status()[0]!.lastError, null);
});
