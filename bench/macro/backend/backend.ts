// Echo backend, its own process: WebSocket echo (does the RFC 6455 handshake itself) and a tiny
// HTTP/1.1 responder for plain GETs. Prints "backend listening HOST:PORT" when ready.
// Usage: node backend.js [--port N]   (listens on 127.0.0.1 only; exits when stdin closes)
import { createServer, type Socket } from 'node:net';
import { hasToken, parseRequestHead, type RequestHead } from './http-head.js';
import { acceptKey } from '../common/ws-frames.js';
import { startEcho } from './ws-echo.js';

const BODY = 'Hello, world!\n';
const RESPONSE_KEEP = Buffer.from(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`,
  'latin1',
);
const RESPONSE_CLOSE = Buffer.from(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`,
  'latin1',
);
const BAD_REQUEST = Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 'latin1');
const MAX_HEAD = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

function onConnection(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  let pending: Buffer | null = null;

  const onData = (chunk: Buffer): void => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    socket.cork();
    try {
      // Several keep-alive requests may arrive in one chunk (pipelining): answer each in order.
      while (buf.length > 0) {
        const end = buf.indexOf(HEAD_END);
        if (end < 0) {
          if (buf.length > MAX_HEAD) return void socket.end(BAD_REQUEST);
          pending = buf;
          return;
        }
        const head = parseRequestHead(buf.toString('latin1', 0, end));
        const rest = buf.subarray(end + 4);
        if (!head || (head.headers.get('content-length') ?? '0') !== '0' || head.headers.has('transfer-encoding')) {
          return void socket.end(BAD_REQUEST);
        }
        if (isUpgrade(head)) {
          socket.removeListener('data', onData);
          socket.write(
            'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
              `Sec-WebSocket-Accept: ${acceptKey(head.headers.get('sec-websocket-key')!)}\r\n\r\n`,
            'latin1',
          );
          startEcho(socket, rest);
          return;
        }
        const close = hasToken(head.headers.get('connection'), 'close') ||
          (head.http10 && !hasToken(head.headers.get('connection'), 'keep-alive'));
        if (close) return void socket.end(RESPONSE_CLOSE);
        socket.write(RESPONSE_KEEP);
        buf = rest;
      }
    } finally {
      socket.uncork();
    }
  };
  socket.on('data', onData);
}

function isUpgrade(head: RequestHead): boolean {
  return head.method === 'GET' &&
    hasToken(head.headers.get('connection'), 'upgrade') &&
    (head.headers.get('upgrade') ?? '').toLowerCase() === 'websocket' &&
    head.headers.has('sec-websocket-key');
}

function main(): void {
  const portArg = process.argv.indexOf('--port');
  const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
  const server = createServer({ noDelay: true }, onConnection);
  server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no address');
    process.stdout.write(`backend listening 127.0.0.1:${addr.port}\n`);
  });
  // The runner owns this process: when its pipe closes (runner gone), stop.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

main();
