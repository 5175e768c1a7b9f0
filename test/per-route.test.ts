/**
 * Per-route settings in the JSON model, at run time on every front (the
 * listener, proxy.web, proxy.ws): forwarding, timeouts and nextUpstream of a
 * route over the enclosing routes' and the globals (setHeaders and
 * removeHeaders as a whole, as nginx's proxy_set_header lines), nested routes
 * selected as nginx selects nested locations, and `uri` replacing the matched
 * prefix. What the backend receives is asserted, and timeouts by status.
 */
import type http from 'node:http';
import t from 'tap';
import { createProxy, type ProxyOptions } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { closeCode, closeWss, frontPort, httpBackend, httpGet, openWs, rawBackend, respondOnce, whoami, wsEcho, type Front } from './support/index.js';

const HEADERS = ['x-a', 'x-b', 'host', 'x-real-ip'] as const;

function seenOf(s: { url: string; headers: http.IncomingHttpHeaders }): unknown[] {
  return [s.url, ...HEADERS.map((h) => s.headers[h] ?? '-')];
}

const forwardingRoutes = (port: number): ProxyOptions => ({
  upstreams: { b: { servers: [`127.0.0.1:${port}`] } },
  forwarding: { host: '$host', xForwarded: false, setHeaders: { 'X-A': 'global' } },
  routes: [
    { path: '/', upstream: 'b' },
    { path: '/own/', upstream: 'b', uri: '/v1/', forwarding: { setHeaders: { 'X-B': 'own' } } },
    {
      path: '/n/', upstream: 'b', uri: '/m/', forwarding: { host: null, xRealIp: true },
      routes: [
        { path: '/n/in/', upstream: 'b', uri: '/deep/' },
        { path: '/n/in2/', upstream: 'b', forwarding: { setHeaders: {} } },
        { path: '\\.txt$', match: 'regex', upstream: 'b' },
        { path: '/n/s/', match: 'prefix-stop', upstream: 'b', forwarding: { setHeaders: { 'X-B': 'stop' } } },
      ],
    },
    { path: '\\.php$', match: 'regex', upstream: 'b', forwarding: { setHeaders: { 'X-B': 'php' } } },
  ],
});

/** [request path, what the backend got: url, X-A, X-B, Host, X-Real-IP]. */
const FORWARDING_CASES: Array<[string, unknown[]]> = [
  ['/x', ['/x', 'global', '-', 'front.example', '-']],
  ['/own/a%20b?q=1', ['/v1/a%20b?q=1', '-', 'own', 'front.example', '-']],
  ['/n/x', ['/m/x', 'global', '-', 'Front.Example:8080', '127.0.0.1']],
  ['/n/in/x', ['/deep/x', 'global', '-', 'Front.Example:8080', '127.0.0.1']],
  ['/n/in2//x?', ['/n/in2//x?', '-', '-', 'Front.Example:8080', '127.0.0.1']],
  ['/n/a.txt', ['/n/a.txt', 'global', '-', 'Front.Example:8080', '127.0.0.1']],
  ['/n/in/a.php', ['/n/in/a.php', '-', 'php', 'front.example', '-']],
  ['/n/s/a.txt', ['/n/s/a.txt', '-', 'stop', 'Front.Example:8080', '127.0.0.1']],
  ['/n/s/a.php', ['/n/s/a.php', '-', 'php', 'front.example', '-']],
];

for (const front of ['listener', 'proxy.web'] as Front[]) {
  t.test(`${front}: each route's forwarding and uri, nested routes inheriting theirs, selected as nginx`, async (t) => {
    const b = await httpBackend();
    const proxy = createProxy(forwardingRoutes(b.port));
    const p = await frontPort(proxy, front);
    t.teardown(async () => { await proxy.close(); await b.close(); });
    for (const [path, expected] of FORWARDING_CASES) {
      b.seen.length = 0;
      const r = await httpGet(p, path, { headers: { host: 'Front.Example:8080' } });
      t.equal(r.status, 200, path);
      t.same(b.seen.map(seenOf), [expected], `${path}: what the backend got`);
    }
  });
}

t.test("proxy.ws and the listener: an upgrade takes its route's forwarding and uri", async (t) => {
  const seen: unknown[] = [];
  const wss = await wsEcho('w');
  wss.on('connection', (_ws, req) => seen.push(seenOf({ url: req.url!, headers: req.headers })));
  const proxy = createProxy(forwardingRoutes((wss.address() as { port: number }).port));
  t.teardown(async () => { await proxy.close(); await closeWss(wss); });
  for (const front of ['listener', 'proxy.ws'] as Front[]) {
    const p = await frontPort(proxy, front);
    seen.length = 0;
    for (const path of ['/own/chat', '/n/in2/chat']) {
      const ws = await openWs(`ws://127.0.0.1:${p}${path}`, undefined, { headers: { host: 'Front.Example:8080' } });
      t.equal(await whoami(ws), 'w');
      ws.close();
    }
    t.same(seen, [['/v1/chat', '-', 'own', 'front.example', '-'], ['/n/in2/chat', '-', '-', 'Front.Example:8080', '127.0.0.1']], front);
  }
});

