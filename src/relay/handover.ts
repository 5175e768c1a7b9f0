/**
 * The only place that reaches into Node's socket internals: the fd of a TCP or
 * pipe handle, and stopping libuv from reading so that the native engine is the
 * only reader from then on. Nothing here is in @types/node; each use checks.
 */
import type { Server, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** Node's stream handle, as far as the hand-over needs it. */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

function handleOf(s: Socket): StreamHandle | null {
  const h = (s as unknown as { _handle?: StreamHandle | null })._handle;
  return h ?? null;
}

/** The socket's fd, or -1 when the engine cannot take it (TLS: JS must decrypt; destroyed; no fd). */
export function fdOf(s: Socket): number {
  if (s instanceof TLSSocket || s.destroyed) return -1;
  const fd = handleOf(s)?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** A listening server's fd, or -1 (not listening, or a handle without one). */
export function serverFdOf(s: Server): number {
  const fd = (s as unknown as { _handle?: StreamHandle | null })._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** Stops libuv reading into JS; returns what JS had already buffered (or null). */
export function stopReading(s: Socket): Buffer | null {
  // The engine owns the socket now: a leftover 'data' listener would also get
  // the bytes read below (read() emits 'data').
  s.removeAllListeners('data');
  s.pause();
  const h = handleOf(s);
  const stop = (): void => {
    if (h?.readStop) {
      h.reading = false;
      h.readStop();
    }
  };
  stop();
  // read() may restart the handle (Socket._read). No I/O runs until we return
  // to the event loop, so stopping again right after is race-free.
  let out: Buffer | null = null;
  if (s.readableLength > 0) {
    const chunk: unknown = s.read();
    if (Buffer.isBuffer(chunk)) out = chunk;
    else if (typeof chunk === 'string') out = Buffer.from(chunk);
  }
  stop();
  return out;
}

/** True while a socket holds no byte of the tunnel in JS (nothing queued either way). */
export function emptyInJs(s: Socket): boolean {
  return s.writableLength === 0 && s.readableLength === 0;
}

/** Called with the byte count of each read into `buf`; `buf` is reused by the next read. */
export type DirectRead = (nread: number, buf: Buffer) => void;

/**
 * Node's `onread` socket option, applied to a socket that already exists: libuv reads into one
 * buffer shared by every such socket, and `onRead` gets the count, with no Readable stream in
 * between (no ArrayBuffer, 'data' event or nextTick per read). The shared buffer is only valid
 * inside `onRead`: what it keeps must be copied. pause()/resume() still stop and start the reads,
 * and EOF still ends the readable side ('end'). False (nothing changed) where Node's internals are
 * not those this expects, or the socket holds buffered bytes or is past its reads.
 */
export function readDirect(s: Socket, onRead: DirectRead): boolean {
  if (s.destroyed || s.readableEnded || s.readableLength !== 0 || s.connecting) return false;
  const h = handleOf(s) as (StreamHandle & { useUserBuffer?: (b: Uint8Array) => void }) | null;
  const k = onreadSymbols(s);
  if (h === null || typeof h.useUserBuffer !== 'function' || k === null) return false;
  const slots = s as unknown as Record<symbol, unknown>;
  if (slots[k.buffer] === sharedReadBuffer) {
    // Already read directly (the connection read its heads so): the next owner takes the
    // reads over. Reading into the handle's user buffer cannot be undone, only handed on.
    slots[k.callback] = onRead;
    return true;
  }
  if (slots[k.buffer] !== null || slots[k.callback] !== null || slots[k.generator] !== null) return false;
  slots[k.buffer] = sharedReadBuffer;
  slots[k.callback] = onRead;
  h.useUserBuffer(sharedReadBuffer);
  return true;
}

/** One buffer for every direct read: JS runs one read callback at a time. */
const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);

/** The bytes of one direct read as a Buffer of their own, for code that keeps what it is given. */
export function ownCopy(nread: number, buf: Buffer): Buffer {
  const chunk = Buffer.allocUnsafe(nread);
  buf.copy(chunk, 0, 0, nread);
  return chunk;
}

/**
 * `onData` gets each read of `s` as a Buffer it may keep (called on `s`, as a 'data' listener
 * is): read directly where Node allows it (one copy per read, no Readable stream in between;
 * a tunnel's relay takes the reads over later), else through 'data' events. One closure per
 * socket, none per read.
 */
export function readOwned(s: Socket, onData: (this: Socket, chunk: Buffer) => void): void {
  if (!readDirect(s, (nread, buf) => onData.call(s, ownCopy(nread, buf)))) s.on('data', onData);
}

interface OnreadSymbols {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

let onreadKeys: OnreadSymbols | null | undefined;

/** The socket's own slots for the onread option (found by name once, checked on each socket). */
function onreadSymbols(s: Socket): OnreadSymbols | null {
  if (onreadKeys === undefined) {
    const find = (name: string): symbol | undefined => Object.getOwnPropertySymbols(s).find((x) => x.description === name);
    const buffer = find('kBuffer');
    const callback = find('kBufferCb');
    const generator = find('kBufferGen');
    onreadKeys = buffer && callback && generator ? { buffer, callback, generator } : null;
  }
  const k = onreadKeys;
  if (k === null || !Object.hasOwn(s, k.buffer) || !Object.hasOwn(s, k.callback) || !Object.hasOwn(s, k.generator)) return null;
  return k;
}
