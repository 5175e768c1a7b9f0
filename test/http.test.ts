import http from 'node:http';
import t from 'tap';
import {
  connect, httpBackend as recordingBackend, httpGet as get, parseResponse, port, rawBackend, rawExchange, readAll, respondOnce,
  startProxy, waitFor,
} from './support/index.js';

/** The shared recording backend, plus two answers that need a raw socket or a delay. */
function httpBackend(): ReturnType<typeof recordingBackend> {
  return recordingBackend((req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('part1,');
      setTimeout(() => res.end('part2'), 20);
      return true;
    }
    if (req.url === '/close-delimited') {
      // No Content-Length, no chunking: the body ends when the connection does.
      res.socket!.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-eof');
      res.socket!.end();
      return true;
    }
    return false;
  });
}

t.test('plain requests are proxied with Connection: close upstream and the rewritten head', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } }, forwarding: { xRealIp: true } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const res = await get(port(proxy), '/path?q=1', {
    headers: {
      Host: 'front.example:8080', 'X-Forwarded-For': '10.9.9.9', Connection: 'keep-alive, X-Secret',
      'X-Secret': 'hop', 'Keep-Alive': 'timeout=1', TE: 'trailers', 'Proxy-Connection': 'x', 'X-Custom': 'kept',
    },
  });
  t.equal(res.status, 200);
  t.equal(res.body, 'GET /path?q=1 ');
  t.equal(res.headers['x-backend'], 'b1');
  t.notOk(res.headers['keep-alive'], 'the upstream\'s hop-by-hop Keep-Alive is not relayed');
  const seen = b.seen[0]!;
  t.equal(seen.headers.host, 'front.example:8080', 'Host preserved ($host)');
  t.equal(seen.headers.connection, 'close', 'Connection: close upstream, as nginx\'s $connection_upgrade map');
  t.equal(seen.headers['x-forwarded-for'], '10.9.9.9, 127.0.0.1', 'X-Forwarded-For appended');
  t.equal(seen.headers['x-forwarded-proto'], 'http');
  t.equal(seen.headers['x-forwarded-host'], 'front.example:8080');
  t.equal(seen.headers['x-real-ip'], '127.0.0.1');
  t.equal(seen.headers['x-custom'], 'kept');
  for (const h of ['x-secret', 'keep-alive', 'te', 'proxy-connection', 'upgrade']) t.notOk(seen.headers[h], `${h} removed`);
  const hostCount = seen.rawHeaders.filter((_, i) => i % 2 === 0).filter((n) => n.toLowerCase() === 'host').length;
  t.equal(hostCount, 1, 'exactly one Host upstream');
});

t.test('the headers a response\'s Connection names are dropped, close and others, in any order', async (t) => {
  const heads = [
    'Connection: close\r\nClose: named\r\nX-Kept: 1',
    'Connection: close, X-Hop\r\nClose: named\r\nX-Hop: 1\r\nX-Kept: 1',
    'Connection: X-Hop, CLOSE\r\nClose: named\r\nX-Hop: 1\r\nX-Kept: 1',
    'Connection: keep-alive\r\nClose: not named\r\nX-Kept: 1',
  ];
  for (const [i, extra] of heads.entries()) {
    const be = await rawBackend(respondOnce(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n${extra}\r\n\r\nok`));
    const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${be.port}`] } } });
    const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000));
    await proxy.close();
    await be.close();
    t.equal(res.body, 'ok', `head ${i}: the body`);
    t.equal(res.headers.get('x-kept'), '1', `head ${i}: an unnamed header stays`);
    t.notOk(res.headers.has('x-hop'), `head ${i}: a named header goes`);
    t.equal(res.headers.get('close') ?? null, i === 3 ? 'not named' : null, `head ${i}: Close goes only when Connection names it`);
  }
});

