/**
 * Hash methods: `ip_hash` (nginx's: an IPv4 client by its /24, an IPv6
 * client by its whole address), `hash KEY` (the key's hash picks a slot in
 * the weighted list) and `hash KEY consistent` (ketama-style: each backend
 * owns 160 x weight points on a ring, a key goes to the first point at or
 * after its hash, so adding or removing one of N backends moves about 1/N of
 * the keys). A key whose backend is unusable goes to the next backend along
 * the list or ring, never to a random one, so it moves back when it returns.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Backend } from '../backend.js';
import type { PickContext } from '../context.js';
import type { HashKey } from '../key.js';
import { hash32 } from './hash32.js';
import type { Balancer } from './types.js';

/** Points per unit of weight on the consistent ring (as ketama and nginx). */
export const POINTS_PER_WEIGHT = 160;

/** `hash KEY`: the key's hash modulo the total weight names a backend. */
export class WeightedHash implements Balancer {
  private readonly total: number;

  constructor(
    private readonly list: readonly Backend[],
    private readonly key: HashKey,
  ) {
    this.total = list.reduce((n, b) => n + b.weight, 0);
  }

  pick(ctx: PickContext, now: number, lastResort: boolean): Backend | null {
    return this.pickByHash(hash32(this.key(ctx)), now, lastResort);
  }

  pickByHash(h: number, now: number, lastResort: boolean): Backend | null {
    const list = this.list;
    let point = h % this.total;
    let i = 0;
    while (point >= list[i]!.weight) point -= list[i++]!.weight;
    for (let n = 0; n < list.length; n++) {
      const b = list[(i + n) % list.length]!;
      if (b.usable(now, lastResort)) return b;
    }
    return null;
  }
}

/** nginx `ip_hash`: the weighted hash over the client's network, not its whole address. */
export class IpHash implements Balancer {
  private readonly inner: WeightedHash;

  constructor(list: readonly Backend[]) {
    this.inner = new WeightedHash(list, ipHashKey);
  }

  pick(ctx: PickContext, now: number, lastResort: boolean): Backend | null {
    return this.inner.pick(ctx, now, lastResort);
  }
}

/** The part of a client address ip_hash keys on: the first three octets of IPv4, all of IPv6. */
export function ipHashKey(ctx: PickContext): string {
  let a = ctx.remoteAddress;
  if (a.startsWith('::ffff:') && isIPv4(a.slice(7))) a = a.slice(7); // IPv4-mapped: an IPv4 client
  if (isIPv4(a)) return a.slice(0, a.lastIndexOf('.'));
  return isIPv6(a) ? a.toLowerCase() : a;
}

/** `hash KEY consistent`. */
export class ConsistentHash implements Balancer {
  /** Sorted ring points and, index-aligned, the backend owning each. */
  private readonly points: Uint32Array;
  private readonly owners: Backend[];

  constructor(
    list: readonly Backend[],
    private readonly key: HashKey,
  ) {
    const ring: Array<[number, Backend]> = [];
    for (const b of list) {
      // Points derive from the backend's identity only: others' points stay put when it comes or goes.
      for (let i = 0; i < POINTS_PER_WEIGHT * b.weight; i++) ring.push([hash32(`${b.label}#${i}`), b]);
    }
    ring.sort((x, y) => x[0] - y[0]);
    this.points = Uint32Array.from(ring, (r) => r[0]);
    this.owners = ring.map((r) => r[1]);
  }

  pick(ctx: PickContext, now: number, lastResort: boolean): Backend | null {
    return this.pickByHash(hash32(this.key(ctx)), now, lastResort);
  }

  pickByHash(h: number, now: number, lastResort: boolean): Backend | null {
    const pts = this.points;
    if (pts.length === 0) return null;
    let lo = 0;
    let hi = pts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    // Walk the ring from there to the first usable owner.
    let seen: Backend | null = null;
    for (let n = 0; n < pts.length; n++) {
      const b = this.owners[(lo + n) % pts.length]!;
      if (b === seen) continue;
      if (b.usable(now, lastResort)) return b;
      seen = b;
    }
    return null;
  }
}
