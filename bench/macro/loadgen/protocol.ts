// Messages between the runner and the load generator: one JSON object per line,
// jobs and commands on the generator's stdin, events and results on its stdout.

interface JobBase {
  port: number;
  /** Connect with TLS (wss): the certificate is the run's own, not verified (a load generator, not a client). */
  tls?: boolean;
  /** Load time measured, after `warmupMs` of unmeasured load on the same connections. */
  durationMs: number;
  warmupMs: number;
}

export interface HandshakeJob extends JobBase {
  kind: 'handshake';
  concurrency: number;
}

export interface PingPongJob extends JobBase {
  kind: 'pingpong';
  connections: number;
  size: number;
}

export interface StreamJob extends JobBase {
  kind: 'stream';
  connections: number;
  size: number;
}

export interface HttpJob extends JobBase {
  kind: 'http';
  connections: number;
}

export interface IdleJob {
  kind: 'idle';
  port: number;
  tunnels: number;
  /** Tunnels opened and closed before the baseline is taken (warms the proxy's lazy paths). */
  warmTunnels: number;
}

export type Job = HandshakeJob | PingPongJob | StreamJob | HttpJob | IdleJob;

/** Result of one job. Latencies in microseconds; NaN where not measured. */
export interface JobResult {
  kind: Job['kind'];
  /** Completed operations inside the window: handshakes, round trips, frames, requests, tunnels. */
  count: number;
  seconds: number;
  /** count / seconds */
  rate: number;
  /** Payload bytes received back inside the window (stream: echoed bytes). */
  bytes: number;
  p50Us: number;
  p99Us: number;
  /** Every echoed payload byte matched what was sent, and frames came back in order and in full. */
  checksumOk: boolean;
  errors: number;
  firstError: string | null;
}

/** Generator -> runner: `mark` asks the runner to sample CPU, then waits for `continue`. */
export type GenEvent =
  | { event: 'mark'; phase: 'start' | 'end' | 'baseline' | 'idle-ready' }
  | { event: 'result'; result: JobResult }
  | { event: 'error'; message: string };

export type GenCommand = { cmd: 'job'; job: Job } | { cmd: 'continue' } | { cmd: 'exit' };
