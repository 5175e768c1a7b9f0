/**
 * Checksummed WebSocket streams for the hand-over tests: each side sends `chunks` binary messages
 * of random bytes (half, then waits for `gate`, then the rest) and a text 'done'; SHA-256 of what
 * it sent and of what it received. A close before 'done' is a failure.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';

export interface Stream {
  /** SHA-256 (hex) of everything sent, once sent. */
  sent: Promise<string>;
  /** SHA-256 (hex) of everything received, once the peer's 'done' came. */
  received: Promise<string>;
}

export function stream(ws: WebSocket, chunks: number, size: number, gate: Promise<void>): Stream {
  const recv = createHash('sha256');
  const received = new Promise<string>((resolve, reject) => {
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (binary) recv.update(data);
      else if (data.toString() === 'done') resolve(recv.digest('hex'));
    });
    ws.once('close', (code: number) => reject(new Error(`closed (${code}) before the peer's 'done'`)));
    ws.once('error', reject);
  });
  const sent = (async () => {
    const h = createHash('sha256');
    if (ws.readyState === WebSocket.CONNECTING) await once(ws, 'open');
    for (let i = 0; i < chunks; i++) {
      if (i === chunks >> 1) await gate;
      const b = randomBytes(size);
      h.update(b);
      await new Promise<void>((r, j) => ws.send(b, { binary: true }, (e) => (e ? j(e) : r())));
    }
    ws.send('done');
    return h.digest('hex');
  })();
  received.catch(() => {});
  sent.catch(() => {});
  return { sent, received };
}

/** A `ws` server streaming back on every connection; `streams` by the connection's URL path. */
export async function streamingServer(chunks: number, size: number, gate: Promise<void>): Promise<{ wss: WebSocketServer; port: number; streams: Map<string, Stream>; closes: number[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const streams = new Map<string, Stream>();
  const closes: number[] = [];
  wss.on('connection', (ws, req) => {
    streams.set(req.url ?? '', stream(ws, chunks, size, gate));
    ws.on('close', (code) => closes.push(code));
  });
  return { wss, port: (wss.address() as { port: number }).port, streams, closes };
}

/** A gate the streams wait at halfway; open() lets them go on. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}
