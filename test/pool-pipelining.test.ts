/**
 * Backpressure across pipelined exchanges: a client that sends thousands of requests and
 * never reads must not make the proxy buffer their responses; it stops reading the client.
 */
import t from 'tap';
import { connect, httpBackend, port, startProxy, waitFor } from './support/index.js';

const COUNT = 4000;
const BODY = 'x'.repeat(16 * 1024);

t.test('a pipelining client that never reads: the proxy stops starting exchanges', async (t) => {
  const b = await httpBackend((_req, res) => {
    res.writeHead(200, { 'Content-Length': BODY.length });
    res.end(BODY);
    return true;
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  const s = await connect(port(proxy));
  t.teardown(async () => { s.destroy(); await proxy.close(); await b.close(); });
  s.pause(); // never reads
  s.write('GET /p HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(COUNT));
  // The backend's count of requests received stops growing: wait until it holds still.
  let last = -1;
  let still = 0;
  await waitFor(() => {
    const n = b.seen.length;
    still = n === last && n > 0 ? still + 1 : 0;
    last = n;
    return still >= 30 || n === COUNT;
  }, 20_000, 'the backend count to settle');
  const served = b.seen.length;
  t.ok(served < COUNT / 4, `the proxy stopped after ${served} of ${COUNT} requests (bounded by socket buffers, not by the count)`);
  // Once the client reads, every response arrives, in order, none lost.
  let got = 0;
  let text = '';
  const done = new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      let i: number;
      while ((i = text.indexOf('HTTP/1.1 200 OK')) >= 0) {
        got++;
        text = text.slice(i + 15);
      }
      if (got === COUNT) resolve();
    });
  });
  s.resume();
  await done;
  t.equal(got, COUNT, 'every pipelined request answered once the client reads');
  t.equal(b.seen.length, COUNT);
});
