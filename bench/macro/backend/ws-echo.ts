// Server side of the echo backend's WebSocket: unmask each client frame and send it back unmasked
// (close frames are echoed and then the TCP connection is ended, server first, as RFC 6455 asks).
import type { Socket } from 'node:net';
import { FrameReader, type FrameSink } from '../common/frame-reader.js';
import { OP_CLOSE, OP_PING, OP_PONG, headerLength, unmaskInPlace, writeHeader } from '../common/ws-frames.js';

const PAUSE_AT = 1024 * 1024;

class EchoSink implements FrameSink {
  private mask: Buffer | null = null;
  private closing = false;

  constructor(private readonly socket: Socket) {}

  frameStart(opcode: number, length: number, mask: Buffer | null): void {
    if (mask === null) return this.protocolError('client frame not masked');
    this.mask = mask;
    const out = opcode === OP_PING ? OP_PONG : opcode;
    const head = Buffer.allocUnsafe(headerLength(length, false));
    writeHeader(head, 0, out, length, null);
    if (!this.closing) this.socket.write(head);
  }

  payload(chunk: Buffer, start: number, end: number, offset: number): void {
    // The chunk is ours: unmask in place and hand that slice to the socket, no copy.
    unmaskInPlace(chunk, start, end, this.mask!, offset & 3);
    if (!this.closing) this.socket.write(chunk.subarray(start, end));
  }

  frameEnd(opcode: number): void {
    if (opcode === OP_CLOSE && !this.closing) {
      this.closing = true;
      this.socket.end();
    }
  }

  protocolError(_reason?: string): void {
    this.socket.destroy();
  }
}

/** Switches `socket` to WebSocket echo; `rest` holds bytes that came after the upgrade head. */
export function startEcho(socket: Socket, rest: Buffer | null): void {
  const reader = new FrameReader(new EchoSink(socket));
  // Cork per chunk so a chunk's headers and payload slices leave in one writev.
  const onData = (chunk: Buffer): void => {
    socket.cork();
    reader.push(chunk);
    socket.uncork();
    // Backpressure: stop reading while the echo cannot leave, or a fast sender grows our queue.
    // The threshold is well above one read (64 KiB) so a stream does not pause on every chunk.
    if (socket.writableLength > PAUSE_AT) {
      socket.pause();
      socket.once('drain', resume);
    }
  };
  const resume = (): void => void socket.resume();
  socket.on('data', onData);
  if (rest && rest.length > 0) onData(rest);
}
