import t from 'tap';
import { ConfigError, createProxy, type ProxyOptions } from '../src/index.js';
import { ConfigErrors } from '../src/config/issues.js';
import { DEFAULT_TIMEOUTS, resolveOptions, TIMEOUT_ROWS } from '../src/options.js';

t.test('defaults follow nginx where nginx has one', async (t) => {
  const o = resolveOptions({ upstreams: { a: { servers: ['127.0.0.1:1'] } } });
  t.equal(o.timeouts.idleMs, 60_000, 'proxy_read_timeout');
  t.equal(o.timeouts.connectMs, 60_000, 'proxy_connect_timeout');
  t.equal(o.limits.maxHeadBytes, 16 * 1024);
  t.equal(o.limits.maxHeaders, 100);
  t.match(o.routes, [{ path: '/', match: 'prefix', exact: false, upstream: 'a', hosts: null, return: null, access: null, uri: null, retry: null, routes: [] }], 'every path to the only upstream');
  t.equal(o.routes.length, 1);
  t.equal(o.routes[0]!.forward, o.forward, 'with the global forwarding and timeouts');
  t.equal(o.routes[0]!.timeouts, o.timeouts);
  t.equal(o.forward.host, null, 'Host preserved ($host)');
  t.equal(o.forward.xForwarded, true);
});

t.test('invalid options throw ConfigError naming the field', async (t) => {
  const cases: Array<[unknown, string]> = [
    [null, ''],
    [{}, 'upstreams'],
    [{ upstreams: { a: { servers: [] } } }, 'upstreams.a.servers'],
    [{ upstreams: { a: { servers: ['x'] } } }, 'upstreams.a.servers[0]'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, routes: [{ path: 'x', upstream: 'a' }] }, 'routes[0].path'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, forwarding: { setHeaders: { 'X-A': 'a\r\nInjected: 1' } } }, 'forwarding.setHeaders.X-A'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, forwarding: { setHeaders: { 'Bad Name': 'v' } } }, 'forwarding.setHeaders.Bad Name'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, forwarding: { setHeaders: { 'Content-Length': '1' } } }, 'forwarding.setHeaders.Content-Length'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, forwarding: { removeHeaders: ['Transfer-Encoding'] } }, 'forwarding.removeHeaders[0]'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, forwarding: { host: 'a b' } }, 'forwarding.host'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, timeouts: { idleMs: -1 } }, 'timeouts.idleMs'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, limits: { maxHeadBytes: 10 } }, 'limits.maxHeadBytes'],
    [{ upstreams: { a: { servers: ['127.0.0.1:1'] } }, relay: 'fast' }, 'relay'],
  ];
  for (const [input, field] of cases) {
    let caught: unknown = null;
    try {
      createProxy(input as ProxyOptions);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, `${JSON.stringify(field)}: a ConfigError`);
    t.equal((caught as ConfigError).field, field, (caught as Error).message);
    t.equal((caught as ConfigError).code, 'WSPLICE_CONFIG');
  }
});

t.test('every problem is reported at once, with a near-miss suggestion for unknown keys', async (t) => {
  let caught: unknown = null;
  try {
    resolveOptions({
      upstreams: { a: { servers: ['127.0.0.1:1', 'nohost'] }, b: { servers: [] } },
      routes: [{ path: '/x', upstream: 'nope' }, { path: 'y', upstream: 'a' }],
      timeouts: { idleMs: -1, conectMs: 5 },
      relay: 'fast',
    });
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof ConfigErrors, 'a ConfigErrors (a ConfigError)');
  t.ok(caught instanceof ConfigError);
  const e = caught as ConfigErrors;
  t.equal(e.code, 'WSPLICE_CONFIG');
  t.same(e.issues.map((i) => i.field).sort(), [
    'relay', 'routes[0].upstream', 'routes[1].path', 'timeouts.conectMs', 'timeouts.idleMs', 'upstreams.a.servers[1]', 'upstreams.b.servers',
  ]);
  t.equal(e.field, e.issues[0]!.field, 'field is the first problem');
  t.match(e.message, /timeouts\.conectMs: unknown option \(did you mean "connectMs"\?/);
  t.equal(e.message.split('\n').length, 7, 'one line per problem');
});

t.test('the option tables give each row a check, a default and its nginx equivalent', async (t) => {
  t.equal(TIMEOUT_ROWS.connectMs.nginx, 'proxy_connect_timeout');
  t.equal(TIMEOUT_ROWS.idleMs.flag?.name, '--idle-timeout');
  t.same(DEFAULT_TIMEOUTS, { headMs: 60_000, keepAliveMs: 75_000, connectMs: 60_000, responseMs: 60_000, sendMs: 60_000, idleMs: 60_000, drainMs: 10_000, retireMs: 1_000 });
  const o = resolveOptions({ upstreams: { a: { servers: [{ address: '127.0.0.1:1', weight: 3 }] } }, timeouts: { idleMs: 5 } });
  t.equal(o.timeouts.idleMs, 5);
  t.equal(o.timeouts.connectMs, 60_000, 'the other fields of a given section keep their defaults');
  t.same(o.upstreams.get('a')!.backends, [{ address: { kind: 'tcp', host: '127.0.0.1', port: 1 }, weight: 3 }]);
});
