// Graceful close and fresh connections: a connection accepted before the listener stopped whose
// request has not arrived yet is served (a zero-downtime upgrade must not reset it); an idle
// keep-alive connection that was already served is closed at once; a fresh one that never sends
// is closed quietly after its head timeout.
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { createProxy } from '../src/index.js';
import { waitFor } from './support/index.js';

/** Everything a raw socket receives until the peer ends or resets it. */
function collect(s: net.Socket): Promise<{ text: string; error: string | null }> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => {
    let error: string | null = null;
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), error }));
  });
}

t.test('proxy.close(): a fresh connection is served, an idle served one is closed, a silent one times out', async (t) => {
  const backend = http.createServer((req, res) => res.end(`hello ${req.url}`));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => backend.close());
  const proxy = createProxy({
    upstreams: { b: { servers: [`127.0.0.1:${(backend.address() as AddressInfo).port}`] } },
    timeouts: { drainMs: 10_000, headMs: 500 },
  });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  const port = (proxy.address() as AddressInfo).port;

  // Served once, then idle on keep-alive.
  const served = net.connect(port, '127.0.0.1');
  const servedAll = collect(served);
  served.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => served.bytesRead > 0, 5000, 'the first answer');
  // Accepted, request still to come; and accepted, never sends.
  const fresh = net.connect(port, '127.0.0.1');
  const freshAll = collect(fresh);
  const silent = net.connect(port, '127.0.0.1');
  const silentAll = collect(silent);
  await Promise.all([once(fresh, 'connect'), once(silent, 'connect')]);
  await waitFor(() => proxy.stats().connections === 3, 5000, 'three connections accepted');

  const closed = proxy.close();
  await new Promise((r) => setTimeout(r, 50)); // the request arrives after the drain began
  fresh.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\n');

  const f = await freshAll;
  t.equal(f.error, null, 'the fresh connection is not reset');
  t.match(f.text, /^HTTP\/1\.1 200 /, 'its request is answered');
  t.match(f.text, /\r\nConnection: close\r\n/i, 'with Connection: close (the proxy is draining)');
  t.match(f.text, /hello \/late$/, 'the whole body');
  const s = await servedAll;
  t.match(s.text, /hello \/first$/, 'the served connection got its answer');
  t.equal(s.error, null, 'and was then closed without a reset');
  const q = await silentAll;
  t.equal(q.text, '', 'the silent connection is closed without a byte');
  await closed;
  t.equal(proxy.stats().connections, 0, 'no connection left');
});