t.test('Host can be replaced and headers set and removed by configuration', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({
    upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } },
    forwarding: { host: 'internal.svc', setHeaders: { 'X-Proxy': 'wsplice' }, removeHeaders: ['Cookie'], xForwarded: false },
  });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  await get(port(proxy), '/', { headers: { Cookie: 'a=b', 'X-Proxy': 'client-says' } });
  const h = b.seen[0]!.headers;
  t.equal(h.host, 'internal.svc');
  t.equal(h['x-proxy'], 'wsplice', 'set replaces the client value');
  t.notOk(h.cookie);
  t.notOk(h['x-forwarded-for'], 'xForwarded off');
});

t.test('keep-alive: several requests on one client connection, each on its own upstream connection', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const sockets = new Set<unknown>();
  for (let i = 0; i < 5; i++) {
    const res = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: port(proxy), path: `/n${i}`, agent }, (r) => {
        sockets.add(r.socket);
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    t.equal(res, `GET /n${i} `);
  }
  t.equal(sockets.size, 1, 'one client connection for all five');
  t.equal(b.seen.length, 5);
});

t.test('pipelined requests are answered in order', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 5000);
  s.write(
    'GET /a HTTP/1.1\r\nHost: h\r\n\r\n' +
      'POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello' +
      'GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
  );
  const text = (await reply).toString();
  const bodies = text.split(/HTTP\/1\.1 200 OK\r\n/).slice(1).map((r) => r.slice(r.indexOf('\r\n\r\n') + 4));
  t.same(bodies, ['GET /a ', 'POST /b hello', 'GET /c ']);
  s.destroy();
});

t.test('chunked request bodies and chunked responses pass through', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 3000);
  s.write('POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
  setTimeout(() => s.write('6\r\n world\r\n0\r\n\r\nGET /chunked HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'), 30);
  const text = (await reply).toString();
  t.match(text, /POST \/up hello world/);
  t.match(text, /Transfer-Encoding: chunked\r\n/i);
  t.match(text, /6\r\npart1,\r\n5\r\npart2\r\n0\r\n\r\n$/, 'chunks relayed as the upstream framed them');
  s.destroy();
});

t.test('a close-delimited response ends the client connection', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const text = await rawExchange(port(proxy), 'GET /close-delimited HTTP/1.1\r\nHost: h\r\n\r\n');
  const res = parseResponse(text);
  t.equal(res.status, 200);
  t.equal(res.headers.get('connection'), 'close');
  t.equal(res.body, 'until-eof');
});

t.test('HEAD responses carry no body even with Content-Length', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 3000);
  s.write('HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
  const text = (await reply).toString();
  t.equal(text.match(/HTTP\/1\.1 200/g)?.length, 2, 'both answered: the HEAD response did not swallow the next');
  t.match(text, /GET \/y $/);
  s.destroy();
});

t.test('HTTP/1.0 clients get Connection: close unless they ask for keep-alive', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET /old HTTP/1.0\r\n\r\n'));
  t.equal(res.status, 200);
  t.equal(res.headers.get('connection'), 'close');
  const s = await connect(port(proxy));
  const reply = readAll(s, 1000);
  s.write('GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const text = (await reply).toString();
  t.match(text, /Connection: keep-alive/);
  s.destroy();
});

