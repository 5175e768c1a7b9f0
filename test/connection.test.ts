/**
 * The connection and its upstream leg across exchanges: what a finished
 * backend may still do, and what the next exchange must not suffer from it.
 * Raw backends on 127.0.0.1, raw clients.
 */
import net, { type Socket } from 'node:net';
import t from 'tap';
import { connect, parseResponse, port, rawBackend, startProxy, upgradeHead } from './helpers.js';
import { acceptFor } from '../src/index.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const OK_101 = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(KEY)}\r\n\r\n`;

/** One trip through the event loop's poll phase: I/O already queued (an RST) has been handled after it. */
function pollTurn(p: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p }, () => {
      s.destroy();
      resolve();
    });
    s.on('error', () => resolve());
  });
}

/** Read from `s` until `text` holds `done`, or the peer ends, or 10 s pass. */
function readUntil(s: Socket, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const guard = setTimeout(() => finish(), 10_000);
    const finish = (): void => {
      clearTimeout(guard);
      s.removeListener('data', onData);
      resolve(text);
    };
    const onData = (d: Buffer): void => {
      text += d.toString('latin1');
      if (done(text)) finish();
    };
    s.on('data', onData);
    s.once('end', finish);
    s.once('close', finish);
    s.on('error', () => {});
  });
}

for (const next of ['plain', 'upgrade'] as const) {
  t.test(`a late reset of a finished upstream does not touch the next exchange (${next})`, async (t) => {
    // Connection 0 answers completely, keeps its socket open, and resets it only once
    // the proxy is busy with connection 1's exchange.
    const b = await rawBackend((sock, data, conn) => {
      if (!data.includes('\r\n\r\n') || (sock as Socket & { done?: boolean }).done) return;
      (sock as Socket & { done?: boolean }).done = true;
      if (conn === 0) {
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
        return;
      }
      b.sockets[0]!.resetAndDestroy();
      void pollTurn(b.port).then(() => sock.write(next === 'plain' ? 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond' : `${OK_101}tunnel`));
    });
    const proxy = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } } });
    t.teardown(async () => { await proxy.close(); await b.close(); });
    const errors: string[] = [];
    proxy.on('upstreamError', (e) => errors.push(`${e.code} ${e.reason}`));
    const c = await connect(port(proxy));
    t.teardown(() => c.destroy());
    c.write('GET /1 HTTP/1.1\r\nHost: h\r\n\r\n');
    const first = await readUntil(c, (s) => s.endsWith('first'));
    t.match(first, /^HTTP\/1\.1 200 /);
    c.write(next === 'plain' ? 'GET /2 HTTP/1.1\r\nHost: h\r\n\r\n' : upgradeHead('/2', '', KEY));
    const second = await readUntil(c, (s) => s.endsWith(next === 'plain' ? 'second' : 'tunnel'));
    t.equal(parseResponse(second).status, next === 'plain' ? 200 : 101, 'the next exchange is answered by its backend');
    t.same(errors, [], 'no upstream error is reported');
  });
}
