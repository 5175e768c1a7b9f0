/**
 * Finished upstream connections: the backend is asked to close (Connection: close) and
 * given a grace to do it; a backend that ignores it must not hold one descriptor per request.
 */
import type { Socket } from 'node:net';
import t from 'tap';
import { httpBackend, httpGet, port, rawBackend, startProxy, waitFor } from './support/index.js';

/** Answers every head with a complete response and never closes (ignores Connection: close). */
function stubbornBackend(): ReturnType<typeof rawBackend> {
  const answered = new WeakMap<Socket, number>();
  return rawBackend((sock, data) => {
    const heads = data.toString('latin1').split('\r\n\r\n').length - 1;
    for (let i = answered.get(sock) ?? 0; i < heads; i++) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    answered.set(sock, heads);
  });
}

const openOn = (sockets: Socket[]): number => sockets.filter((s) => !s.destroyed).length;

t.test('retired sockets are bounded by limits.maxRetired: the oldest is closed by the proxy', async (t) => {
  const b = await stubbornBackend();
  const proxy = await startProxy({
    upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } },
    timeouts: { retireMs: 600_000 },
    limits: { maxRetired: 4 },
  });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  for (let i = 0; i < 30; i++) {
    const r = await httpGet(port(proxy), `/r${i}`, { agent: false });
    t.equal(r.body, 'ok');
  }
  t.equal(b.sockets.length, 30, 'one upstream connection per request');
  t.ok(proxy.stats().retiredWaiting <= 4, `at most 4 retired sockets wait (${proxy.stats().retiredWaiting})`);
  await waitFor(() => openOn(b.sockets) <= 4, 5000, 'the backend to see all but 4 closed');
  t.equal(proxy.stats().retiredClosed, 26, 'every close the proxy made itself is counted');
});

t.test('a retired socket is closed by the proxy after timeouts.retireMs', async (t) => {
  const b = await stubbornBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } }, timeouts: { retireMs: 20 } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  for (let i = 0; i < 5; i++) t.equal((await httpGet(port(proxy), '/', { agent: false })).body, 'ok');
  await waitFor(() => openOn(b.sockets) === 0, 4000, 'every upstream connection closed');
  t.equal(proxy.stats().retiredClosed, 5);
  t.equal(proxy.stats().retiredWaiting, 0);
});

t.test('a backend that honours Connection: close closes first; nothing is counted', async (t) => {
  const b = await httpBackend();
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } }, timeouts: { retireMs: 600_000 } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  for (let i = 0; i < 5; i++) t.equal((await httpGet(port(proxy), '/x', { agent: false })).status, 200);
  await waitFor(() => proxy.stats().retiredWaiting === 0, 4000, 'the backend to close every connection');
  t.equal(proxy.stats().retiredClosed, 0);
});

t.test('a retired socket whose backend keeps sending bytes is still closed after timeouts.retireMs', async (t) => {
  const trickles: NodeJS.Timeout[] = [];
  const answered = new WeakSet<Socket>();
  const b = await rawBackend((sock, data) => {
    if (answered.has(sock) || data.indexOf('\r\n\r\n') < 0) return;
    answered.add(sock);
    sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    // Stray bytes after the response, never a FIN (bounded: 500 x 20 ms).
    let n = 0;
    const iv = setInterval(() => {
      if (sock.destroyed || ++n > 500) clearInterval(iv);
      else sock.write('x');
    }, 20);
    trickles.push(iv);
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } }, timeouts: { retireMs: 100 } });
  t.teardown(async () => { for (const iv of trickles) clearInterval(iv); await proxy.close(); await b.close(); });
  for (let i = 0; i < 3; i++) t.equal((await httpGet(port(proxy), '/', { agent: false })).body, 'ok');
  await waitFor(() => openOn(b.sockets) === 0, 4000, 'every upstream connection closed while its backend kept writing');
  t.equal(proxy.stats().retiredClosed, 3);
});
