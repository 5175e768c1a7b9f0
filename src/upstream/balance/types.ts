/** The contract every balancing method implements. */
import type { Backend } from '../backend.js';
import type { PickContext } from '../context.js';

export interface Balancer {
  /**
   * A usable backend of `list` (see Backend.usable), or null when none is.
   * `lastResort` lets passively failed backends be tried when nothing else is left.
   */
  pick(ctx: PickContext, now: number, lastResort: boolean): Backend | null;
}

/** How a group asks for a balancer over one tier (primaries or backups) of its backends. */
export type BalancerFactory = (list: readonly Backend[]) => Balancer;
