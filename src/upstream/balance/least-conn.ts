/**
 * Weighted least connections (nginx `least_conn`): the backend with the
 * fewest open tunnels and exchanges per unit of weight; ties go by smooth
 * weighted round robin so equal backends still take turns. Long-lived
 * WebSockets need this: round robin piles hour-long tunnels onto whichever
 * backend came up first.
 */
import type { Backend } from '../backend.js';
import type { PickContext } from '../context.js';
import type { Balancer } from './types.js';

export class LeastConn implements Balancer {
  private readonly tied: Backend[] = [];

  constructor(private readonly list: readonly Backend[]) {}

  pick(_ctx: PickContext | null, now: number, lastResort: boolean): Backend | null {
    const tied = this.tied;
    tied.length = 0;
    let bestLoad = Infinity;
    for (let i = 0; i < this.list.length; i++) {
      const b = this.list[i]!;
      if (!b.usable(now, lastResort)) continue;
      const load = b.active / b.effectiveWeight(now);
      if (load < bestLoad) {
        bestLoad = load;
        tied.length = 0;
        tied.push(b);
      } else if (load === bestLoad) {
        tied.push(b);
      }
    }
    if (tied.length === 0) return null;
    if (tied.length === 1) return tied[0]!;
    let best: Backend | null = null;
    let total = 0;
    for (const b of tied) {
      const w = b.effectiveWeight(now);
      b.currentWeight += w;
      total += w;
      if (best === null || b.currentWeight > best.currentWeight) best = b;
    }
    best!.currentWeight -= total;
    tied.length = 0;
    return best;
  }
}

/** Of two candidates, the one with fewer connections per weight (random two). */
export function lessLoaded(a: Backend, b: Backend, now: number): Backend {
  return b.active * a.effectiveWeight(now) < a.active * b.effectiveWeight(now) ? b : a;
}