for (const front of ['listener', 'proxy.web'] as Front[]) {
  t.test(`${front}: a route's responseMs (inherited by its nested routes) answers 504 while another's does not`, async (t) => {
    const held: Array<() => void> = [];
    const b = await httpBackend((_req, res) => {
      held.push(() => res.end('late'));
      return true;
    });
    const proxy = createProxy({
      upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } },
      routes: [
        { path: '/long/', upstream: 'b' },
        { path: '/short/', upstream: 'b', timeouts: { responseMs: 1000 }, routes: [{ path: '/short/in/', upstream: 'b' }, { path: '/short/back/', upstream: 'b', timeouts: { responseMs: 60_000 } }] },
      ],
    });
    const p = await frontPort(proxy, front);
    t.teardown(async () => { await proxy.close(); await b.close(); });
    const long = httpGet(p, '/long/x');
    const back = httpGet(p, '/short/back/x');
    const short = await Promise.all([httpGet(p, '/short/x'), httpGet(p, '/short/in/x')]);
    t.same(short.map((r) => r.status), [504, 504], 'the 1 s routes timed out');
    for (const release of held) release(); // only now: the others waited past the short deadline
    t.same([(await long).status, (await back).status], [200, 200], 'the 60 s routes did not');
  });
}

t.test("listener and proxy.ws: a route's idleMs closes its idle tunnel, another route's stays open", async (t) => {
  const wss = await wsEcho('w');
  const proxy = createProxy({
    upstreams: { w: { servers: [`127.0.0.1:${(wss.address() as { port: number }).port}`] } },
    routes: [{ path: '/ws-short', upstream: 'w', timeouts: { idleMs: 500 } }, { path: '/ws-long', upstream: 'w' }],
  });
  t.teardown(async () => { await proxy.close(); await closeWss(wss); });
  for (const front of ['listener', 'proxy.ws'] as Front[]) {
    const p = await frontPort(proxy, front);
    const long = await openWs(`ws://127.0.0.1:${p}/ws-long`);
    const short = await openWs(`ws://127.0.0.1:${p}/ws-short`);
    const closed = closeCode(short);
    t.equal(await whoami(short), 'w');
    await closed;
    t.equal(await whoami(long), 'w', `${front}: the other tunnel, as idle as the closed one, is still open`);
    long.close();
  }
});

for (const front of ['listener', 'proxy.web'] as Front[]) {
  t.test(`${front}: a route's nextUpstream over its upstream's`, async (t) => {
    const bad = await rawBackend((sock) => sock.destroy()); // closes before any response byte: an "error" try
    const good = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood'));
    const proxy = createProxy({
      upstreams: { b: { servers: [`127.0.0.1:${bad.port}`, `127.0.0.1:${good.port}`], maxFails: 0, nextUpstream: { on: [] } } },
      routes: [{ path: '/retry', upstream: 'b', nextUpstream: { on: ['error'] } }, { path: '/plain', upstream: 'b' }],
    });
    const p = await frontPort(proxy, front);
    t.teardown(async () => { await proxy.close(); await bad.close(); await good.close(); });
    const statuses = async (path: string): Promise<number[]> => [(await httpGet(p, path)).status, (await httpGet(p, path)).status].sort();
    t.same(await statuses('/retry'), [200, 200], 'the route\'s policy moves on to the next backend');
    t.same(await statuses('/plain'), [200, 502], 'the upstream\'s policy (off) answers 502');
  });
}

t.test('the checks of nested routes and per-route fields, every problem at once', async (t) => {
  const bad = {
    upstreams: { a: { servers: ['127.0.0.1:1'] } },
    routes: [
      { path: '/e', match: 'exact', upstream: 'a', routes: [{ path: '/e/x', upstream: 'a' }] },
      { path: '/a/', upstream: 'a', routes: [{ path: '/b/', upstream: 'a' }, { path: '/a/x', upstream: 'a', hosts: ['x.test'] }, { path: '/a/d', upstream: 'a' }, { path: '/a/d', upstream: 'a' }] },
      { path: '\\.php$', match: 'regex', upstream: 'a', uri: '/x' },
      { path: '/r', return: { status: 204 }, uri: '/x' },
      { path: '/t', upstream: 'a', timeouts: { headMs: 5 }, forwarding: { proto: 'https' } },
    ],
  };
  let err: Error | null = null;
  try {
    resolveOptions(bad);
  } catch (e) {
    err = e as Error;
  }
  t.match(err?.message.split('\n'), [
    /^routes\[4\]\.timeouts\.headMs: unknown option/,
    /^routes\[4\]\.forwarding\.proto: unknown option/,
    /^routes\[0\]\.routes\[0\]\.path: location "\/e\/x" cannot be inside the exact location "\/e"/,
    /^routes\[1\]\.routes\[0\]\.path: location "\/b\/" is outside location "\/a\/"/,
    /^routes\[1\]\.routes\[1\]\.path: hosts: only a top-level route names virtual servers/,
    /^routes\[1\]\.routes\[3\]\.path: duplicate location "\/a\/d"/,
    /^routes\[2\]\.uri: cannot be used with a regular expression route/,
    /^routes\[3\]\.uri: needs upstream/,
  ]);
  const ok = resolveOptions({ upstreams: { a: { servers: ['127.0.0.1:1'], nextUpstream: { tries: 3 } } }, timeouts: { connectMs: 7 }, routes: [{ path: '/a/', upstream: 'a', timeouts: { responseMs: 9 }, nextUpstream: { on: ['http_503'] }, routes: [{ path: '/a/b', upstream: 'a' }] }] });
  const nested = ok.routes[0]!.routes[0]!;
  t.same([nested.timeouts.connectMs, nested.timeouts.responseMs, nested.timeouts.idleMs], [7, 9, 60_000], 'timeouts: the route\'s, else the enclosing route\'s, else the global');
  t.same([[...nested.retry!.on], nested.retry!.tries], [['http_503'], 3], 'nextUpstream: the route\'s fields over the upstream\'s');
  t.equal(nested.forward, ok.forward, 'a route that sets no forwarding shares the global policy (resolved once)');
});
