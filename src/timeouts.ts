/**
 * One deadline per connection, set at each state change to that state's limit
 * (head 408, connect 504, response 504, keep-alive idle) and pushed back by
 * `refresh()` on activity.
 *
 * The deadline is a number; the Node timer behind it is moved only when the
 * deadline comes before it. A keep-alive connection changes limit five times a
 * request (idle, head, connect, response, idle again) and a response is
 * refreshed on every read: re-arming or refreshing a Node timer each time costs
 * more than the rest of the state change. So the timer may fire early: it then
 * sleeps again for what is left, once per period at most.
 */
export class StateTimer {
  private timer: NodeJS.Timeout | null = null;
  /** When the Node timer fires (performance.now(): monotonic, a clock step moves nothing). */
  private firesAt = 0;
  /** When the live period ends (Infinity: none). */
  private deadline = Infinity;
  private ms = 0;
  private readonly onTimer = (): void => this.expired();

  constructor(private readonly onFire: () => void) {}

  /** Start a new period of `ms` (0 disables). */
  arm(ms: number): void {
    if (ms <= 0) return this.clear();
    this.ms = ms;
    const now = performance.now();
    this.deadline = now + ms;
    if (this.timer !== null && this.firesAt <= this.deadline) return; // it fires first, and looks again
    this.sleep(now, ms);
  }

  /** The current period starts again from now. */
  refresh(): void {
    if (this.ms !== 0) this.deadline = performance.now() + this.ms;
  }

  clear(): void {
    this.ms = 0;
    this.deadline = Infinity;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private sleep(now: number, ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(this.onTimer, ms).unref();
    this.firesAt = now + ms;
  }

  private expired(): void {
    this.timer = null;
    const now = performance.now();
    const left = this.deadline - now;
    if (left === Infinity) return;
    // Node's timers start from the loop's cached time, a little before ours: within 1 ms is due.
    if (left > 1) return this.sleep(now, Math.ceil(left));
    this.ms = 0;
    this.deadline = Infinity;
    this.onFire();
  }
}
