/**
 * One timer per connection, re-armed at each state change with that state's
 * limit (head 408, connect 504, response 504, keep-alive idle). `refresh()`
 * restarts the current period without allocating.
 */
export class StateTimer {
  private timer: NodeJS.Timeout | null = null;
  private ms = 0;
  constructor(private readonly onFire: () => void) {}

  /** Start a new period of `ms` (0 disables). */
  arm(ms: number): void {
    if (this.timer !== null && ms === this.ms) {
      this.timer.refresh();
      return;
    }
    this.clear();
    this.ms = ms;
    if (ms > 0) {
      this.timer = setTimeout(this.onFire, ms);
      this.timer.unref();
    }
  }

  refresh(): void {
    this.timer?.refresh();
  }

  clear(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
