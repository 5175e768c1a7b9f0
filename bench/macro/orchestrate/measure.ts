// One scenario against one running peer: drives the generator (or wrk), samples the proxy's
// CPU and RSS at the generator's marks, and turns the result into metric values.
import type { Backend, LoadGen, MarkPhase } from './gen-driver.js';
import type { RunningPeer } from './peers/peers.js';
import type { Plan, Scenario } from './plan.js';
import { type MachineCpu, cpuSeconds, machineCpu, rssKiB } from './procfs.js';
import type { Job, JobResult } from '../loadgen/protocol.js';
import { median } from '../common/stats.js';
import { runWrk } from '../loadgen/wrk.js';

export interface Sample {
  scenario: string;
  peer: string;
  round: number;
  ok: boolean;
  error: string | null;
  client: 'loadgen' | 'wrk';
  /** Wall time the whole sample took (setup, warm-up, drain included). */
  elapsedMs: number;
  /** Other processes were busy during it (see quiet.ts); set by the runner. */
  disturbed?: boolean;
  /** Metric values (see plan.metricsFor) plus CPU use (% of one core) of proxy, backend and generator. */
  values: Record<string, number>;
  result: JobResult | null;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MIB = 2 ** 20;
const GIB = 2 ** 30;

const SETTLE_MS = 200;
const RSS_READS = 5;

/** Median of RSS_READS reads of the peer's RSS spread over `spanMs`. */
async function rssMedian(peer: RunningPeer, spanMs = 100): Promise<number> {
  const reads: number[] = [];
  for (let i = 0; i < RSS_READS; i++) {
    await sleep(spanMs / RSS_READS);
    reads.push(rssKiB(peer.pids()));
  }
  return median(reads);
}

interface CpuSnap {
  proxy: number;
  backend: number;
  gen: number;
  machine: MachineCpu;
  at: number;
}

export interface MeasureContext {
  plan: Plan;
  gen: LoadGen;
  backend: Backend;
  useWrk: boolean;
}

export async function measure(ctx: MeasureContext, sc: Scenario, peer: RunningPeer, isDirect: boolean): Promise<Omit<Sample, 'scenario' | 'peer' | 'round'>> {
  const started = performance.now();
  const pids = peer.pids();
  const snap = (): CpuSnap => ({
    proxy: cpuSeconds(pids), backend: cpuSeconds([ctx.backend.proc.pid]), gen: cpuSeconds([ctx.gen.proc.pid]),
    machine: machineCpu(), at: performance.now(),
  });
  const values: Record<string, number> = {};
  let result: JobResult;
  let client: Sample['client'] = 'loadgen';

  if (sc.kind === 'idle') {
    let base = NaN;
    let idleCpu = NaN;
    const onMark = async (phase: MarkPhase): Promise<void> => {
      if (phase === 'baseline') {
        // Let the warm-up tunnels' teardown settle, then take the median of a few reads.
        await sleep(SETTLE_MS);
        base = await rssMedian(peer);
      }
      if (phase === 'idle-ready') {
        const a = snap();
        // RSS read at intervals across the idle window (median): a GC in the middle moves a single read.
        const held = await rssMedian(peer, ctx.plan.idleWindowMs);
        const b = snap();
        idleCpu = ((b.proxy - a.proxy) / ((b.at - a.at) / 1000)) * 100;
        values.kibPerTunnel = (held - base) / sc.connections;
        values.rssBaseKiB = base;
        values.rssHeldKiB = held;
      }
    };
    const job: Job = { kind: 'idle', port: peer.port, tunnels: sc.connections, warmTunnels: ctx.plan.idleWarmTunnels };
    result = await ctx.gen.run(job, onMark, 120_000);
    values.idleCpuPct = idleCpu;
  } else {
    let a: CpuSnap | null = null;
    let b: CpuSnap | null = null;
    const onMark = (phase: MarkPhase): void => {
      if (phase === 'start') a = snap();
      if (phase === 'end') b = snap();
    };
    const timeout = sc.warmupMs + sc.durationMs + 60_000;
    if (sc.kind === 'http' && ctx.useWrk) {
      client = 'wrk';
      // Warm the path with the generator's own client, then measure with wrk.
      await ctx.gen.run({ kind: 'http', port: peer.port, connections: sc.connections, durationMs: sc.warmupMs, warmupMs: 0 }, () => {}, timeout);
      a = snap();
      result = await runWrk(peer.port, sc.connections, Math.max(1, Math.round(sc.durationMs / 1000)));
      b = snap();
    } else {
      const common = { port: sc.tls ? peer.tlsPort! : peer.port, tls: sc.tls, durationMs: sc.durationMs, warmupMs: sc.warmupMs };
      const job: Job = sc.kind === 'handshake' ? { kind: 'handshake', concurrency: sc.connections, ...common }
        : sc.kind === 'http' ? { kind: 'http', connections: sc.connections, ...common }
        : { kind: sc.kind, connections: sc.connections, size: sc.size, ...common };
      result = await ctx.gen.run(job, onMark, timeout);
    }
    const sa = a as CpuSnap | null;
    const sb = b as CpuSnap | null;
    const wall = sa && sb ? (sb.at - sa.at) / 1000 : NaN;
    const proxyCpu = sa && sb && !isDirect ? sb.proxy - sa.proxy : NaN;
    if (sa && sb) {
      values.proxyCpuPct = (proxyCpu / wall) * 100;
      values.backendCpuPct = ((sb.backend - sa.backend) / wall) * 100;
      values.genCpuPct = client === 'wrk' ? NaN : ((sb.gen - sa.gen) / wall) * 100;
      // CPU other processes used in the window (with wrk: wrk itself): a high value marks a
      // sample disturbed from outside. Machine busy includes irq/softirq because our processes'
      // utime+stime already include the loopback TCP softirq work done on their behalf
      // (measured: without it a quiet machine shows minus the softirq share).
      const ours = (Number.isFinite(proxyCpu) ? proxyCpu : 0) + (sb.backend - sa.backend) + (client === 'wrk' ? 0 : sb.gen - sa.gen);
      values.otherCpuPct = ((sb.machine.busy + sb.machine.irq - sa.machine.busy - sa.machine.irq - ours) / wall) * 100;
      values.stealPct = ((sb.machine.steal - sa.machine.steal) / wall) * 100;
      values.softirqPct = ((sb.machine.irq - sa.machine.irq) / wall) * 100;
    }
    values.rate = result.rate;
    values.p50Us = result.p50Us;
    values.p99Us = result.p99Us;
    values.p50Ms = result.p50Us / 1000;
    values.p99Ms = result.p99Us / 1000;
    values.cpuPerM = proxyCpu / (result.count / 1e6);
    if (sc.kind === 'stream') {
      values.mibps = result.bytes / MIB / result.seconds;
      values.cpuPerGiB = proxyCpu / (result.bytes / GIB);
    }
  }
  const ok = result.checksumOk && result.errors === 0 && result.count > 0;
  return {
    ok, error: ok ? null : result.firstError ?? 'no operation completed', client, values, result,
    elapsedMs: performance.now() - started,
  };
}
