/**
 * The demo backends behind `npm start`: a small echo server that answers
 * WebSocket upgrades itself (RFC 6455, text and binary echo, ping/pong, close)
 * and plain GETs with a text page. Written against raw sockets on purpose:
 * it is also the simplest working picture of what a backend sees.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { acceptFor } from '../websocket/handshake.js';

function handleFrames(sock: Socket, name: string): void {
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (buf[1]! & 0x80) !== 0;
      const total = off + (masked ? 4 : 0) + len;
      if (buf.length < total) return;
      const payload = Buffer.from(buf.subarray(off + (masked ? 4 : 0), total));
      if (masked) {
        const mask = buf.subarray(off, off + 4);
        for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      }
      buf = buf.subarray(total);
      if (op === 0x8) {
        sock.end(frame(0x8, payload.subarray(0, 2)));
        return;
      }
      if (op === 0x9) sock.write(frame(0xa, payload));
      else if (op === 0x1 && payload.toString() === 'whoami') sock.write(frame(0x1, Buffer.from(name)));
      else if (op === 0x1 || op === 0x2) sock.write(frame(op, payload));
    }
  });
}

/** An unmasked server frame. */
function frame(op: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | op, len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126 && len < 65536) {
    head[0] = 0x80 | op;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else if (len >= 65536) {
    head[0] = 0x80 | op;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

/** Start one echo backend named `name` on host:port (0 = any free port). */
export function startEchoBackend(name: string, host = '127.0.0.1', port = 0): Promise<Server> {
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    let head = '';
    const onHead = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16384) sock.destroy();
        return;
      }
      sock.removeListener('data', onHead);
      const lines = head.slice(0, end).split('\r\n');
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      const headers = new Map<string, string>();
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
      }
      const key = headers.get('sec-websocket-key');
      if (key !== undefined && /websocket/i.test(headers.get('upgrade') ?? '')) {
        sock.write(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`,
        );
        handleFrames(sock, name);
        if (rest.length > 0) sock.emit('data', rest);
        return;
      }
      const body =
        `wsplice demo backend "${name}"\n${lines[0]}\n` +
        [...headers].map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';
      sock.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    sock.on('data', onHead);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

export function portOf(s: Server): number {
  return (s.address() as AddressInfo).port;
}
