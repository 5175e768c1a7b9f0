// socket.io 4 behind the proxy with two backends: its default transports (HTTP long-polling first,
// then the WebSocket upgrade) need every request of one session on one backend. The sticky cookie
// and a hash on a client header both give that; every client must connect, upgrade and echo.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { Server as IoServer } from 'socket.io';
import { io, type Socket } from 'socket.io-client';
import { createProxy, type UpstreamConfig } from '../src/index.js';
import { frontPort, type Front } from './support/index.js';

const CLIENTS = 8;

interface IoBackend {
  address: string;
  /** Sessions this backend did not know (socket.io's "Session ID unknown"). */
  unknown: number;
  close(): Promise<void>;
}

async function ioBackend(name: string): Promise<IoBackend> {
  const server = http.createServer();
  const ioServer = new IoServer(server);
  const b: IoBackend = { address: '', unknown: 0, close: async () => { ioServer.close(); await new Promise((r) => server.close(r)); } };
  ioServer.engine.on('connection_error', () => b.unknown++);
  ioServer.on('connection', (s) => s.on('echo', (m: string, ack: (r: string) => void) => ack(`${name}:${m}`)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return b;
}

/** Connect, wait for the upgrade to WebSocket, echo once; resolves with the echo. Bounded by the socket's own timeouts. */
function session(url: string, headers: Record<string, string>): Promise<{ socket: Socket; echo: string; transport: string }> {
  // withCredentials: the Node client keeps cookies (the sticky one) only when asked, as a browser would for CORS.
  const socket = io(url, { forceNew: true, reconnection: false, withCredentials: true, extraHeaders: headers, timeout: 5000 });
  return new Promise((resolve, reject) => {
    socket.once('connect_error', reject);
    socket.once('disconnect', (why) => reject(new Error(`disconnected: ${why}`)));
    socket.io.engine.once('upgrade', () => {
      socket.timeout(5000).emit('echo', 'hi', (err: Error | null, echo: string) => {
        if (err) reject(err);
        else resolve({ socket, echo, transport: socket.io.engine.transport.name });
      });
    });
  });
}

async function runClients(t: Test, upstream: Omit<UpstreamConfig, 'servers'>, headersOf: (i: number) => Record<string, string>, front: Front = 'listener'): Promise<void> {
  const backends = await Promise.all([ioBackend('A'), ioBackend('B')]);
  const proxy = createProxy({ upstreams: { u: { ...upstream, servers: backends.map((b) => b.address) } } });
  const p = await frontPort(proxy, front);
  const sockets: Socket[] = [];
  t.teardown(async () => {
    for (const s of sockets) s.disconnect();
    await proxy.close();
    for (const b of backends) await b.close();
  });
  const url = `http://127.0.0.1:${p}`;
  const results = await Promise.allSettled(Array.from({ length: CLIENTS }, (_, i) => session(url, headersOf(i))));
  const ok = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof session>>>).value);
  for (const r of ok) sockets.push(r.socket);
  t.equal(ok.length, CLIENTS, `every client connected, upgraded and echoed (${results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)).join('; ')})`);
  t.ok(ok.every((r) => r.transport === 'websocket'), 'every session upgraded to WebSocket');
  t.ok(ok.every((r) => /^[AB]:hi$/.test(r.echo)), 'echoes came back');
  const names = new Set(ok.map((r) => r.echo[0]));
  t.equal(names.size, 2, 'the sessions are spread over both backends');
  t.equal(backends[0]!.unknown + backends[1]!.unknown, 0, 'no backend met a session it did not know');
}

t.test('socket.io (polling, then upgrade) through the sticky cookie', async (t) => {
  await runClients(t, { sticky: { cookie: 'srv', httpOnly: true } }, () => ({}));
});

t.test('socket.io through an app server (polling by proxy.web, the upgrade by proxy.ws) and the sticky cookie', async (t) => {
  await runClients(t, { sticky: { cookie: 'srv', httpOnly: true } }, () => ({}), 'proxy.web');
});

t.test('socket.io through hash $http_x_session', async (t) => {
  await runClients(t, { balance: { method: 'hash', key: '$http_x_session' } }, (i) => ({ 'x-session': `session-${i}` }));
});
