/**
 * `--workers N|auto` (nginx `worker_processes`): a primary process forks N workers through
 * node:cluster; each worker runs the whole proxy and the listeners are shared (the primary
 * accepts and hands connections round robin). The primary runs no proxy: it keeps the admin
 * listener (metrics summed over the workers by prom-client's AggregatorRegistry), replaces a
 * worker that dies, forwards SIGHUP, and on SIGTERM/SIGQUIT/SIGINT drains every worker (each
 * closes with its own drain and Close 1001) and exits when all are gone.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { AdminServer, type AdminSource, type AdminTarget } from '../admin/server.js';
import { ProxyMetrics } from '../admin/metrics.js';
import type { Issues } from '../config/issues.js';
import type { WspliceProxy } from '../server.js';

/** Deaths that make a crash loop: this many within WINDOW_MS, or this many in a row before ready. */
const LOOP_DEATHS = 5;
const LOOP_WINDOW_MS = 10_000;
/** Replacement delay after the n-th recent death: 50 ms doubling, at most 2 s. */
const backoffMs = (recent: number): number => Math.min(2_000, 50 * 2 ** Math.max(0, recent - 1));
const MESSAGE_READY = 'wsplice:ready';

/** `auto` (one per core), or a whole number 1..1024; null (reported on `is`) otherwise. */
export function parseWorkers(v: unknown, field: string, is: Issues): number | null {
  if (v === 'auto') return availableParallelism();
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (Number.isInteger(n) && n >= 1 && n <= 1024) return n;
  is.error(field, `expects "auto" or a whole number from 1 to 1024, got ${JSON.stringify(v)}`);
  return null;
}

export const isWorker = (): boolean => cluster.isWorker;

/** In a worker: count this proxy's metrics where the primary's AggregatorRegistry asks for them. */
export function workerMetrics(proxy: WspliceProxy): ProxyMetrics {
  const metrics = new ProxyMetrics(proxy, { registry: new Registry() });
  new AggregatorRegistry(); // installs the worker's answer to the primary's requests
  AggregatorRegistry.setRegistries([metrics.registry]);
  return metrics;
}

/** In a worker: tell the primary that this worker listens (and where). */
export function workerReady(addresses: string[]): void {
  process.send?.({ type: MESSAGE_READY, addresses });
}

interface Member {
  worker: Worker;
  pid: number;
  ready: boolean;
  since: number;
}

export interface PrimaryOptions {
  count: number;
  admin: AdminTarget | null;
  say: (line: string) => void;
  out: (line: string) => void;
}

/** The primary: forks, replaces, aggregates and drains. `run()` resolves with the exit code. */
export class Primary {
  private readonly o: PrimaryOptions;
  private readonly members = new Map<number, Member>();
  private readonly deaths: number[] = [];
  private readonly registry = new Registry();
  private readonly aggregator = new AggregatorRegistry();
  private readonly restarts: Counter;
  private admin: AdminServer | null = null;
  private draining = false;
  private announced = false;
  private deathsBeforeReady = 0;
  private finish: (code: number) => void = () => {};

  constructor(o: PrimaryOptions) {
    this.o = o;
    this.restarts = new Counter({ name: 'wsplice_worker_restarts_total', help: 'Workers that died and were replaced', registers: [this.registry] });
    const members = this.members;
    new Gauge({ name: 'wsplice_workers_ready', help: 'Workers listening now', registers: [this.registry], collect() { this.set([...members.values()].filter((m) => m.ready).length); } });
  }

  async run(): Promise<number> {
    const done = new Promise<number>((r) => (this.finish = r));
    if (this.o.admin !== null) {
      this.admin = new AdminServer(this.source());
      try {
        this.o.out(`wsplice admin on ${fmtAddress(await this.admin.listen(this.o.admin))}`);
      } catch (err) {
        this.o.say((err as Error).message);
        return 1;
      }
    }
    cluster.on('message', (w, msg: unknown) => this.onMessage(w, msg));
    cluster.on('exit', (w, code, signal) => this.onExit(w, code, signal));
    for (const sig of ['SIGTERM', 'SIGQUIT', 'SIGINT'] as const) process.on(sig, () => this.stop(sig));
    process.on('SIGHUP', () => this.signalAll('SIGHUP'));
    // Each worker would have to hand its own tunnels to its own successor: not done, said so.
    process.on('SIGUSR2', () => this.o.say('SIGUSR2: upgrade refused: not supported with --workers (run one process per instance to upgrade with no reconnect, or restart)'));
    for (let i = 0; i < this.o.count; i++) this.fork();
    const code = await done;
    await this.admin?.close();
    return code;
  }

