// Outside load: this machine is shared, so a round whose samples show other processes busy is
// measured again (bounded), after waiting a little for the machine to calm down.
import type { Sample } from './measure.js';
import { machineCpu } from './procfs.js';

/** A sample is disturbed when other processes used more than this share of one core during it. */
export const DISTURBED_PCT = 30;

/** wrk samples cannot tell wrk's CPU from others': only the generator's samples are judged. */
export function disturbed(s: Sample): boolean {
  return s.client === 'loadgen' && (s.values.otherCpuPct ?? 0) > DISTURBED_PCT;
}

/** Waits until the whole machine is under `pct`% of one core busy over 500 ms, at most `maxMs`. */
export async function waitQuiet(maxMs: number, pct = 15): Promise<boolean> {
  const until = Date.now() + maxMs;
  while (Date.now() < until) {
    const a = machineCpu();
    await new Promise((r) => setTimeout(r, 500));
    const b = machineCpu();
    if (((b.busy + b.irq - a.busy - a.irq) / 0.5) * 100 < pct) return true;
  }
  return false;
}
