// HTTP/1.0 clients and chunked responses (RFC 9112 6.1: chunked is HTTP/1.1 only).
// A 1.0 request goes upstream as HTTP/1.0, so a node:http backend that streams a body
// of unknown length answers close-delimited instead of chunked; the client reads a
// plain body that ends with the connection, with or without `Connection: keep-alive`.
// A backend that chunks anyway (it must not) is answered 502: the 1.0 client could not
// find the end of that body. nginx asks with 1.1 and de-chunks instead.
import http from 'node:http';
import t from 'tap';
import { rawBackend } from '../support/index.js';
import { rawExchange, startProxy } from './fixtures/harness.js';

/** A node:http backend: streams without Content-Length at /stream, a fixed length at /fixed. */
const seen: string[] = [];
const backend = http.createServer((req, res) => {
  seen.push(`${req.method} ${req.url} HTTP/${req.httpVersion}`);
  if (req.url === '/fixed') {
    res.writeHead(200, { 'Content-Length': '5' });
    res.end('fixed');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.write('hello ');
  setImmediate(() => res.end('world'));
});
await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
const backendPort = (backend.address() as { port: number }).port;

/** A raw backend that answers every head with a chunked HTTP/1.1 response, whatever was asked. */
const chunker = await rawBackend((sock, data) => {
  if (data.includes('\r\n\r\n') && !sock.writableEnded) {
    sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
  }
});

const h = await startProxy({
  upstreams: { node: { servers: [`127.0.0.1:${backendPort}`] }, raw: { servers: [`127.0.0.1:${chunker.port}`] } },
  routes: [
    { path: '/raw', upstream: 'raw' },
    { path: '/', upstream: 'node' },
  ],
});
t.teardown(async () => {
  await h.proxy.close();
  backend.closeAllConnections();
  await new Promise<void>((r) => backend.close(() => r()));
  await chunker.close();
});

function split(text: string): { head: string; body: string } {
  const i = text.indexOf('\r\n\r\n');
  return { head: text.slice(0, i + 2), body: text.slice(i + 4) };
}

for (const keepAlive of [false, true]) {
  const extra = keepAlive ? 'Connection: keep-alive\r\n' : '';
  t.test(`GET HTTP/1.0${keepAlive ? ' + keep-alive' : ''}, streamed body: plain bytes ended by the close, no chunk framing`, async (t) => {
    const n = seen.length;
    const r = await rawExchange(h.port, [`GET /stream HTTP/1.0\r\nHost: a.test\r\n${extra}\r\n`], { timeoutMs: 4000 });
    t.equal(r.end, 'fin', 'the proxy ends the connection: it is what delimits the body');
    t.same(r.statuses, [200]);
    const { head, body } = split(r.text);
    t.notMatch(head, /transfer-encoding/i, 'no Transfer-Encoding reaches a 1.0 client');
    t.match(head, /\r\nConnection: close\r\n/, 'the client is told the connection closes');
    t.equal(body, 'hello world', 'the body as the backend wrote it, unframed');
    t.equal(seen[n], 'GET /stream HTTP/1.0', 'the backend was asked in HTTP/1.0');
  });
}

t.test('GET HTTP/1.0 + keep-alive, Content-Length body: the connection is kept for the next request', async (t) => {
  const r = await rawExchange(
    h.port,
    ['GET /fixed HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 'GET /fixed HTTP/1.0\r\n\r\n'],
    { waitFor: (s) => s.endsWith('fixed') },
  );
  t.same(r.statuses, [200, 200], 'both requests answered on one connection');
  t.match(r.text, /^HTTP\/1\.1 200 OK\r\n[^]*Connection: keep-alive\r\n\r\nfixed/, 'the first answer keeps the connection');
  t.equal(r.end, 'fin');
});

t.test('an HTTP/1.1 client of the same backend still gets chunked (only 1.0 requests go up as 1.0)', async (t) => {
  const n = seen.length;
  const r = await rawExchange(h.port, ['GET /stream HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n']);
  t.match(split(r.text).head, /Transfer-Encoding: chunked/i);
  t.equal(seen[n], 'GET /stream HTTP/1.1');
});

t.test('a backend that chunks a response to an HTTP/1.0 request: 502, no chunk framing reaches the client', async (t) => {
  for (const extra of ['', 'Connection: keep-alive\r\n']) {
    const before = h.upstreamErrors.length;
    const r = await rawExchange(h.port, [`GET /raw HTTP/1.0\r\nHost: a.test\r\n${extra}\r\n`], { timeoutMs: 4000 });
    t.same(r.statuses, [502], JSON.stringify(extra));
    t.notMatch(r.text, /hello/, 'nothing of the chunked body');
    t.equal(r.end, 'fin');
    t.equal(h.upstreamErrors.length, before + 1, 'reported as an upstream error');
    t.match(h.upstreamErrors.at(-1)?.reason ?? '', /HTTP\/1\.0/);
  }
  t.match(chunker.received.at(-1)?.toString('latin1') ?? '', /^GET \/raw HTTP\/1\.0\r\n/, 'the backend was asked in HTTP/1.0');
});
