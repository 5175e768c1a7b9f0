// Bad input to proxy.ws: every misuse is a clear rejection (or callback error), never a throw
// into the server, never an unhandled rejection, never a socket or descriptor left open.
import http from 'node:http';
import { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createProxy, type WsResult } from '../../src/index.js';
import {
  closeWss, connect, fdCount, openWs, parseResponse, port, rawBackend, readAll, respondOnce, upgradeHead, waitFor, whoami, wsEcho,
} from '../support/index.js';

type Handler = (req: http.IncomingMessage, socket: Socket, head: Buffer) => void;

/** An http server whose upgrade handler is the test's; plain requests answer 'app'. */
async function app(onUpgrade: Handler, onRequest?: http.RequestListener): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer(onRequest ?? ((_q, res) => res.end('app')));
  server.on('upgrade', onUpgrade);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: port(server), close: () => { server.closeAllConnections(); return new Promise((r) => server.close(() => r())); } };
}

const unhandled: unknown[] = [];
process.on('unhandledRejection', (e) => unhandled.push(e));
const fdsBefore = fdCount();

const wss = await wsEcho('echo');
const refusing = await rawBackend(respondOnce('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
const proxy = createProxy({
  upstreams: { ws: { servers: [`127.0.0.1:${port(wss)}`] }, refusing: { servers: [`127.0.0.1:${refusing.port}`] } },
  routes: [{ path: '/', upstream: 'ws' }, { path: '/refusing', upstream: 'refusing' }],
});
t.teardown(async () => {
  await proxy.close();
  await closeWss(wss);
  await refusing.close();
});

function errorOf(p: Promise<WsResult>): Promise<Error & { code?: string }> {
  return p.then(() => { throw new Error('resolved'); }, (e: Error) => e);
}

t.test('a destroyed socket: rejected, nothing else happens', async (t) => {
  let got: Promise<Error & { code?: string }> | null = null;
  const a = await app((req, socket, head) => {
    socket.destroy();
    got = errorOf(proxy.ws(req, socket, head));
  });
  t.teardown(a.close);
  const s = await connect(a.port);
  s.write(upgradeHead('/'));
  await readAll(s, 2000);
  await waitFor(() => got !== null, 2000, 'the handler');
  const e = await got!;
  t.equal(e.code, 'WSPLICE_EMBED_MISUSE');
  t.match(e.message, /already closed/);
});

t.test('a request that is not an upgrade: rejected, and the server still owns and answers it', async (t) => {
  let got: Promise<Error & { code?: string }> | null = null;
  const a = await app(() => {}, (req, res) => {
    got = errorOf(proxy.ws(req, req.socket, Buffer.alloc(0)));
    res.end('still mine');
  });
  t.teardown(a.close);
  const s = await connect(a.port);
  const reply = readAll(s, 2000);
  s.end('GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const r = parseResponse((await reply).toString('latin1'));
  t.equal(r.status, 200);
  t.match(r.body, /still mine/);
  const e = await got!;
  t.equal(e.code, 'WSPLICE_EMBED_MISUSE');
  t.match(e.message, /not an upgrade request.*proxy\.web/);
});

t.test('proxy.ws twice on one socket: the second is rejected, the first tunnel works', async (t) => {
  const second: Array<Promise<Error & { code?: string }>> = [];
  const a = await app((req, socket, head) => {
    void proxy.ws(req, socket, head);
    second.push(errorOf(proxy.ws(req, socket, head)));
  });
  t.teardown(a.close);
  const ws = await openWs(`ws://127.0.0.1:${a.port}/`);
  t.equal(await whoami(ws), 'echo', 'the first call carries the tunnel');
  const e = await second[0]!;
  t.equal(e.code, 'WSPLICE_EMBED_MISUSE');
  t.match(e.message, /already called/);
  ws.terminate();
});

t.test('a second request behind the upgrade in head never reaches the upstream as a request', async (t) => {
  const results: Array<Promise<WsResult>> = [];
  const a = await app((req, socket, head) => { results.push(proxy.ws(req, socket, head)); });
  t.teardown(a.close);
  const n = refusing.received.length;
  const s = await connect(a.port);
  const reply = readAll(s, 3000);
  s.write(upgradeHead('/refusing') + 'GET /admin HTTP/1.1\r\nHost: a\r\n\r\n');
  const r = parseResponse((await reply).toString('latin1'));
  s.destroy();
  t.equal(r.status, 403, "the upstream's refusal is relayed");
  t.same(await results[0], { upgraded: false, relay: null });
  const up = refusing.received[n]!.toString('latin1');
  t.notMatch(up, /\/admin/, 'the bytes behind the upgrade were held as early data and dropped');
  t.equal(refusing.received.length, n + 1, 'one upstream connection');
});

t.test('bad per-call options: a ConfigError naming the field; the socket is closed', async (t) => {
  let got: Promise<Error & { code?: string; field?: string }> | null = null;
  const a = await app((req, socket, head) => { got = errorOf(proxy.ws(req, socket, head, { target: 'nowhere' })); });
  t.teardown(a.close);
  const s = await connect(a.port);
  const reply = readAll(s, 2000);
  s.write(upgradeHead('/'));
  t.equal((await reply).length, 0, 'closed without an answer');
  const e = (await got!) as Error & { field?: string };
  t.equal(e.field, 'target');
});

t.test('the callback form gets the error; an unawaited rejection is not an unhandled one', async (t) => {
  const errs: Error[] = [];
  const a = await app((req, socket, head) => {
    if (req.url === '/cb/nowhere') proxy.ws(req, socket, head, { target: '127.0.0.1:1' }, (err) => { if (err) errs.push(err); });
    else void proxy.ws(req, socket, head, { target: '127.0.0.1:1' }); // nobody listens
  });
  t.teardown(a.close);
  for (const path of ['/cb/nowhere', '/ignored']) {
    const s = await connect(a.port);
    const reply = readAll(s, 3000);
    s.write(upgradeHead(path));
    t.equal(parseResponse((await reply).toString('latin1')).status, 502, `${path}: 502`);
    s.destroy();
  }
  await waitFor(() => errs.length === 1, 3000, 'the callback');
  t.equal((errs[0] as Error & { code?: string }).code, 'WSPLICE_UPSTREAM_CONNECT');
});

t.test('a client that leaves before the upgrade completes: rejected WSPLICE_CLIENT_GONE', async (t) => {
  const silent = await rawBackend(() => {});
  const results: Array<Promise<Error & { code?: string }>> = [];
  const a = await app((req, socket, head) => { results.push(errorOf(proxy.ws(req, socket, head, { target: `127.0.0.1:${silent.port}` }))); });
  t.teardown(async () => { await a.close(); await silent.close(); });
  const s = await connect(a.port);
  s.write(upgradeHead('/'));
  await waitFor(() => silent.received.length === 1 && silent.received[0]!.length > 0, 3000, 'the head upstream');
  s.destroy();
  t.equal((await results[0]!).code, 'WSPLICE_CLIENT_GONE');
  await waitFor(() => silent.sockets[0]!.destroyed || silent.sockets[0]!.readableEnded, 3000, 'the upstream leg closed');
});

t.test('a stream that is not a socket: rejected, nothing thrown', async (t) => {
  const fake = new PassThrough();
  const req = Object.assign(new http.IncomingMessage(new Socket()), { upgrade: true });
  const e = await errorOf(proxy.ws(req, fake, Buffer.alloc(0)));
  t.equal(e.code, 'WSPLICE_EMBED_MISUSE');
  t.match(e.message, /net\.Socket/);
  t.notOk(fake.destroyed, 'left to its owner');
});

t.test('no unhandled rejection and no descriptor left after all of the above', async (t) => {
  await waitFor(() => proxy.stats().connections === 0, 5000, 'every embedded connection to end');
  t.same(unhandled, []);
  // Left open for the process's life: the peers' four listeners, the relay engine's epoll set and
  // eventfd, the addon's dial set (one epoll fd): seven; any descriptor of a connection is a leak.
  await waitFor(() => fdCount() <= fdsBefore + 7, 5000, 'descriptors back (the peers listen; the engine and the dial set keep theirs)');
  t.pass();
});
