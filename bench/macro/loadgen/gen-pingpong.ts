// Ping-pong: each connection sends one frame and waits for its echo before sending the next.
import type { Socket } from 'node:net';
import { type Control, type FrameRing, MAX_OPS, RING, failConnection, frameRing, measureWindow, waitUntil } from './control.js';
import { FrameReader, type FrameSink } from '../common/frame-reader.js';
import type { JobResult, PingPongJob } from './protocol.js';
import { LatencyRecorder } from '../common/stats.js';
import { OP_BINARY } from '../common/ws-frames.js';
import { openTunnels } from './ws-client.js';

interface Shared {
  ring: FrameRing;
  lat: LatencyRecorder;
  running: boolean;
  measuring: boolean;
  count: number;
  /** All round trips, warm-up included (for MAX_OPS). */
  total: number;
  errors: number;
  firstError: string | null;
  checksumOk: boolean;
}

class PingConn implements FrameSink {
  private k = 0;
  private sentAt = 0;
  outstanding = false;
  private readonly reader = new FrameReader(this);

  constructor(private readonly socket: Socket, private readonly s: Shared) {
    socket.on('data', (c: Buffer) => this.reader.push(c));
    socket.on('error', (e: Error) => this.error(e.message));
    socket.on('close', () => {
      if (this.s.running) this.error('connection closed during the run');
      this.outstanding = false;
    });
  }

  send(): void {
    this.sentAt = performance.now();
    this.outstanding = true;
    this.socket.write(this.s.ring.frames[this.k % RING]!);
  }

  frameStart(opcode: number, length: number, mask: Buffer | null): void {
    if (opcode !== OP_BINARY || length !== this.s.ring.payloads[0]!.length || mask !== null) {
      this.s.checksumOk = false;
      this.error(`unexpected frame op=${opcode} len=${length}`);
    }
  }

  payload(chunk: Buffer, start: number, end: number, offset: number): void {
    const p = this.s.ring.payloads[this.k % RING]!;
    if (p.compare(chunk, start, end, offset, offset + (end - start)) !== 0) this.s.checksumOk = false;
  }

  frameEnd(): void {
    const now = performance.now();
    this.outstanding = false;
    this.k++;
    if (this.s.measuring) {
      this.s.count++;
      this.s.lat.record(now - this.sentAt);
    }
    if (this.s.running && ++this.s.total < MAX_OPS) this.send();
  }

  protocolError(reason: string): void {
    this.s.checksumOk = false;
    this.error(reason);
  }

  private error(msg: string): void {
    failConnection(this.s, this.socket, msg);
  }
}

export async function runPingPong(job: PingPongJob, ctl: Control): Promise<JobResult> {
  const tunnels = await openTunnels(job.port, job.connections, 64, job.tls === true);
  const s: Shared = {
    ring: frameRing(job.size), lat: new LatencyRecorder(), running: true, measuring: false,
    count: 0, total: 0, errors: 0, firstError: null, checksumOk: true,
  };
  const conns = tunnels.map((t) => {
    const c = new PingConn(t.socket, s);
    if (t.rest.length > 0) t.socket.emit('data', t.rest);
    return c;
  });
  for (const c of conns) c.send();
  const seconds = await measureWindow(ctl, s, job.warmupMs, job.durationMs);
  // Let the last frames come back so the byte check covers every frame sent.
  const drained = await waitUntil(() => conns.every((c) => !c.outstanding), 5000);
  for (const t of tunnels) t.socket.destroy();
  const [p50, p99] = s.lat.percentilesUs([50, 99]);
  return {
    kind: 'pingpong', count: s.count, seconds, rate: s.count / seconds, bytes: s.count * job.size,
    p50Us: p50!, p99Us: p99!, checksumOk: s.checksumOk && drained && s.errors === 0,
    errors: s.errors, firstError: s.firstError ?? (drained ? null : 'echoes still missing after 5 s'),
  };
}
