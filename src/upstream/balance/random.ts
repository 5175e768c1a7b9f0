/**
 * Weighted random (nginx `random`), and the power of two choices
 * (`random two [least_conn]`): two weighted random draws, the less loaded
 * one wins. Useful when several proxies balance the same backends and none
 * sees the others' connections.
 */
import type { Backend } from '../backend.js';
import type { PickContext } from '../context.js';
import { lessLoaded } from './least-conn.js';
import type { Balancer } from './types.js';

export class Random implements Balancer {
  constructor(
    private readonly list: readonly Backend[],
    private readonly two: boolean,
    private readonly rand: () => number = Math.random,
  ) {}

  pick(_ctx: PickContext | null, now: number, lastResort: boolean): Backend | null {
    let total = 0;
    let usable = 0;
    for (const b of this.list) {
      if (!b.usable(now, lastResort)) continue;
      total += b.effectiveWeight(now);
      usable++;
    }
    if (usable === 0) return null;
    const a = this.draw(total, now, lastResort, null);
    if (!this.two || usable === 1) return a;
    const b = this.draw(total - a.effectiveWeight(now), now, lastResort, a);
    return lessLoaded(a, b, now);
  }

  /** A weighted draw among the usable backends, `except` left out (its weight already taken from `total`). */
  private draw(total: number, now: number, lastResort: boolean, except: Backend | null): Backend {
    let point = this.rand() * total;
    let last: Backend | null = null;
    for (const b of this.list) {
      if (b === except || !b.usable(now, lastResort)) continue;
      last = b;
      point -= b.effectiveWeight(now);
      if (point < 0) return b;
    }
    return last!; // rounding at the very top of the range
  }
}
