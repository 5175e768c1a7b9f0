// What a run measures, per mode: scenarios (each one load shape) and the metrics they yield.

export type Mode = 'tiny' | 'quick' | 'full';

export interface Scenario {
  /** Stable id, used in JSON and as the row key: e.g. "pingpong-c50-64B". */
  id: string;
  title: string;
  kind: 'handshake' | 'pingpong' | 'stream' | 'idle' | 'http';
  /** Over TLS (wss), against each peer's TLS listener; peers without one show n/a. */
  tls: boolean;
  connections: number;
  size: number;
  durationMs: number;
  warmupMs: number;
}

export interface Plan {
  mode: Mode;
  rounds: number;
  scenarios: Scenario[];
  /** Idle scenario: seconds the tunnels are held while CPU is read. */
  idleWindowMs: number;
  idleWarmTunnels: number;
  /** A round disturbed by outside load is measured again at most this many times per scenario... */
  maxRetries: number;
  /** ...and in all at most this many extra seconds (quick mode must stay under 3 minutes). */
  retryBudgetS: number;
}

export type Better = 'higher' | 'lower';

export interface MetricDef {
  /** Key in a sample's values. */
  key: string;
  label: string;
  unit: string;
  better: Better;
  /** Shown in the summary table and the chart. */
  headline: boolean;
}

export function metricsFor(s: Scenario): MetricDef[] {
  switch (s.kind) {
    case 'handshake':
      return [
        { key: 'rate', label: 'handshakes/s', unit: '/s', better: 'higher', headline: true },
        { key: 'p50Ms', label: 'handshake p50', unit: 'ms', better: 'lower', headline: false },
        { key: 'p99Ms', label: 'handshake p99', unit: 'ms', better: 'lower', headline: false },
        { key: 'cpuPerM', label: 'proxy CPU s per 1M handshakes', unit: 's', better: 'lower', headline: false },
      ];
    case 'pingpong':
      return [
        { key: 'rate', label: 'msgs/s', unit: '/s', better: 'higher', headline: true },
        { key: 'p50Us', label: 'RTT p50', unit: 'µs', better: 'lower', headline: false },
        { key: 'p99Us', label: 'RTT p99', unit: 'µs', better: 'lower', headline: false },
        { key: 'cpuPerM', label: 'proxy CPU s per 1M msgs', unit: 's', better: 'lower', headline: s.connections === 50 },
      ];
    case 'stream':
      return [
        { key: 'mibps', label: 'MiB/s', unit: 'MiB/s', better: 'higher', headline: true },
        { key: 'cpuPerGiB', label: 'proxy CPU s per GiB', unit: 's', better: 'lower', headline: false },
      ];
    case 'idle':
      return [
        { key: 'kibPerTunnel', label: 'RSS per tunnel', unit: 'KiB', better: 'lower', headline: true },
        { key: 'idleCpuPct', label: 'idle CPU', unit: '%', better: 'lower', headline: false },
      ];
    case 'http':
      return [
        { key: 'rate', label: 'req/s', unit: '/s', better: 'higher', headline: true },
        { key: 'p50Us', label: 'latency p50', unit: 'µs', better: 'lower', headline: false },
        { key: 'p99Us', label: 'latency p99', unit: 'µs', better: 'lower', headline: false },
        { key: 'cpuPerM', label: 'proxy CPU s per 1M req', unit: 's', better: 'lower', headline: false },
      ];
  }
}

const KIB = 1024;

function sizeLabel(n: number): string {
  return n >= KIB ? `${n / KIB}KiB` : `${n}B`;
}

/** The same load over TLS: `wss-` rows, against each peer's TLS listener on the same certificate. */
function wss(s: Scenario): Scenario {
  return { ...s, id: `wss-${s.id}`, title: `wss ${s.title}`, tls: true };
}

