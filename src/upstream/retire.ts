/**
 * Finished upstream connections that were asked to close (Connection: close)
 * and are waiting for the backend to do it. Letting the backend close first
 * leaves TIME_WAIT on its side, not on the proxy's ephemeral ports; but a
 * backend that ignores the request would hold one descriptor per request.
 * So the wait is bounded twice: each socket for `graceMs`, and all of them by
 * `budget` (past it the oldest is closed at once). Every close the proxy had
 * to make itself is counted.
 */
import type { Socket } from 'node:net';

interface RetiredSocket extends Socket {
  retiredBy?: RetiredSockets | null;
}

export class RetiredSockets {
  /** Oldest first (a Set keeps insertion order). */
  private readonly waiting = new Set<RetiredSocket>();
  /** Sockets the proxy closed itself: the grace passed, or the budget was full. */
  closedByProxy = 0;

  constructor(
    private readonly graceMs: number,
    private readonly budget: number,
  ) {}

  /** Retired sockets waiting now. */
  get size(): number {
    return this.waiting.size;
  }

  /** Wait for `up` to close on the backend's side, within the grace and the budget. */
  add(up: Socket): void {
    if (up.readableEnded || up.destroyed || this.graceMs === 0 || this.budget === 0) {
      if (!up.readableEnded && !up.destroyed) this.closedByProxy++;
      up.destroy();
      return;
    }
    while (this.waiting.size >= this.budget) this.expire(this.waiting.values().next().value!);
    const s = up as RetiredSocket;
    s.retiredBy = this;
    this.waiting.add(s);
    s.on('end', onEnd);
    s.on('close', onClose);
    s.setTimeout(this.graceMs, onGrace);
    s.resume(); // a stray byte after the message must not stall the close
  }

  /** Close every waiting socket now (the proxy is closing). */
  closeAll(): void {
    for (const s of this.waiting) this.expire(s);
  }

  /** @internal */
  expire(s: RetiredSocket): void {
    if (!this.waiting.delete(s)) return;
    s.retiredBy = null;
    this.closedByProxy++;
    s.destroy();
  }

  /** @internal */
  forget(s: RetiredSocket): void {
    if (this.waiting.delete(s)) s.retiredBy = null;
  }
}

function onEnd(this: RetiredSocket): void {
  this.retiredBy?.forget(this);
  this.destroy();
}
function onClose(this: RetiredSocket): void {
  this.retiredBy?.forget(this);
}
function onGrace(this: RetiredSocket): void {
  this.retiredBy?.expire(this);
}
