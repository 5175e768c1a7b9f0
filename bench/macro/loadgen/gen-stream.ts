// Streaming: each connection pushes frames as fast as the socket takes them and reads the echoes;
// every echoed byte is compared with what was sent (frame order included).
import type { Socket } from 'node:net';
import { type Control, type FrameRing, MAX_OPS, RING, failConnection, frameRing, measureWindow, waitUntil } from './control.js';
import { FrameReader, type FrameSink } from '../common/frame-reader.js';
import type { JobResult, StreamJob } from './protocol.js';
import { OP_BINARY } from '../common/ws-frames.js';
import { openTunnels } from './ws-client.js';

/** Frames handed to the socket per burst, corked into one writev (about 64 KiB). */
const BURST_BYTES = 64 * 1024;

interface Shared {
  ring: FrameRing;
  running: boolean;
  measuring: boolean;
  bytes: number;
  frames: number;
  errors: number;
  firstError: string | null;
  checksumOk: boolean;
}

class StreamConn implements FrameSink {
  private sendK = 0;
  private recvK = 0;
  sentFrames = 0;
  recvFrames = 0;
  private readonly reader = new FrameReader(this);
  private readonly burst: number;

  constructor(private readonly socket: Socket, private readonly s: Shared) {
    this.burst = Math.max(1, Math.floor(BURST_BYTES / s.ring.frames[0]!.length));
    socket.on('data', (c: Buffer) => this.reader.push(c));
    socket.on('drain', () => this.pump());
    socket.on('error', (e: Error) => this.error(e.message));
    socket.on('close', () => {
      if (this.s.running) this.error('connection closed during the run');
    });
  }

  /** Writes bursts until the socket asks us to wait ('drain') or the run stops. */
  pump(): void {
    const frames = this.s.ring.frames;
    while (this.s.running && !this.socket.destroyed && this.sentFrames < MAX_OPS) {
      this.socket.cork();
      let more = true;
      for (let i = 0; i < this.burst; i++) {
        more = this.socket.write(frames[this.sendK]!);
        this.sendK = (this.sendK + 1) % RING;
        this.sentFrames++;
      }
      this.socket.uncork();
      if (!more) return;
    }
  }

  frameStart(opcode: number, length: number, mask: Buffer | null): void {
    if (opcode !== OP_BINARY || length !== this.s.ring.payloads[0]!.length || mask !== null) {
      this.s.checksumOk = false;
      this.error(`unexpected frame op=${opcode} len=${length}`);
    }
  }

  payload(chunk: Buffer, start: number, end: number, offset: number): void {
    const p = this.s.ring.payloads[this.recvK]!;
    if (p.compare(chunk, start, end, offset, offset + (end - start)) !== 0) this.s.checksumOk = false;
    if (this.s.measuring) this.s.bytes += end - start;
  }

  frameEnd(): void {
    this.recvK = (this.recvK + 1) % RING;
    this.recvFrames++;
    if (this.s.measuring) this.s.frames++;
  }

  protocolError(reason: string): void {
    this.s.checksumOk = false;
    this.error(reason);
  }

  private error(msg: string): void {
    failConnection(this.s, this.socket, msg);
  }
}

export async function runStream(job: StreamJob, ctl: Control): Promise<JobResult> {
  const tunnels = await openTunnels(job.port, job.connections, 64, job.tls === true);
  const s: Shared = {
    ring: frameRing(job.size), running: true, measuring: false,
    bytes: 0, frames: 0, errors: 0, firstError: null, checksumOk: true,
  };
  const conns = tunnels.map((t) => {
    const c = new StreamConn(t.socket, s);
    if (t.rest.length > 0) t.socket.emit('data', t.rest);
    return c;
  });
  for (const c of conns) c.pump();
  const seconds = await measureWindow(ctl, s, job.warmupMs, job.durationMs);
  // Every frame sent must come back: this closes the end-to-end check.
  const drained = await waitUntil(() => s.errors > 0 || conns.every((c) => c.recvFrames === c.sentFrames), 10_000);
  for (const t of tunnels) t.socket.destroy();
  return {
    kind: 'stream', count: s.frames, seconds, rate: s.frames / seconds, bytes: s.bytes,
    p50Us: NaN, p99Us: NaN, checksumOk: s.checksumOk && drained && s.errors === 0,
    errors: s.errors, firstError: s.firstError ?? (drained ? null : 'echoed frames still missing after 10 s'),
  };
}
