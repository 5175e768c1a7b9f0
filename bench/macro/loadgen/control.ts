// What a scenario needs from the generator's main loop, and small shared helpers.
import type { GenEvent } from './protocol.js';
import { buildMaskedFrame, OP_BINARY, patternPayload } from '../common/ws-frames.js';

export interface Control {
  /** Tells the runner to sample now; resolves once it has. */
  mark(phase: Extract<GenEvent, { event: 'mark' }>['phase']): Promise<void>;
}

/** Hard cap on operations (messages, frames, handshakes, requests) per job, beside the time bound. */
export const MAX_OPS = 50_000_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How many distinct frames cycle: a lost, repeated or reordered frame then fails the byte check. */
export const RING = 8;

export interface FrameRing {
  /** Masked client frames, sent in order 0..RING-1, 0, ... */
  frames: Buffer[];
  /** The unmasked payload each frame must come back as. */
  payloads: Buffer[];
}

export function frameRing(size: number): FrameRing {
  const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const payloads = Array.from({ length: RING }, (_, i) => patternPayload(size, i + 1));
  return { payloads, frames: payloads.map((p) => buildMaskedFrame(OP_BINARY, p, mask)) };
}

/** Resolves when `done()` is true, polling; gives up after `maxMs`. Used to drain in-flight echoes. */
export async function waitUntil(done: () => boolean, maxMs: number): Promise<boolean> {
  const until = performance.now() + maxMs;
  while (!done()) {
    if (performance.now() > until) return false;
    await sleep(5);
  }
  return true;
}

/**
 * The measured window every scenario shares: warm up, mark 'start', count for
 * `durationMs`, mark 'end', then stop the senders. Returns the window in seconds.
 */
export async function measureWindow(
  ctl: Control,
  s: { measuring: boolean; running: boolean },
  warmupMs: number,
  durationMs: number,
): Promise<number> {
  await sleep(warmupMs);
  await ctl.mark('start');
  s.measuring = true;
  const t0 = performance.now();
  await sleep(durationMs);
  s.measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  await ctl.mark('end');
  s.running = false;
  return seconds;
}

/** What every generator counts of its failures. */
export interface ErrorCounts {
  errors: number;
  firstError: string | null;
}

/** Count a connection's failure (keeping the first message) and drop the connection. */
export function failConnection(s: ErrorCounts, socket: { destroy(): void }, msg: string): void {
  s.errors++;
  s.firstError ??= msg;
  socket.destroy();
}
