/**
 * Backpressure inside one response: a backend streaming a large body to a client that does not
 * read must not make the proxy buffer it; the proxy stops reading the backend, and once the client
 * reads, every byte arrives. On a pooled connection the paused socket goes back to the pool after
 * the response and serves the next request.
 */
import t from 'tap';
import { connect, eachHead, port, rawBackend, startProxy, waitFor } from './support/index.js';

const TOTAL = 64 * 1024 * 1024;
const PIECE = Buffer.alloc(64 * 1024, 'b');

/** Answers each request head: a TOTAL-byte body for /big (written as fast as the proxy takes it), else 2 bytes. */
function bigBackend(progress: { written: number }): ReturnType<typeof rawBackend> {
  return rawBackend(eachHead((sock, _before, head) => {
    if (!head.includes('/big')) {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      return;
    }
    sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${TOTAL}\r\n\r\n`);
    const more = (): void => {
      while (progress.written < TOTAL) {
        progress.written += PIECE.length;
        if (!sock.write(PIECE)) {
          sock.once('drain', more);
          return;
        }
      }
    };
    more();
  }));
}

for (const keepalive of [false, true]) {
  t.test(`a large body to a non-reading client: the proxy stops reading the backend${keepalive ? ' (pooled)' : ''}`, async (t) => {
    const progress = { written: 0 };
    const b = await bigBackend(progress);
    const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`], ...(keepalive ? { keepalive: { idle: 4 } } : {}) } } });
    const s = await connect(port(proxy));
    t.teardown(async () => { s.destroy(); await proxy.close(); await b.close(); });
    s.pause(); // not reading yet
    s.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    let last = -1;
    let still = 0;
    await waitFor(() => {
      still = progress.written === last && progress.written > 0 ? still + 1 : 0;
      last = progress.written;
      return still >= 30 || progress.written >= TOTAL;
    }, 20_000, 'the backend to stall');
    t.ok(progress.written < TOTAL / 4, `the backend could write only ${progress.written} of ${TOTAL} bytes (socket buffers, not the total)`);
    // Now read: the whole body arrives, then (same client connection) a second request is answered.
    let got = 0;
    let tail = '';
    const whole = new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        got += d.length;
        tail = (tail + d.subarray(Math.max(0, d.length - 64)).toString('latin1')).slice(-64);
        if (tail.endsWith('\r\n\r\nok')) resolve(); // the small answer: the big body is all 'b'
      });
    });
    s.resume();
    await waitFor(() => got >= TOTAL, 20_000, 'the whole body');
    s.write('GET /small HTTP/1.1\r\nHost: x\r\n\r\n');
    await whole;
    t.equal(progress.written, TOTAL, 'the backend wrote everything once the client read');
    if (keepalive) {
      t.equal(b.sockets.length, 1, 'the second request went out on the pooled connection');
      t.equal(proxy.stats().upstreamReused, 1);
    } else t.equal(b.sockets.length, 2, 'a new connection per request');
  });
}
