/**
 * Keep-alive pools for plain HTTP: idle upstream connections per backend, reused only after a
 * complete response of known length; the keep-alive race (a reused connection closing before any
 * response byte) is retried once on a fresh connection for idempotent requests; upgrades never
 * take a pooled connection; the default stays Connection: close.
 */
import type { Socket } from 'node:net';
import t from 'tap';
import {
  eachHead, httpBackend, httpGet, parseResponse, port, rawBackend, rawExchange, startProxy, switchingProtocols, requestKey, upgradeHead,
  openTunnel, waitFor,
} from './support/index.js';

const keepalive = { idle: 4 };

t.test('sequential requests share one upstream connection; Connection: close is not sent', async (t) => {
  const b = await httpBackend();
  let conns = 0;
  b.server.on('connection', () => conns++);
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], keepalive } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  for (let i = 0; i < 10; i++) t.equal((await httpGet(port(proxy), `/n${i}`, { agent: false })).body, `GET /n${i} `);
  t.equal(conns, 1, 'one upstream connection for ten requests from ten clients');
  t.notOk(b.seen.some((s) => s.headers.connection === 'close'), 'no Connection: close upstream');
  t.equal(proxy.stats().upstreamReused, 9);
});

t.test('without keepalive every request has its own connection and Connection: close', async (t) => {
  const b = await httpBackend();
  let conns = 0;
  b.server.on('connection', () => conns++);
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  for (let i = 0; i < 3; i++) await httpGet(port(proxy), '/', { agent: false });
  t.equal(conns, 3);
  t.ok(b.seen.every((s) => s.headers.connection === 'close'));
});

t.test('keepalive.requests bounds the requests per connection; a response saying close is not reused', async (t) => {
  const b = await httpBackend((req, res) => {
    if (req.url !== '/close') return false;
    res.writeHead(200, { 'Content-Length': 1, Connection: 'close' });
    res.end('c');
    return true;
  });
  let conns = 0;
  b.server.on('connection', () => conns++);
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], keepalive: { idle: 4, requests: 3 } } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  for (let i = 0; i < 7; i++) await httpGet(port(proxy), '/', { agent: false });
  t.equal(conns, 3, '7 requests at 3 per connection');
  conns = 0;
  await httpGet(port(proxy), '/close', { agent: false });
  await httpGet(port(proxy), '/close', { agent: false });
  t.ok(conns >= 1, 'the pooled one was used once, then a new one per request');
  const before = conns;
  await httpGet(port(proxy), '/', { agent: false });
  t.equal(conns, before + 1, 'a response that said close left nothing in the pool');
});

/** Answers the first request of each connection and keeps it; closes on the second without a byte (the race). */
function racingBackend(): ReturnType<typeof rawBackend> {
  return rawBackend(eachHead((sock, before) => {
    if (before === 0) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    else sock.destroy();
  }));
}

t.test('the keep-alive race: a reused connection closing before any response byte is retried once on a fresh one', async (t) => {
  const b = await racingBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], keepalive } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const GET = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  for (let i = 0; i < 4; i++) {
    const r = parseResponse(await rawExchange(port(proxy), GET));
    t.equal(r.status, 200, `request ${i}: no lost request`);
    t.equal(r.body, 'ok');
  }
  t.equal(proxy.stats().upstreamRaces, 3, 'every reuse met the race and went out again');
  t.equal(b.received.length, 4, 'one fresh connection per race');
  // A POST is not sent twice.
  const post = 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz';
  t.equal(parseResponse(await rawExchange(port(proxy), post)).status, 502, 'a POST meeting the race is not repeated');
});

t.test('an upgrade never takes a pooled connection', async (t) => {
  const b = await rawBackend(eachHead((sock, _before, head) => {
    if (/upgrade: websocket/i.test(head)) sock.write(switchingProtocols(requestKey(head)!));
    else sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  }));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], keepalive } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  t.equal((await httpGet(port(proxy), '/', { agent: false })).body, 'ok');
  const s = await openTunnel(port(proxy), upgradeHead('/ws'));
  s.destroy();
  t.equal(b.received.length, 2, 'the upgrade opened its own connection');
  t.notMatch(b.received[0]!.toString('latin1'), /upgrade/i, 'the pooled one carried only the plain request');
});

t.test('an idle pooled connection the backend closes is forgotten; the next request opens a new one', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], keepalive } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  await httpGet(port(proxy), '/', { agent: false });
  b.server.closeAllConnections();
  await waitFor(() => proxy.stats().upstreamIdle === 0, 3000, 'the closed connection to leave the pool');
  t.equal((await httpGet(port(proxy), '/again', { agent: false })).body, 'GET /again ');
});

t.test('an idle pooled connection that receives a stray byte is closed; the next request opens a new one', async (t) => {
  const b = await rawBackend(eachHead((sock, _before, _head, conn) => {
    sock.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc${conn}`);
    if (conn === 0) setTimeout(() => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray'), 30); // out of step
  }));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], keepalive } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  t.equal((await httpGet(port(proxy), '/', { agent: false })).body, 'c0');
  await waitFor(() => b.sockets[0]!.destroyed, 3000, 'the proxy to close the out-of-step connection');
  t.equal(proxy.stats().upstreamIdle, 0, 'and to forget it');
  t.equal((await httpGet(port(proxy), '/', { agent: false })).body, 'c1', 'the next request is answered on a new connection, never with the stray bytes');
  t.equal(proxy.stats().upstreamReused, 0);
});

t.test('an idle pooled connection is closed after keepalive.timeoutMs; one in use is not', async (t) => {
  const b = await httpBackend();
  let closed = 0;
  b.server.on('connection', (s: Socket) => s.on('close', () => closed++));
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], keepalive: { idle: 4, timeoutMs: 1000 } } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  // Two connections at once, then idle: both wait in the pool until the timeout closes them.
  await Promise.all([httpGet(port(proxy), '/a', { agent: false }), httpGet(port(proxy), '/b', { agent: false })]);
  t.equal(proxy.stats().upstreamIdle, 2, 'both in the pool');
  await waitFor(() => proxy.stats().upstreamIdle === 0, 5000, 'the idle connections to time out');
  await waitFor(() => closed === 2, 3000, 'the backend to see both closed');
  // Used again well within its timeout, a connection's idle time starts over: four gaps of a
  // fraction of the timeout span more than the timeout, and the one connection serves them all.
  await httpGet(port(proxy), '/c', { agent: false });
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 300));
    t.equal((await httpGet(port(proxy), `/d${i}`, { agent: false })).body, `GET /d${i} `);
  }
  t.equal(proxy.stats().upstreamReused, 4, 'reused each time it came back within the timeout');
  t.equal(closed, 2, 'the connection in use was never closed');
  await waitFor(() => proxy.stats().upstreamIdle === 0, 5000, 'then timed out once idle');
});
