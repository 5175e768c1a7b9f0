/**
 * What /status and /readyz say about one proxy: its counters, its upstream
 * groups and their backends, the relay and the configuration generation.
 */
import type { HandoverEndEvent, Phase } from '../handover/types.js';
import type { WspliceProxy as Proxy, ProxyStats } from '../server.js';

/** The hand-over (upgrade) part of /status: the phase under way and how the last one ended. */
export interface HandoverStatus {
  phase: Phase | null;
  last: (Omit<HandoverEndEvent, 'pausesMs'> & { maxPauseMs: number }) | null;
}

export interface BackendStatus {
  address: string;
  weight: number;
  /** Selectable (false: marked down after max_fails, until its fail_timeout passes). */
  up: boolean;
  failures: number;
}

export interface ProxyStatus {
  ready: boolean;
  generation: number;
  relay: string;
  pid: number;
  uptimeSeconds: number;
  stats: ProxyStats;
  upstreams: Record<string, BackendStatus[]>;
  handover: HandoverStatus;
}

export function upstreamStatus(proxy: Proxy, now = Date.now()): Record<string, BackendStatus[]> {
  const out: Record<string, BackendStatus[]> = {};
  for (const [name, g] of proxy.groups) {
    out[name] = g.backends.map((b) => ({ address: b.label, weight: b.weight, up: b.downUntil <= now, failures: b.failures }));
  }
  return out;
}

export function proxyStatus(proxy: Proxy): ProxyStatus {
  return {
    ready: proxy.ready,
    generation: proxy.generation,
    relay: proxy.relayNote,
    pid: process.pid,
    uptimeSeconds: Math.round(process.uptime()),
    stats: proxy.stats(),
    upstreams: upstreamStatus(proxy),
    handover: handoverStatus(proxy),
  };
}

function handoverStatus(proxy: Proxy): HandoverStatus {
  const l = proxy.lastHandover;
  if (l === null) return { phase: proxy.handoverPhase, last: null };
  const { pausesMs, ...rest } = l;
  return { phase: proxy.handoverPhase, last: { ...rest, maxPauseMs: pausesMs.reduce((a, b) => Math.max(a, b), 0) } };
}
