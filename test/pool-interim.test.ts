/**
 * Backpressure on interim responses: a backend streaming 103 Early Hints to a client that never
 * reads must not make the proxy buffer them; the proxy stops reading the backend.
 */
import t from 'tap';
import { connect, port, rawBackend, startProxy, waitFor } from './support/index.js';

const HINT = Buffer.from('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n'.repeat(256));
const TOTAL = 64 * 1024 * 1024;

t.test('interim responses to a non-reading client: the proxy stops reading the backend', async (t) => {
  let written = 0;
  const b = await rawBackend((sock, data) => {
    if (written > 0 || data.indexOf('\r\n\r\n') < 0) return;
    // As much as the proxy takes, up to TOTAL, respecting backpressure.
    const more = (): void => {
      while (written < TOTAL) {
        written += HINT.length;
        if (!sock.write(HINT)) {
          sock.once('drain', more);
          return;
        }
      }
      sock.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    };
    more();
  });
  const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
  const s = await connect(port(proxy));
  t.teardown(async () => { s.destroy(); await proxy.close(); await b.close(); });
  s.pause(); // never reads
  s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  let last = -1;
  let still = 0;
  await waitFor(() => {
    still = written === last && written > 0 ? still + 1 : 0;
    last = written;
    return still >= 30 || written >= TOTAL;
  }, 20_000, 'the backend to stall');
  t.ok(written < TOTAL / 4, `the backend could write only ${written} of ${TOTAL} bytes (socket buffers, not the total)`);
});
