/**
 * Finished upstream connections that were asked to close (Connection: close)
 * and are waiting for the backend to do it. Letting the backend close first
 * leaves TIME_WAIT on its side, not on the proxy's ephemeral ports; but a
 * backend that ignores the request would hold one descriptor per request.
 * So the wait is bounded twice: each socket for `graceMs`, and all of them by
 * `budget` (past it the oldest is closed at once). Every close the proxy had
 * to make itself is counted.
 *
 * A retired socket keeps the leg's listeners (leg.ts sends its 'end' and
 * 'close' here), a retired dial gets `retiredDial` for its events, and one
 * timer for the whole set closes those whose grace passed: nothing is added
 * per connection but its place in the set.
 */
import type { Socket } from 'node:net';
import type { DialSink, NativeUpstream } from '../relay/dial.js';

/** What the set needs of a connection: a JS socket, or a dial of the addon's (relay/dial.ts). */
export interface Retirable {
  readonly destroyed: boolean;
  readonly readableEnded: boolean;
  resume(): unknown;
  destroy(): unknown;
  retiredBy?: RetiredSockets | null;
  /** When it was retired (performance.now(): monotonic, a clock step moves no deadline), for the grace. */
  retiredAt?: number;
}

export interface RetiredSocket extends Socket {
  retiredBy?: RetiredSockets | null;
  retiredAt?: number;
}

export class RetiredSockets {
  /** Oldest first (a Set keeps insertion order). */
  private readonly waiting = new Set<Retirable>();
  /** Sockets the proxy closed itself: the grace passed, or the budget was full. */
  closedByProxy = 0;
  /** Armed while a socket waits: fires at the oldest one's deadline (or later). */
  private timer: NodeJS.Timeout | null = null;
  private readonly onTimer = (): void => this.expireOld();

  constructor(
    private readonly graceMs: number,
    private readonly budget: number,
  ) {}

  /** Retired sockets waiting now. */
  get size(): number {
    return this.waiting.size;
  }

  /** Wait for `up` to close on the backend's side, within the grace and the budget. */
  add(up: Retirable): void {
    if (up.readableEnded || up.destroyed || this.graceMs === 0 || this.budget === 0) {
      if (!up.readableEnded && !up.destroyed) this.closedByProxy++;
      up.destroy();
      return;
    }
    while (this.waiting.size >= this.budget) this.expire(this.waiting.values().next().value!);
    up.retiredBy = this;
    up.retiredAt = performance.now();
    this.waiting.add(up);
    if (this.timer === null) this.arm(this.graceMs);
    up.resume(); // a stray byte after the message must not stall the close
  }

  /** Close every waiting socket now (the proxy is closing). */
  closeAll(): void {
    for (const s of this.waiting) this.expire(s);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** @internal */
  expire(s: Retirable): void {
    if (!this.waiting.delete(s)) return;
    s.retiredBy = null;
    this.closedByProxy++;
    s.destroy();
  }

  /** The backend closed it (or it failed): it waits no longer. */
  forget(s: Retirable): void {
    if (this.waiting.delete(s)) s.retiredBy = null;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  /** Close those whose grace passed (oldest first); wait for the next oldest. */
  private expireOld(): void {
    this.timer = null;
    const now = performance.now();
    for (const s of this.waiting) {
      const due = s.retiredAt! + this.graceMs;
      if (due > now) return this.arm(Math.max(1, due - now));
      this.expire(s);
    }
  }
}

/** A retired connection's backend sent its FIN: close our side too. */
export function retiredEnded(s: Retirable): void {
  s.retiredBy?.forget(s);
  s.destroy();
}

/** A retired dial's events: bytes after the response are dropped, the FIN closes it, a failure (already closed) only leaves the set. */
export const retiredDial: DialSink = {
  dialConnected(): void {},
  dialData(): void {},
  dialEnded: retiredEnded,
  dialFailed(u: NativeUpstream): void {
    u.retiredBy?.forget(u);
  },
};
