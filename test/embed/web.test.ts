// proxy.web: plain requests from an app's http.Server to the upstream, by the listener's rules.
import http from 'node:http';
import t from 'tap';
import { createProxy, type EmbedOptions, type WebResult } from '../../src/index.js';
import { connect, fdCount, httpBackend, httpGet, parseResponse, port, rawBackend, readAll } from '../support/index.js';

type Settled = { ok: true; value: WebResult } | { ok: false; error: Error & { code?: string } };

/** An app whose request handler is proxy.web(req, res, options); records how each call settled. */
async function webApp(proxy: ReturnType<typeof createProxy>, options?: EmbedOptions) {
  const settled: Settled[] = [];
  const server = http.createServer((req, res) => {
    proxy.web(req, res, options).then((value) => settled.push({ ok: true, value }), (error: Error) => settled.push({ ok: false, error }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: port(server), settled, close: () => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); } };
}

t.test('GET and POST through proxy.web: forwarded headers, hop-by-hop removed both ways, bodies both ways', async (t) => {
  const backend = await httpBackend((req, res, body) => {
    if (req.method !== 'GET') return false;
    res.writeHead(200, { 'X-Backend': 'b1', Connection: 'X-Hop', 'X-Hop': '1' });
    res.end(`GET ${req.url} ${body}`);
    return true;
  });
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  const app = await webApp(proxy);
  t.teardown(async () => { await app.close(); await backend.close(); await proxy.close(); });
  const r = await httpGet(app.port, '/a?x=1', { headers: { 'Proxy-Connection': 'x', 'X-Custom': 'v', Connection: 'keep-alive, X-Custom' } });
  t.equal(r.status, 200);
  t.equal(r.body, 'GET /a?x=1 ');
  t.equal(r.headers['x-backend'], 'b1', 'end-to-end response header kept');
  t.notOk('x-hop' in r.headers, 'a response header the upstream named in Connection is not relayed');
  const seen = backend.seen[0]!;
  t.notOk('proxy-connection' in seen.headers, 'hop-by-hop request header removed');
  t.notOk('x-custom' in seen.headers, 'a header named by Connection removed');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${app.port}`);
  const body = 'x'.repeat(200_000);
  const p = await httpGet(app.port, '/post', { method: 'POST', headers: { 'Transfer-Encoding': 'chunked' } }, body);
  t.equal(p.body, `POST /post ${body}`, 'a chunked request body arrives whole');
  t.equal(app.settled.length, 2);
  t.same(app.settled.map((s) => s.ok && s.value.status), [200, 200], 'each call resolved with the status');
});

t.test('a large response streams through (backpressure: the client reads it all)', async (t) => {
  const big = Buffer.alloc(8 << 20, 0x61);
  const backend = await httpBackend((_req, res) => { res.end(big); return true; });
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  const app = await webApp(proxy);
  t.teardown(async () => { await app.close(); await backend.close(); await proxy.close(); });
  const r = await httpGet(app.port, '/big');
  t.equal(r.body.length, big.length);
});

t.test('failures answer as a listener does and reject with the code', async (t) => {
  const silent = await rawBackend(() => {});
  const proxy = createProxy({
    upstreams: { down: { servers: ['127.0.0.1:1'] }, silent: { servers: [`127.0.0.1:${silent.port}`] } },
    routes: [{ path: '/down', upstream: 'down' }, { path: '/silent', upstream: 'silent' }],
  });
  const app = await webApp(proxy, undefined);
  const slow = await webApp(proxy, { proxyTimeout: 50 });
  t.teardown(async () => { await app.close(); await slow.close(); await silent.close(); await proxy.close(); });
  const down = await httpGet(app.port, '/down');
  t.equal(down.status, 502);
  t.match(down.body, /502 Bad Gateway: upstream failed/);
  const none = await httpGet(app.port, '/nowhere');
  t.equal(none.status, 404);
  t.match(none.body, /no route for \/nowhere/);
  const bad = await httpGet(app.port, '/down', { headers: { Host: 'a@b' } });
  t.equal(bad.status, 400, 'a Host Node accepts and wsplice does not: 400');
  t.match(bad.body, /invalid Host header/);
  const late = await httpGet(slow.port, '/silent');
  t.equal(late.status, 504, 'no response head within proxyTimeout: 504');
  t.same(app.settled.map((s) => !s.ok && s.error.code), ['WSPLICE_UPSTREAM_CONNECT', 'WSPLICE_NO_ROUTE', 'WSPLICE_BAD_REQUEST']);
  t.equal(!slow.settled[0]!.ok && slow.settled[0]!.error.code, 'WSPLICE_UPSTREAM_TIMEOUT');
});

t.test('a backend that refuses connections is skipped for an idempotent request', async (t) => {
  const backend = await httpBackend();
  const proxy = createProxy({ upstreams: { b: { servers: ['127.0.0.1:1', `127.0.0.1:${backend.port}`] } } });
  const app = await webApp(proxy);
  t.teardown(async () => { await app.close(); await backend.close(); await proxy.close(); });
  for (let i = 0; i < 2; i++) t.equal((await httpGet(app.port, '/r')).status, 200, `request ${i}: served by the live backend`);
});

t.test('options.target with changeOrigin and headers; the callback form answers itself', async (t) => {
  const backend = await httpBackend();
  const proxy = createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } } });
  const errors: Error[] = [];
  const server = http.createServer((req, res) => {
    const target = req.url === '/dead' ? 'http://127.0.0.1:1' : `http://127.0.0.1:${backend.port}`;
    proxy.web(req, res, { target, changeOrigin: true, headers: { 'X-Via': 'app' } }, (err, _req, r) => {
      errors.push(err!);
      r.writeHead(599).end('app says no');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(async () => { server.closeAllConnections(); server.close(); await backend.close(); await proxy.close(); });
  const ok = await httpGet(port(server), '/x');
  t.equal(ok.status, 200);
  t.equal(backend.seen[0]!.headers.host, `127.0.0.1:${backend.port}`, 'Host is the target');
  t.equal(backend.seen[0]!.headers['x-via'], 'app');
  const dead = await httpGet(port(server), '/dead');
  t.equal(dead.status, 599, 'the callback answered');
  t.equal((errors[0] as Error & { code?: string }).code, 'WSPLICE_UPSTREAM_CONNECT');
});

t.test('bad input: headers already sent, an upgrade request; no crash, no leak', async (t) => {
  const backend = await httpBackend();
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  const errs: Array<Error & { code?: string }> = [];
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('started ');
    proxy.web(req, res).catch((e: Error) => { errs.push(e); res.end('by the app'); });
  });
  server.on('upgrade', (req, socket) => {
    proxy.web(req, new http.ServerResponse(req)).catch((e: Error) => { errs.push(e); socket.destroy(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(async () => { server.closeAllConnections(); server.close(); await backend.close(); await proxy.close(); });
  const before = fdCount();
  const r = await httpGet(port(server), '/');
  t.equal(r.body, 'started by the app');
  const s = await connect(port(server));
  const reply = readAll(s, 2000);
  s.write('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  t.equal(parseResponse((await reply).toString('latin1')).status, 0, 'the app closed the upgrade socket');
  t.match(errs.map((e) => `${e.code} ${e.message}`), [/WSPLICE_EMBED_MISUSE .*already started/, /WSPLICE_EMBED_MISUSE .*proxy\.ws/]);
  t.equal(backend.seen.length, 0);
  server.closeAllConnections();
  t.ok(fdCount() <= before + 1, 'no descriptor left');
});

t.test('locations answer as on a listener: return CODE TEXT, return 301 URL, deny (403); the backend sees none of them', async (t) => {
  const backend = await httpBackend();
  const proxy = createProxy({
    upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } },
    routes: [
      { path: '/', upstream: 'b' },
      { path: '/gone', return: { status: 410, text: 'gone for good' } },
      { path: '/old', return: { status: 301, text: 'http://example.test/new' } },
      { path: '/admin', upstream: 'b', access: [{ deny: '127.0.0.0/8' }, { allow: 'all' }] },
    ],
  });
  const app = await webApp(proxy);
  t.teardown(async () => { await app.close(); await backend.close(); await proxy.close(); });
  const gone = await httpGet(app.port, '/gone');
  t.equal(gone.status, 410);
  t.equal(gone.body, 'gone for good');
  const old = await httpGet(app.port, '/old');
  t.equal(old.status, 301);
  t.equal(old.headers.location, 'http://example.test/new');
  for (const path of ['/admin', '/admin/x', '/x/../admin', '/%61dmin']) {
    const denied = await httpGet(app.port, path);
    t.equal(denied.status, 403, `${path}: denied`);
    t.match(denied.body, /403 Forbidden: access forbidden by rule/);
  }
  t.equal(backend.seen.length, 0, 'nothing reached the backend');
  t.equal((await httpGet(app.port, '/x')).status, 200, 'the other location proxies');
  t.same(app.settled.map((s) => !s.ok && s.error.code), ['WSPLICE_RETURN', 'WSPLICE_RETURN', 'WSPLICE_FORBIDDEN', 'WSPLICE_FORBIDDEN', 'WSPLICE_FORBIDDEN', 'WSPLICE_FORBIDDEN', false]);
});