function scenario(kind: Scenario['kind'], connections: number, size: number, durationMs: number, warmupMs: number): Scenario {
  const title: Record<Scenario['kind'], string> = {
    handshake: `handshake (upgrade + close), ${connections} concurrent`,
    pingpong: `ping-pong ${sizeLabel(size)} x ${connections} conn`,
    stream: `streaming ${sizeLabel(size)} frames x ${connections} conn`,
    idle: `idle ${connections} tunnels`,
    http: `HTTP keep-alive GET x ${connections} conn`,
  };
  const id = kind === 'idle' ? `idle-${connections}` : kind === 'pingpong' || kind === 'stream'
    ? `${kind}-c${connections}-${sizeLabel(size)}` : `${kind}-c${connections}`;
  return { id, title: title[kind], kind, tls: false, connections, size, durationMs, warmupMs };
}

/**
 * Tunnels a proxy can hold: 2 fds each within the children's fd limit, with 10% slack (nginx
 * already warns "worker_connections are not enough" at 98% of it). 20,000 fds -> 9,000 tunnels.
 */
export function idleTunnels(wanted: number, maxFds: number): number {
  return Math.min(wanted, Math.floor((maxFds * 0.9) / 2 / 1000) * 1000);
}

export function makePlan(mode: Mode, maxFds: number): Plan {
  if (mode === 'tiny') {
    const d = 250;
    const w = 100;
    return {
      mode, rounds: 1, idleWindowMs: 200, idleWarmTunnels: 5, maxRetries: 0, retryBudgetS: 0,
      scenarios: [
        scenario('handshake', 4, 0, d, w),
        scenario('pingpong', 4, 64, d, w),
        scenario('stream', 1, 64 * KIB, d, w),
        scenario('idle', 50, 0, 0, 0),
        scenario('http', 4, 0, d, w),
        wss(scenario('handshake', 4, 0, d, w)),
        wss(scenario('pingpong', 4, 64, d, w)),
      ],
    };
  }
  if (mode === 'quick') {
    // About 3 minutes with 9 peers x 3 rounds: short windows, ping-pong at 50 and 500 only, and
    // over TLS only the handshake and ping-pong rows.
    const d = 500;
    const w = 150;
    return {
      mode, rounds: 3, idleWindowMs: 300, idleWarmTunnels: 50, maxRetries: 2, retryBudgetS: 20,
      scenarios: [
        scenario('handshake', 50, 0, d, w),
        scenario('pingpong', 50, 64, d, w),
        scenario('pingpong', 500, 64, d, w),
        scenario('stream', 1, 64 * KIB, d, w),
        scenario('stream', 8, KIB, d, w),
        scenario('idle', idleTunnels(2000, maxFds), 0, 0, 0),
        scenario('http', 50, 0, d, w),
        wss(scenario('handshake', 50, 0, d, w)),
        wss(scenario('pingpong', 50, 64, d, w)),
      ],
    };
  }
  // 30-40 minutes with 7 peers: 3 s windows, 5 rounds, all levels, 10,000 idle tunnels (fd limit permitting).
  const d = 3000;
  const w = 500;
  return {
    mode, rounds: 5, idleWindowMs: 3000, idleWarmTunnels: 200, maxRetries: 3, retryBudgetS: 10 * 60,
    scenarios: [
      scenario('handshake', 1, 0, d, w),
      scenario('handshake', 10, 0, d, w),
      scenario('handshake', 50, 0, d, w),
      scenario('pingpong', 1, 64, d, w),
      scenario('pingpong', 50, 64, d, w),
      scenario('pingpong', 500, 64, d, w),
      scenario('stream', 1, KIB, d, w),
      scenario('stream', 1, 64 * KIB, d, w),
      scenario('stream', 8, KIB, d, w),
      scenario('stream', 8, 64 * KIB, d, w),
      scenario('idle', idleTunnels(10_000, maxFds), 0, 0, 0),
      scenario('http', 50, 0, d, w),
      wss(scenario('handshake', 50, 0, d, w)),
      wss(scenario('pingpong', 50, 64, d, w)),
      wss(scenario('pingpong', 500, 64, d, w)),
      wss(scenario('stream', 1, 64 * KIB, d, w)),
    ],
  };
}
