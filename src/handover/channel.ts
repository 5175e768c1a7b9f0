/**
 * The hand-over's Unix socket (SOCK_SEQPACKET, made by the addon: Node cannot pass raw fds).
 * One message per send: a 4-byte JSON length, the JSON, then binary records; fds ride along with
 * SCM_RIGHTS. libuv never sees the fd, so waiting is a short poll(2) then a timer: the event loop
 * keeps serving while the other process takes its time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { HandoverCalls } from '../relay/addon.js';

/** The version of this protocol; both processes must speak the same one. */
export const PROTOCOL = 1;

export type Message =
  | { t: 'hello'; protocol: number; version: string; recordSize: number; pid: number }
  | { t: 'refuse'; reason: string }
  | { t: 'listeners'; list: Array<{ key: string; address: string }> }
  | { t: 'ready' }
  | { t: 'fail'; reason: string }
  | { t: 'tunnels'; seq: number; list: Array<{ up: number; down: number; idle: number; ws: boolean; fds: number; at: string }> }
  | { t: 'ack'; seq: number; taken: number[]; refused: number[] }
  | { t: 'done'; moved: number };

export interface Received {
  msg: Message;
  bin: Buffer;
  fds: number[];
}

/** The peer closed the channel (exited, crashed). */
export class ChannelClosed extends Error {}

const POLL_MS = 1;
const IDLE_MS = 2;

export class Channel {
  private open = true;

  constructor(
    readonly calls: HandoverCalls,
    readonly fd: number,
  ) {}

  /** Send one message; waits (bounded by `timeoutMs`) while the socket buffer is full. */
  async send(msg: Message, bin: Buffer | null = null, fds: number[] = [], timeoutMs = 10_000): Promise<void> {
    const json = Buffer.from(JSON.stringify(msg));
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(json.length, 0);
    const data = Buffer.concat(bin === null ? [head, json] : [head, json, bin]);
    const deadline = Date.now() + timeoutMs;
    while (!this.calls.channelSend(this.fd, data, fds)) {
      if (Date.now() > deadline) throw new Error(`hand-over: the other process read nothing for ${timeoutMs} ms`);
      if (!this.calls.channelWait(this.fd, true, POLL_MS)) await sleep(IDLE_MS);
    }
  }

  /** The next message; ChannelClosed when the peer is gone, an Error at the deadline. */
  async recv(timeoutMs: number): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.calls.channelRecv(this.fd);
      if (r !== null) return this.decode(r.data, r.fds);
      if (Date.now() > deadline) throw new Error(`hand-over: no answer within ${timeoutMs} ms`);
      if (!this.calls.channelWait(this.fd, false, POLL_MS)) await sleep(IDLE_MS);
    }
  }

  /** A message already there, or null (never waits). */
  poll(): Received | null {
    const r = this.calls.channelRecv(this.fd);
    return r === null ? null : this.decode(r.data, r.fds);
  }

  private decode(data: Buffer, fds: number[]): Received {
    if (data.length === 0) throw new ChannelClosed('hand-over: the other process closed the channel');
    const n = data.length >= 4 ? data.readUInt32LE(0) : -1;
    let msg: Message | null = null;
    if (n >= 0 && 4 + n <= data.length) {
      try {
        msg = JSON.parse(data.subarray(4, 4 + n).toString()) as Message;
      } catch {
        msg = null;
      }
    }
    if (msg === null || typeof msg !== 'object' || typeof (msg as { t?: unknown }).t !== 'string') {
      for (const fd of fds) this.calls.closeFd(fd);
      throw new Error('hand-over: a malformed message');
    }
    return { msg, bin: data.subarray(4 + n), fds };
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.calls.closeFd(this.fd);
  }
}

/** Expect a message of type `t` (a 'refuse' or 'fail' becomes the error it says). */
export async function expect<T extends Message['t']>(ch: Channel, t: T, timeoutMs: number): Promise<Received & { msg: Extract<Message, { t: T }> }> {
  const r = await ch.recv(timeoutMs);
  if (r.msg.t === t) return r as Received & { msg: Extract<Message, { t: T }> };
  for (const fd of r.fds) ch.calls.closeFd(fd);
  if (r.msg.t === 'refuse' || r.msg.t === 'fail') throw new Error(`hand-over refused by the other process: ${r.msg.reason}`);
  throw new Error(`hand-over: expected '${t}', got '${r.msg.t}'`);
}
