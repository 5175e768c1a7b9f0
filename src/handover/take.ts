/**
 * The side that takes over (the new process): hello, listen on the sockets it is given, say
 * ready, then adopt tunnel batches: staged, acknowledged, and only then started, so a tunnel the
 * old side has not heard about was never touched here.
 */
import { adoptMoved, type AdoptedTunnel, type MovedMeta, type NativeRelay } from '../relay/native.js';
import type { Tunnel, TunnelStats } from '../relay/types.js';
import { Channel, ChannelClosed, expect, type Message, type Received } from './channel.js';
import { checkHello, hello } from './hello.js';
import type { TakeOverReport } from './types.js';

export interface TakeHost {
  relay: NativeRelay;
  /** Serve on the listening sockets given (fds[i] for list[i]); throws when it cannot. */
  listen(list: Array<{ key: string; address: string }>, fds: number[]): Promise<void>;
  /** A tunnel adopted: the proxy counts it and hears its end. */
  adopted(t: Tunnel, meta: MovedMeta): (s: TunnelStats) => void;
}

export async function takeOn(ch: Channel, host: TakeHost, timeoutMs: number): Promise<TakeOverReport> {
  const started = performance.now();
  const peer = (await expect(ch, 'hello', timeoutMs)).msg;
  const bad = checkHello(ch.calls, peer);
  if (bad !== null) {
    await ch.send({ t: 'refuse', reason: bad }).catch(() => {});
    throw new Error(`take-over refused: ${bad}`);
  }
  await ch.send(hello(ch.calls));
  const ls = await expect(ch, 'listeners', timeoutMs);
  try {
    await host.listen(ls.msg.list, ls.fds);
  } catch (err) {
    await ch.send({ t: 'fail', reason: (err as Error).message }).catch(() => {});
    throw err;
  }
  await ch.send({ t: 'ready' });
  const report: TakeOverReport = { peerPid: peer.pid, peerVersion: peer.version, listeners: ls.fds.length, tunnels: 0, refused: 0, pausesMs: [], maxPauseMs: 0, ms: 0 };
  for (;;) {
    const r = await ch.recv(timeoutMs);
    if (r.msg.t === 'done') break;
    if (r.msg.t !== 'tunnels') throw new Error(`take-over: unexpected '${r.msg.t}'`);
    await adoptBatch(ch, host, r as Received & { msg: Extract<Message, { t: 'tunnels' }> }, report);
  }
  report.ms = performance.now() - started;
  return report;
}

async function adoptBatch(ch: Channel, host: TakeHost, r: Received & { msg: Extract<Message, { t: 'tunnels' }> }, report: TakeOverReport): Promise<void> {
  const staged: Array<{ a: AdoptedTunnel; k: number }> = [];
  const refused: number[] = [];
  let next = 0;
  r.msg.list.forEach((m, k) => {
    const mask = r.bin.readUInt32LE(k * ch.calls.moved.recordSize + 36);
    const fds = new Int32Array(6).fill(-1);
    for (let j = 0; j < 6; j++) if (mask & (1 << j)) fds[j] = r.fds[next++] ?? -1;
    const meta: MovedMeta = { bytesUp: m.up, bytesDown: m.down, idleTimeoutMs: m.idle, websocket: m.ws };
    let onEnd: ((s: TunnelStats) => void) | null = null;
    try {
      const a = adoptMoved(host.relay, r.bin, k, fds, meta, (s) => onEnd?.(s));
      onEnd = host.adopted(a.tunnel, meta);
      staged.push({ a, k });
    } catch {
      // Refused here: our copies go; the old side still holds its own and keeps the tunnel.
      for (const fd of fds) if (fd >= 0) ch.calls.closeFd(fd);
      refused.push(k);
    }
  });
  for (let i = next; i < r.fds.length; i++) ch.calls.closeFd(r.fds[i]!); // more fds than records said: never kept
  try {
    await ch.send({ t: 'ack', seq: r.msg.seq, taken: staged.map((s) => s.k), refused });
  } catch (err) {
    // The old side is gone (its copies closed with it): these are the only copies, so they run
    // here. Any other failure: it may still take them back, so they must not run twice.
    if (!(err instanceof ChannelClosed) && !isPeerGone(err)) {
      for (const s of staged) s.a.discard();
      throw err;
    }
  }
  const now = process.hrtime.bigint();
  for (const { a, k } of staged) {
    a.start();
    const pause = Number(now - BigInt(r.msg.list[k]!.at)) / 1e6;
    report.pausesMs.push(pause);
    if (pause > report.maxPauseMs) report.maxPauseMs = pause;
  }
  report.tunnels += staged.length;
  report.refused += refused.length;
}

function isPeerGone(err: unknown): boolean {
  return err instanceof Error && /EPIPE|ECONNRESET|ENOTCONN/.test(err.message);
}