t.test('proxy refusals: status, reason, and nothing forwarded', async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const proxy = await startProxy({
    upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } },
    routes: [{ path: '/app', upstream: 'b' }],
    limits: { maxHeadBytes: 2048, maxHeaders: 10, maxUriBytes: 100 },
  });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const cases: Array<[string, string, number]> = [
    ['no route', 'GET /other HTTP/1.1\r\nHost: h\r\n\r\n', 404],
    ['malformed request line', 'GET /app HTTP/1.1 extra\r\nHost: h\r\n\r\n', 400],
    ['HTTP/1.1 without Host', 'GET /app HTTP/1.1\r\n\r\n', 400],
    ['two Host headers', 'GET /app HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['invalid Host', 'GET /app HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
    ['HTTP/2.0 request line', 'GET /app HTTP/2.0\r\nHost: h\r\n\r\n', 505],
    ['HTTP/0.9', 'GET /app\r\n\r\n', 400],
    ['CONNECT', 'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n', 405],
    ['CL and TE', 'POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['differing Content-Length', 'POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400],
    ['TE not ending in chunked', 'POST /app HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400],
    ['TE chunked twice', 'POST /app HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['TE in HTTP/1.0', 'POST /app HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['too many headers', `GET /app HTTP/1.1\r\nHost: h\r\n${'X-A: 1\r\n'.repeat(12)}\r\n`, 431],
    ['head too large', `GET /app HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(3000)}\r\n\r\n`, 431],
    ['target too long', `GET /app/${'a'.repeat(200)} HTTP/1.1\r\nHost: h\r\n\r\n`, 414],
  ];
  for (const [name, req, status] of cases) {
    const text = await rawExchange(port(proxy), req, 3000);
    const res = parseResponse(text);
    t.equal(res.status, status, `${name} -> ${status}`);
    t.ok(res.body.length > 5, `${name}: a reason in the body (${res.body.trim()})`);
  }
  t.equal(backend.received.length, 0, 'nothing reached the upstream');
});

t.test('a head that arrives one byte at a time is parsed whole', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const s = await connect(port(proxy));
  s.setNoDelay(true);
  const reply = readAll(s, 5000);
  const req = 'GET /slow HTTP/1.1\r\nHost: h\r\nX-Long-Header-Name: some value here\r\nConnection: close\r\n\r\n';
  for (const ch of req) {
    s.write(ch);
    await new Promise((r) => setImmediate(r));
  }
  const text = (await reply).toString();
  t.match(text, /GET \/slow $/);
  t.equal(b.seen[0]!.headers['x-long-header-name'], 'some value here');
});

t.test('upstream unreachable -> 502, counted against the backend', async (t) => {
  // A port that was just free: nothing listens there.
  const tmp = await rawBackend(() => {});
  const dead = tmp.port;
  await tmp.close();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${dead}`] } } });
  t.teardown(() => proxy.close());
  const errs: string[] = [];
  proxy.on('upstreamError', (e) => errs.push(e.code));
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
  t.equal(res.status, 502);
  t.same(errs, ['WSPLICE_UPSTREAM_CONNECT']);
  t.equal(proxy.groups.get('b')!.backends[0]!.failures, 1);
});

t.test('upstream silent past the response timeout -> 504', async (t) => {
  const backend = await rawBackend(() => {}); // accepts, never answers
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { responseMs: 200 } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
  t.equal(res.status, 504);
  await waitFor(() => backend.sockets[0]?.destroyed === true || backend.sockets[0]?.readableEnded === true, 2000, 'upstream closed');
});

t.test('upstream closing before a response -> 502', async (t) => {
  const backend = await rawBackend((sock) => sock.destroy());
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
  t.equal(res.status, 502);
});

t.test('a malformed upstream response -> 502', async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
  t.equal(res.status, 502);
});

t.test('a client that never finishes its head gets 408', async (t) => {
  const backend = await rawBackend(() => {});
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { headMs: 200 } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\n'));
  t.equal(res.status, 408);
});

t.test('100 Continue is relayed before the final response', async (t) => {
  const backend = await rawBackend((sock, data) => {
    const s = data.toString();
    if (s.includes('\r\n\r\n') && !s.endsWith('body')) sock.write('HTTP/1.1 100 Continue\r\n\r\n');
    if (s.endsWith('body')) sock.end('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n');
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 2000);
  s.write('POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n');
  await new Promise((r) => setTimeout(r, 100));
  s.write('body');
  const text = (await reply).toString();
  t.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 Created\r\n/);
});

t.test('after a complete response the upstream closes first (TIME_WAIT stays off the proxy)', async (t) => {
  let finFromProxyAt = 0;
  let backendClosedAt = 0;
  const backend = await rawBackend((sock, data) => {
    if (!data.includes('\r\n\r\n')) return;
    sock.on('end', () => (finFromProxyAt = Date.now()));
    sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    setTimeout(() => { backendClosedAt = Date.now(); sock.end(); }, 300);
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
  t.equal(res.body, 'ok', 'the client had its response at once');
  await waitFor(() => finFromProxyAt > 0, 3000, 'the proxy closes its side');
  t.ok(backendClosedAt > 0 && finFromProxyAt >= backendClosedAt, 'the proxy closed only after the upstream did');
});

t.test('upstream connect that never completes -> 504', async (t) => {
  // A listener that never accepts: once its backlog is full, the kernel drops SYNs and connect() hangs.
  const { spawn } = await import('node:child_process');
  const py = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => py.kill('SIGKILL'));
  const stuck = await new Promise<number>((r) => py.stdout.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
  const fillers: import('node:net').Socket[] = [];
  t.teardown(() => { for (const f of fillers) f.destroy(); });
  const net = await import('node:net');
  for (let i = 0; i < 4; i++) {
    const f = net.connect(stuck, '127.0.0.1');
    f.on('error', () => {});
    fillers.push(f);
  }
  await new Promise((r) => setTimeout(r, 200));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${stuck}`] } }, timeouts: { connectMs: 300 } });
  t.teardown(() => proxy.close());
  const codes: string[] = [];
  proxy.on('upstreamError', (e) => codes.push(e.code));
  const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 4000));
  t.equal(res.status, 504);
  t.same(codes, ['WSPLICE_UPSTREAM_TIMEOUT']);
});

