/**
 * Smooth weighted round robin (nginx's default): every pick adds each
 * candidate's weight to its running score and takes the highest, which then
 * pays back the total. Weights 5:1:1 give a a b a c a a, not a a a a a b c.
 */
import type { Backend } from '../backend.js';
import type { PickContext } from '../context.js';
import type { Balancer } from './types.js';

export class RoundRobin implements Balancer {
  constructor(private readonly list: readonly Backend[]) {}

  pick(_ctx: PickContext | null, now: number, lastResort: boolean): Backend | null {
    return smoothPick(this.list, now, lastResort);
  }
}

/** One smooth-weighted step over the usable members of `list`. */
export function smoothPick(list: readonly Backend[], now: number, lastResort: boolean): Backend | null {
  let best: Backend | null = null;
  let total = 0;
  for (let i = 0; i < list.length; i++) {
    const b = list[i]!;
    if (!b.usable(now, lastResort)) continue;
    const w = b.effectiveWeight(now);
    b.currentWeight += w;
    total += w;
    if (best === null || b.currentWeight > best.currentWeight) best = b;
  }
  if (best !== null) best.currentWeight -= total;
  return best;
}
