import net from 'node:net';
import t from 'tap';
import { resetOrDestroy } from '../src/sockets.js';
import { fdCount } from './support/index.js';

/** A connected client socket with its server side reading. */
async function pair(t: { teardown(fn: () => void): void }): Promise<net.Socket> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.resume(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => { server.close(); });
  const c = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => c.once('connect', r));
  c.on('error', () => {});
  await new Promise((r) => setTimeout(r, 20));
  return c;
}

t.test('a socket whose shutdown is in flight still closes, and its descriptor is released', async (t) => {
  const c = await pair(t);
  const before = await fdCount();
  const closed = new Promise<boolean>((r) => { c.once('close', () => r(true)); setTimeout(() => r(false), 1000); });
  c.end();
  await new Promise((r) => process.nextTick(r)); // end() has asked libuv for a shutdown; not done yet
  resetOrDestroy(c);
  t.equal(await closed, true, "'close' was emitted");
  t.equal(await fdCount(), before - 1, 'the descriptor was closed');
});

t.test('an open socket is reset (RST), so the peer sees ECONNRESET', async (t) => {
  let peerError = '';
  const server = net.createServer((s) => s.on('error', (e: NodeJS.ErrnoException) => (peerError = e.code ?? '')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => { server.close(); });
  const c = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
  await new Promise((r) => c.once('connect', r));
  await new Promise((r) => setTimeout(r, 20));
  resetOrDestroy(c);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(peerError, 'ECONNRESET');
});