t.test('pipelined requests followed by a half-close are all answered, then the connection closes', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 3000);
  s.end('GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n');
  const text = (await reply).toString();
  t.equal(text.match(/HTTP\/1\.1 200 OK/g)?.length, 3, 'three responses');
  t.match(text, /GET \/1 [\s\S]*GET \/2 [\s\S]*GET \/3 $/, 'in order');
});

t.test('ambiguous or malformed upstream responses are refused with 502, never relayed', async (t) => {
  const bad: Array<[string, string]> = [
    ['CL and TE', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 0\r\n\r\n'],
    ['bare LF', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n'],
    ['space before colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n'],
    ['NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n'],
    ['HTTP/2.0 status line', 'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['101 to a plain request', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n'],
  ];
  for (const [name, response] of bad) {
    const backend = await rawBackend(respondOnce(response));
    const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
    const codes: string[] = [];
    proxy.on('upstreamError', (e) => codes.push(e.code));
    const res = parseResponse(await rawExchange(port(proxy), 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 3000));
    t.equal(res.status, 502, `${name} -> 502`);
    t.same(codes, ['WSPLICE_UPSTREAM_PROTOCOL'], `${name}: counted as a protocol error`);
    await proxy.close();
    await backend.close();
  }
});

t.test('a response body that turns malformed after a valid head: the head reaches the client, then the connection is cut', async (t) => {
  const HEAD = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  // The bad chunk size in the head's own chunk, and in a later one.
  for (const split of [false, true]) {
    for (const keepalive of [false, true]) {
      const name = `${split ? 'a later chunk' : 'the same chunk'}${keepalive ? ', pooled' : ''}`;
      const backend = await rawBackend((sock, data) => {
        if (data.indexOf('\r\n\r\n') < 0) return;
        if (!split) sock.write(`${HEAD}5\r\nhello\r\nzz\r\n`);
        else sock.write(`${HEAD}5\r\nhello\r\n`, () => setTimeout(() => sock.write('zz\r\n'), 20));
      });
      const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`], ...(keepalive ? { keepalive: { idle: 4 } } : {}) } } });
      const s = await connect(port(proxy));
      const reply = readAll(s, 5000);
      s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
      const text = (await reply).toString('latin1');
      t.ok(s.readableEnded || s.destroyed, `${name}: the proxy cut the connection`);
      t.ok(text.startsWith(HEAD), `${name}: the client got the head before the cut`);
      t.notMatch(text, /\r\n0\r\n\r\n$/, `${name}: no terminating chunk: the body is visibly cut short`);
      await waitFor(() => backend.sockets.every((b) => b.destroyed), 3000, `${name}: the backend connection closed`);
      t.equal(proxy.stats().upstreamIdle, 0, `${name}: nothing was pooled`);
      s.destroy();
      await proxy.close();
      await backend.close();
    }
  }
});
