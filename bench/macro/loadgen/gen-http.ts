// Plain HTTP/1.1 keep-alive GETs: C connections, one request in flight each (no pipelining).
import { connect, type Socket } from 'node:net';
import { type Control, MAX_OPS, failConnection, measureWindow, sleep } from './control.js';
import { ResponseReader, type ResponseSink } from './http-response-reader.js';
import type { HttpJob, JobResult } from './protocol.js';
import { LatencyRecorder } from '../common/stats.js';

interface Shared {
  port: number;
  request: Buffer;
  lat: LatencyRecorder;
  running: boolean;
  measuring: boolean;
  count: number;
  /** All requests, warm-up included (for MAX_OPS). */
  total: number;
  errors: number;
  firstError: string | null;
}

class HttpConn implements ResponseSink {
  private socket!: Socket;
  private reader!: ResponseReader;
  private sentAt = 0;
  /** Set once the connection has stopped for good (run over or too many errors). */
  done: Promise<void>;
  private finish!: () => void;

  constructor(private readonly s: Shared) {
    this.done = new Promise((r) => (this.finish = r));
    this.open();
  }

  /** (Re)connects: the server may close after a response (e.g. nginx's keepalive_requests). */
  private open(): void {
    if (!this.s.running) return this.finish();
    this.reader = new ResponseReader(this);
    const socket = connect({ host: '127.0.0.1', port: this.s.port, noDelay: true });
    this.socket = socket;
    socket.on('data', (c: Buffer) => this.reader.push(c));
    socket.on('error', (e: Error) => this.error(e.message));
    socket.on('close', () => {
      if (this.socket === socket) this.open();
    });
    this.send();
  }

  private send(): void {
    this.sentAt = performance.now();
    this.socket.write(this.s.request);
  }

  response(status: number, close: boolean): void {
    if (status !== 200) return this.error(`HTTP status ${status}`);
    if (this.s.measuring) {
      this.s.count++;
      this.s.lat.record(performance.now() - this.sentAt);
    }
    if (++this.s.total >= MAX_OPS) this.s.running = false;
    if (close || !this.s.running) this.socket.destroy(); // 'close' reconnects while running, else finishes
    else this.send();
  }

  protocolError(reason: string): void {
    this.error(reason);
  }

  private error(msg: string): void {
    if (this.s.errors >= 100) this.s.running = false; // a peer that keeps failing ends the run
    failConnection(this.s, this.socket, msg);
  }
}

export async function runHttp(job: HttpJob, ctl: Control): Promise<JobResult> {
  const s: Shared = {
    port: job.port, request: Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${job.port}\r\n\r\n`, 'latin1'),
    lat: new LatencyRecorder(), running: true, measuring: false, count: 0, total: 0, errors: 0, firstError: null,
  };
  const conns = Array.from({ length: job.connections }, () => new HttpConn(s));
  const seconds = await measureWindow(ctl, s, job.warmupMs, job.durationMs);
  await Promise.race([Promise.all(conns.map((c) => c.done)), sleep(10_000)]);
  const [p50, p99] = s.lat.percentilesUs([50, 99]);
  return {
    kind: 'http', count: s.count, seconds, rate: s.count / seconds, bytes: 0,
    p50Us: p50!, p99Us: p99!, checksumOk: s.errors === 0, errors: s.errors, firstError: s.firstError,
  };
}
