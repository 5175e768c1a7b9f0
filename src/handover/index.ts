/**
 * Zero-reconnect restarts: `handOver` gives this process's listening sockets and live native
 * tunnels to another process, `takeOver` receives them (native-notes/handover.md: the protocol
 * and why it loses nothing). The CLI's SIGUSR2 upgrade (upgrade.ts) runs the same two over a
 * socketpair to the process it starts.
 */
import { unlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadBinding, type HandoverCalls } from '../relay/addon.js';
import { Channel } from './channel.js';
import { giveOn, type GiveHost } from './give.js';
import { takeOn, type TakeHost } from './take.js';
import type { HandOverOptions, HandOverReport, TakeOverOptions, TakeOverReport } from './types.js';

export type { GiveHost } from './give.js';
export type { TakeHost } from './take.js';
export type { HandOverOptions, HandOverReport, HandoverEndEvent, Phase, TakeOverOptions, TakeOverReport } from './types.js';

/** The addon's hand-over calls, or why there are none (the hand-over needs the native relay). */
export function handoverCalls(): HandoverCalls {
  const { binding, reason } = loadBinding();
  const calls = binding?.handover ?? null;
  if (calls === null) throw new Error(`hand-over needs the native relay addon with hand-over support (${binding === null ? reason : 'stale build: node src/native/build.cjs'})`);
  return calls;
}

/** Give everything to the process listening at `target` (a Unix socket path, or a connected channel fd). */
export async function handOver(host: GiveHost, target: string | number, options: HandOverOptions = {}): Promise<HandOverReport> {
  const calls = handoverCalls();
  const fd = typeof target === 'number' ? target : calls.channelConnect(target);
  const ch = new Channel(calls, fd);
  try {
    return await giveOn(ch, host, { timeoutMs: options.timeoutMs ?? 10_000, readyTimeoutMs: options.readyTimeoutMs ?? 30_000 });
  } catch (err) {
    host.phase('rolled-back'); // everything is as it was: listeners, tunnels not acknowledged
    throw err;
  } finally {
    ch.close();
  }
}

/** Wait at `target` (a Unix socket path this creates, or a connected channel fd) for a hand-over, and take it. */
export async function takeOver(host: TakeHost, target: string | number, options: TakeOverOptions = {}): Promise<TakeOverReport> {
  const calls = handoverCalls();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const fd = typeof target === 'number' ? target : await acceptOne(calls, target, timeoutMs);
  const ch = new Channel(calls, fd);
  try {
    return await takeOn(ch, host, timeoutMs);
  } finally {
    ch.close();
  }
}

async function acceptOne(calls: HandoverCalls, path: string, timeoutMs: number): Promise<number> {
  const lfd = calls.channelListen(path);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const fd = calls.channelAccept(lfd);
      if (fd >= 0) return fd;
      if (Date.now() > deadline) throw new Error(`take-over: nobody connected to ${path} within ${timeoutMs} ms`);
      if (!calls.channelWait(lfd, false, 1)) await sleep(5);
    }
  } finally {
    calls.closeFd(lfd);
    try {
      unlinkSync(path); // one hand-over per socket: nobody else may connect to it
    } catch {
      // already gone
    }
  }
}
