/** `ws` peers: an echo server that names itself, and a client opened and read without hand-written promises. */
import { createHash, randomBytes } from 'node:crypto';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';

/** A `ws` echo server that says which backend it is on 'whoami'. */
export async function wsEcho(name = 'ws'): Promise<WebSocketServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary && String(data) === 'whoami') ws.send(name);
      else ws.send(data, { binary: isBinary });
    });
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  return wss;
}

export function closeWss(wss: WebSocketServer): Promise<void> {
  for (const c of wss.clients) c.terminate();
  return new Promise((r) => wss.close(() => r()));
}

/** Opens a `ws` client; rejects on 'error' or an unexpected response. */
export function openWs(url: string, protocols?: string | string[], opts?: ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, opts);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** The next message as text. */
export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (m) => resolve(String(m)));
    ws.once('error', reject);
  });
}

/** Sends 'whoami' and resolves with the echo server's name. */
export async function whoami(ws: WebSocket): Promise<string> {
  const reply = nextMessage(ws);
  ws.send('whoami');
  return reply;
}

/** Resolves with the close code when the connection closes (call it before the close can happen). */
export function closeCode(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

/**
 * Sends `messages` random binary messages of 512..2559 bytes on an echoing tunnel, the second half
 * after `mid` resolves; resolves with [hash of what was sent, hash of what came back].
 */
export async function checksummedStream(ws: WebSocket, messages: number, mid: Promise<void>): Promise<[string, string]> {
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let received = 0;
  const done = new Promise<void>((resolve) => {
    const onMessage = (d: Buffer): void => {
      got.update(d);
      if (++received < messages) return;
      ws.removeListener('message', onMessage);
      resolve();
    };
    ws.on('message', onMessage);
  });
  for (let i = 0; i < messages; i++) {
    if (i === Math.floor(messages / 2)) await mid;
    const m = randomBytes(512 + ((i * 97) % 2048));
    sent.update(m);
    ws.send(m, { binary: true });
  }
  await done;
  return [sent.digest('hex'), got.digest('hex')];
}
