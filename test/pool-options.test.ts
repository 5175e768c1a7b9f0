/** The nextUpstream and keepalive options: defaults, and bad values named by field. */
import t from 'tap';
import { ConfigError, createProxy, type ProxyOptions } from '../src/index.js';
import { resolveOptions } from '../src/options.js';

const s = '127.0.0.1:1';

t.test('defaults: error and timeout, one try per backend, no pool', async (t) => {
  const u = resolveOptions({ upstreams: { u: { servers: [s] } } }).upstreams.get('u')!;
  t.same([...u.retry.on], ['error', 'timeout']);
  t.equal(u.retry.nonIdempotent, false);
  t.equal(u.retry.tries, 0);
  t.equal(u.keepalive, null, 'Connection: close unless keepalive is set');
  const k = resolveOptions({ upstreams: { u: { servers: [s], keepalive: { idle: 8 }, nextUpstream: { on: ['http_502', 'non_idempotent'] } } } }).upstreams.get('u')!;
  t.same(k.keepalive, { idle: 8, timeoutMs: 60_000, requests: 1000 }, 'nginx keepalive_timeout and keepalive_requests defaults');
  t.same([...k.retry.on], ['http_502']);
  t.equal(k.retry.nonIdempotent, true);
});

t.test('bad values are ConfigErrors naming the field', async (t) => {
  const cases: Array<[unknown, string]> = [
    [{ servers: [s], nextUpstream: { on: ['http_500'] } }, 'upstreams.u.nextUpstream.on[0]'],
    [{ servers: [s], nextUpstream: { tries: -1 } }, 'upstreams.u.nextUpstream.tries'],
    [{ servers: [s], keepalive: {} }, 'upstreams.u.keepalive.idle'],
    [{ servers: [s], keepalive: { idle: 0 } }, 'upstreams.u.keepalive.idle'],
    [{ servers: [s], keepalive: { idle: 2, requests: 0 } }, 'upstreams.u.keepalive.requests'],
  ];
  for (const [u, field] of cases) {
    let caught: unknown = null;
    try {
      createProxy({ upstreams: { u } } as ProxyOptions);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, field);
    t.equal((caught as ConfigError).field, field);
  }
});
