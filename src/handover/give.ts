/**
 * The side that hands over (the old process): hello, its listening sockets, wait until the other
 * side serves, stop accepting, then every native tunnel in batches, each kept here until the
 * other side acknowledges it. Whatever is not acknowledged goes back onto this engine.
 */
import { detachCarriers, nativeCarrierOf, type NativeCarrier } from '../relay/native.js';
import type { Tunnel } from '../relay/types.js';
import { Channel, ChannelClosed, expect, type Message } from './channel.js';
import { checkHello, hello } from './hello.js';
import type { HandOverOptions, HandOverReport, Phase } from './types.js';

/** What the proxy lends the hand-over. */
export interface GiveHost {
  /** Each listening socket: a key the other side maps to its own targets, its address and fd. */
  listeners(): Array<{ key: string; address: string; fd: number }>;
  /** Stop accepting (the other side accepts on the same sockets); resume() undoes it. */
  suspend(): void;
  resume(): Promise<void>;
  /** The hand-over succeeded: the copies kept for resume() go. */
  settle(): void;
  /** Every tunnel open now. */
  tunnels(): Tunnel[];
  phase(p: Phase): void;
}

const BATCH = 40; // 40 x 6 fds stays under SCM_MAX_FD (253)
const WINDOW = 4; // batches in flight before waiting for an acknowledgement

interface Batch {
  records: Buffer;
  fds: Int32Array;
  moved: NativeCarrier[];
}

export async function giveOn(ch: Channel, host: GiveHost, o: Required<Pick<HandOverOptions, 'timeoutMs' | 'readyTimeoutMs'>>): Promise<HandOverReport> {
  const started = performance.now();
  host.phase('hello');
  await ch.send(hello(ch.calls));
  const peer = (await expect(ch, 'hello', o.timeoutMs)).msg;
  const bad = checkHello(ch.calls, peer);
  if (bad !== null) throw new Error(`hand-over refused: ${bad}`);
  host.phase('listeners');
  const ls = host.listeners();
  await ch.send({ t: 'listeners', list: ls.map(({ key, address }) => ({ key, address })) }, null, ls.map((l) => l.fd));
  host.phase('ready');
  await expect(ch, 'ready', o.readyTimeoutMs);
  host.suspend();
  host.phase('tunnels');
  const report: HandOverReport = { peerPid: peer.pid, peerVersion: peer.version, listeners: ls.length, moved: 0, refused: 0, stayed: 0, ms: 0 };
  const pending = new Map<number, Batch>();
  try {
    await sendTunnels(ch, host, pending, report, o.timeoutMs);
    while (pending.size > 0) onAck(ch, pending, await expect(ch, 'ack', o.timeoutMs), report);
    await ch.send({ t: 'done', moved: report.moved });
  } catch (err) {
    // Not acknowledged: still ours, back onto this engine; and this side accepts again.
    for (const b of pending.values()) report.refused += reinstate(ch, b, null);
    pending.clear();
    await host.resume();
    throw Object.assign(err instanceof Error ? err : new Error(String(err)), { report });
  }
  host.settle();
  host.phase('done');
  report.stayed = host.tunnels().length;
  report.ms = performance.now() - started;
  return report;
}

async function sendTunnels(ch: Channel, host: GiveHost, pending: Map<number, Batch>, report: HandOverReport, timeoutMs: number): Promise<void> {
  const carriers = host.tunnels().map(nativeCarrierOf).filter((c): c is NativeCarrier => c !== null && c.movable);
  let seq = 0;
  for (let i = 0; i < carriers.length; i += BATCH) {
    const b = detachCarriers(carriers.slice(i, i + BATCH));
    if (b.moved.length === 0) continue;
    const at = process.hrtime.bigint().toString();
    const list: Extract<Message, { t: 'tunnels' }>['list'] = [];
    const flat: number[] = [];
    b.moved.forEach((c, k) => {
      const m = c.meta;
      let n = 0;
      for (let j = 0; j < 6; j++) {
        const fd = b.fds[k * 6 + j]!;
        if (fd >= 0) {
          flat.push(fd);
          n++;
        }
      }
      list.push({ up: m.bytesUp, down: m.bytesDown, idle: m.idleTimeoutMs, ws: m.websocket, fds: n, at });
    });
    try {
      await ch.send({ t: 'tunnels', seq, list }, b.records, flat, timeoutMs);
    } catch (err) {
      report.refused += reinstate(ch, b, null);
      throw err;
    }
    pending.set(seq++, b);
    while (pending.size >= WINDOW) onAck(ch, pending, await expect(ch, 'ack', timeoutMs), report);
  }
}

function onAck(ch: Channel, pending: Map<number, Batch>, r: { msg: Extract<Message, { t: 'ack' }> }, report: HandOverReport): void {
  const b = pending.get(r.msg.seq);
  if (b === undefined) throw new Error(`hand-over: an acknowledgement of batch ${r.msg.seq}, never sent`);
  pending.delete(r.msg.seq);
  const taken = new Set(r.msg.taken);
  b.moved.forEach((c, k) => {
    if (!taken.has(k)) return;
    // The other process holds its own copy of each fd now: ours go, the tunnel goes on there.
    for (let j = 0; j < 6; j++) {
      const fd = b.fds[k * 6 + j]!;
      if (fd >= 0) ch.calls.closeFd(fd);
    }
    c.moved();
    report.moved++;
  });
  report.refused += reinstate(ch, b, taken);
}

/** The tunnels of `b` not in `taken` go back onto this engine; how many. */
function reinstate(ch: Channel, b: Batch, taken: Set<number> | null): number {
  let n = 0;
  b.moved.forEach((c, k) => {
    if (taken?.has(k) === true) return;
    n++;
    const fds = b.fds.subarray(k * 6, k * 6 + 6);
    try {
      c.reinstate(b.records, k, fds);
    } catch {
      // The engine refused its own tunnel back (out of fds): it ends, nothing leaks.
      for (const fd of fds) if (fd >= 0) ch.calls.closeFd(fd);
      c.lost();
    }
  });
  return n;
}

export { ChannelClosed };
