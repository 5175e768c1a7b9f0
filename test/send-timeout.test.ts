// timeouts.sendMs (nginx proxy_send_timeout): while a request body is still going up, the limit
// is the time between two writes to the upstream; once the body is all sent, the response
// head's limit (responseMs) runs instead, as nginx starts its read timeout there.
import http from 'node:http';
import net, { type Socket } from 'node:net';
import t from 'tap';
import { createProxy } from '../src/index.js';
import { connect, parseResponse, port, rawBackend, readAll, startProxy } from './support/index.js';

const BIG = 64 * 1024 * 1024; // more than every buffer on the way holds
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** A backend that accepts and never reads a byte. */
async function deafBackend(): Promise<{ port: number; sockets: Socket[]; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server = net.createServer((s) => {
    s.pause();
    s.on('error', () => {});
    sockets.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** POST a `BIG` body as fast as the proxy takes it, until the proxy answers or closes. */
async function postUntilAnswered(p: number): Promise<string> {
  const s = await connect(p);
  s.on('error', () => {});
  const reply = readAll(s, 20_000);
  let answered = false;
  void reply.then(() => (answered = true));
  s.write(`POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: ${BIG}\r\n\r\n`);
  for (let sent = 0; sent < BIG && !answered && !s.destroyed; sent += CHUNK.length) {
    if (!s.write(CHUNK)) await Promise.race([new Promise((r) => s.once('drain', r)), reply]);
  }
  const out = await reply;
  s.destroy();
  return out.toString('latin1');
}

/** A backend that reads a 6-byte body and answers 200 `delayMs` after its last byte. */
async function readingBackend(delayMs: number) {
  let body = 0;
  const backend = await rawBackend((sock, got) => {
    const at = got.indexOf('\r\n\r\n');
    if (at < 0) return;
    body = got.length - at - 4;
    if (body === 6) setTimeout(() => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'), delayMs);
  });
  return { backend, body: () => body };
}

/** POST a 6-byte body in three pieces `gapMs` apart; the parsed answer. */
async function slowPost(p: number, gapMs: number): Promise<ReturnType<typeof parseResponse>> {
  const s = await connect(p);
  const reply = readAll(s, 10_000);
  s.write('POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nConnection: close\r\n\r\n');
  for (const piece of ['ab', 'cd', 'ef']) {
    await new Promise((r) => setTimeout(r, gapMs));
    s.write(piece);
  }
  const res = parseResponse((await reply).toString('latin1'));
  s.destroy();
  return res;
}

t.test('an upstream that stops reading a request body: 504 after sendMs, not after responseMs', async (t) => {
  const backend = await deafBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { sendMs: 300, responseMs: 600_000 } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const errors: string[] = [];
  proxy.on('upstreamError', (e) => errors.push(`${e.code}: ${e.reason}`));
  const res = parseResponse(await postUntilAnswered(port(proxy)));
  t.equal(res.status, 504);
  t.match(errors, [/^WSPLICE_UPSTREAM_TIMEOUT: .*sending the request body timed out/]);
  t.equal(backend.sockets.length, 1, 'one connection, not retried: part of the body was sent');
});

t.test('a body all sent: the response head has responseMs, however short sendMs is', async (t) => {
  let heard = 0;
  const backend = await rawBackend((sock, got) => {
    const text = got.toString('latin1');
    const at = text.indexOf('\r\n\r\n');
    if (at < 0 || got.length - at - 4 < 5 || heard++ > 0) return;
    setTimeout(() => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), 700); // well past sendMs
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { sendMs: 100, responseMs: 10_000 } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const s = await connect(port(proxy));
  const reply = readAll(s, 10_000);
  s.write('POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
  const res = parseResponse((await reply).toString('latin1'));
  s.destroy();
  t.equal(res.status, 200);
  t.equal(res.body, 'ok');
});

t.test('a slow client uploading to a reading upstream is not cut by sendMs', async (t) => {
  const { backend, body } = await readingBackend(0);
  // Each piece comes 600 ms after the one before: responseMs (400) would cut the upload if it ran;
  // sendMs (5000) is refreshed by each write.
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { sendMs: 5000, responseMs: 400 } });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const res = await slowPost(port(proxy), 600);
  t.equal(res.status, 200);
  t.equal(body(), 6, 'the whole body reached the backend');
});

/** proxy.web in an app's http.Server; each call's rejection code is kept. */
async function webApp(proxy: ReturnType<typeof createProxy>) {
  const codes: string[] = [];
  const server = http.createServer((req, res) => {
    proxy.web(req, res).then(() => codes.push('ok'), (e: Error & { code?: string }) => codes.push(`${e.code}: ${e.message}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: port(server), codes, close: () => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); } };
}

t.test('proxy.web: an upstream that stops reading the body is a 504 after sendMs', async (t) => {
  const backend = await deafBackend();
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { sendMs: 300, responseMs: 600_000 } });
  const app = await webApp(proxy);
  t.teardown(async () => { await app.close(); await backend.close(); await proxy.close(); });
  const res = parseResponse(await postUntilAnswered(app.port));
  t.equal(res.status, 504);
  t.match(app.codes, [/^WSPLICE_UPSTREAM_TIMEOUT: .*sending the request body timed out/]);
});

t.test('proxy.web: a slow upload to a reading upstream is timed by sendMs between chunks, then responseMs', async (t) => {
  const { backend, body } = await readingBackend(100);
  // Pieces 300 ms apart, 900 ms in all: a responseMs (600) running from the connect would cut the
  // upload; sendMs (5000) is refreshed by each piece, and responseMs starts after the last.
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { sendMs: 5000, responseMs: 600 } });
  const app = await webApp(proxy);
  t.teardown(async () => { await app.close(); await backend.close(); await proxy.close(); });
  const res = await slowPost(app.port, 300);
  t.equal(res.status, 200);
  t.equal(body(), 6, 'the whole body reached the backend');
  t.same(app.codes, ['ok']);
});
