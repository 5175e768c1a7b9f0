// Bounded latency recorder: preallocated, so recording never allocates.

export class LatencyRecorder {
  private readonly samples: Float64Array;
  private n = 0;
  private total = 0;

  constructor(capacity = 1 << 20) {
    this.samples = new Float64Array(capacity);
  }

  /** Records one sample (ms); past capacity it overwrites the oldest (a ring), keeping the latest. */
  record(ms: number): void {
    this.samples[this.n] = ms;
    this.n = this.n + 1 === this.samples.length ? 0 : this.n + 1;
    this.total++;
  }

  reset(): void {
    this.n = 0;
    this.total = 0;
  }

  /** Percentile in microseconds (nearest rank); NaN when empty. */
  percentilesUs(ps: readonly number[]): number[] {
    const len = Math.min(this.total, this.samples.length);
    if (len === 0) return ps.map(() => NaN);
    const sorted = this.samples.slice(0, len).sort();
    return ps.map((p) => sorted[Math.min(len - 1, Math.max(0, Math.ceil((p / 100) * len) - 1))]! * 1000);
  }
}

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}