  /** What the admin listener reports: the workers' metrics summed, plus the primary's own. */
  private source(): AdminSource {
    return {
      metrics: async () => ({
        contentType: this.registry.contentType,
        body: (await this.aggregator.clusterMetrics()) + (await this.registry.metrics()),
      }),
      ready: () => !this.draining && [...this.members.values()].some((m) => m.ready),
      status: () => ({
        draining: this.draining,
        restarts: this.deaths.length,
        workers: [...this.members.values()].map((m) => ({ pid: m.pid, ready: m.ready, since: new Date(m.since).toISOString() })),
      }),
    };
  }

  private fork(): void {
    const worker = cluster.fork();
    this.members.set(worker.id, { worker, pid: worker.process.pid ?? 0, ready: false, since: Date.now() });
  }

  private onMessage(w: Worker, msg: unknown): void {
    const m = this.members.get(w.id);
    if (m === undefined || typeof msg !== 'object' || msg === null || (msg as { type?: unknown }).type !== MESSAGE_READY) return;
    m.ready = true;
    this.deathsBeforeReady = 0;
    if (this.announced || [...this.members.values()].some((x) => !x.ready)) return;
    this.announced = true;
    // Printed once, when every worker listens: the same lines a single process prints.
    for (const a of (msg as { addresses?: unknown }).addresses as string[]) this.o.out(`wsplice listening on ${a}`);
    this.o.out(`wsplice workers: ${this.members.size} ready (pids ${[...this.members.values()].map((x) => x.pid).join(', ')})`);
  }

  private onExit(w: Worker, code: number | null, signal: string | null): void {
    const m = this.members.get(w.id);
    this.members.delete(w.id);
    if (this.draining) {
      if (this.members.size === 0) this.finish(0);
      return;
    }
    const why = `worker ${m?.pid ?? '?'} ${signal !== null ? `killed by ${signal}` : `exited with code ${code}`}`;
    const now = Date.now();
    this.deaths.push(now);
    this.restarts.inc();
    if (m?.ready !== true) this.deathsBeforeReady++;
    const recent = this.deaths.filter((t) => now - t < LOOP_WINDOW_MS).length;
    if (recent >= LOOP_DEATHS || this.deathsBeforeReady >= LOOP_DEATHS) {
      this.o.say(`workers: crash loop (${Math.max(recent, this.deathsBeforeReady)} deaths${recent >= LOOP_DEATHS ? ' in 10 s' : ' before ready'}; last: ${why}); exiting`);
      this.draining = true;
      this.signalAll('SIGTERM');
      if (this.members.size === 0) this.finish(1);
      else this.finish = ((f) => () => f(1))(this.finish);
      return;
    }
    const delay = backoffMs(recent);
    this.o.say(`${why}; replacing it in ${delay} ms`);
    setTimeout(() => {
      if (!this.draining) this.fork();
    }, delay);
  }

  private stop(sig: string): void {
    if (this.draining) {
      this.o.say(`${sig} again: killing the workers`);
      this.signalAll('SIGKILL');
      return;
    }
    this.draining = true;
    this.o.say(`${sig}, draining ${this.members.size} worker(s)`);
    if (this.members.size === 0) return this.finish(0);
    this.signalAll('SIGTERM');
  }

  private signalAll(sig: NodeJS.Signals): void {
    for (const m of this.members.values()) m.worker.process.kill(sig);
  }
}

function fmtAddress(a: { address: string; port: number; family: string } | string): string {
  if (typeof a === 'string') return `unix:${a}`;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
