// Medians, ranges and ratios over rounds, per scenario x metric x peer.
import type { Sample } from '../orchestrate/measure.js';
import { type MetricDef, type Scenario, metricsFor } from '../orchestrate/plan.js';
import { median } from '../common/stats.js';

export const BASELINE = 'nginx-1w';
export const DIRECT = 'direct';

export interface Agg {
  median: number;
  min: number;
  max: number;
  /** Rounds with a valid value. */
  n: number;
  /** Rounds that failed (errors, checksum) for this peer and scenario. */
  failed: number;
}

export interface Row {
  scenario: Scenario;
  metric: MetricDef;
  /** By peer name. */
  byPeer: Record<string, Agg>;
}

export function aggregate(scenarios: Scenario[], peers: string[], samples: Sample[]): Row[] {
  const rows: Row[] = [];
  for (const sc of scenarios) {
    const ofSc = samples.filter((s) => s.scenario === sc.id);
    for (const metric of metricsFor(sc)) {
      const byPeer: Record<string, Agg> = {};
      for (const p of peers) {
        const mine = ofSc.filter((s) => s.peer === p);
        const vals = mine.filter((s) => s.ok).map((s) => s.values[metric.key] ?? NaN).filter(Number.isFinite);
        if (mine.length === 0) continue;
        byPeer[p] = {
          median: median(vals), min: vals.length ? Math.min(...vals) : NaN, max: vals.length ? Math.max(...vals) : NaN,
          n: vals.length, failed: mine.filter((s) => !s.ok).length,
        };
      }
      rows.push({ scenario: sc, metric, byPeer });
    }
  }
  return rows;
}

/** peer / reference, on medians; NaN when either is missing. */
export function ratio(row: Row, peer: string, ref: string): number {
  const a = row.byPeer[peer]?.median ?? NaN;
  const b = row.byPeer[ref]?.median ?? NaN;
  return a / b;
}

/** The ratio turned so that > 1 always means "better than the reference" (chart, targets). */
export function advantage(row: Row, peer: string, ref: string): number {
  const r = ratio(row, peer, ref);
  return row.metric.better === 'higher' ? r : 1 / r;
}
