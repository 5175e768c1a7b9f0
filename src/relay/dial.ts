/**
 * Upstream connections the addon dials (src/native/dial.cc): upgrades that
 * will be spliced, and plain requests with no body to send. A non-blocking
 * connect and the request head written from a poll on the main loop, the
 * response bytes read back here for the leg's parser, reading paused and
 * resumed by the leg's backpressure. No JS socket exists: a valid 101 hands
 * the fd to the engine; any other response is read to its end from the dial,
 * which then waits for the backend's close in the retired set as a socket
 * would (upstream/retire.ts).
 */
import net, { type Socket } from 'node:net';
import { constants } from 'node:os';
import { ownCopy } from './handover.js';
import type { RetiredSockets } from '../upstream/retire.js';
import type { Relay, Tunnel } from './types.js';

/** What a dial's owner (its leg, then the retired set) hears, in the order a socket would say it. */
export interface DialSink {
  dialConnected(u: NativeUpstream): void;
  dialData(u: NativeUpstream, chunk: Buffer): void;
  /** The backend's FIN. */
  dialEnded(u: NativeUpstream): void;
  /** `code`: the errno name (ECONNREFUSED, ECONNRESET, ...); the connection is closed. */
  dialFailed(u: NativeUpstream, code: string): void;
}

/** The addon's dial calls (absent in an addon built before them). */
export interface DialCalls {
  dialInit(onEvent: (id: number, kind: number, arg: number | string | undefined) => void, readBuf: Buffer): void;
  dial(ip: string, port: number, head: Buffer): number;
  dialClose(id: number, reset: boolean): void;
  dialRelease(id: number): number;
  dialWrite(fd: number, data: Buffer): number;
  dialPause(id: number, paused: boolean): boolean;
  closeFd(fd: number): boolean;
}

const CONNECTED = 1;
const DATA = 2;
const END = 3;
const ERROR = 4;

export class Dialer {
  private readonly live = new Map<number, NativeUpstream>();
  /** Connections dialled so far (for tests and leak checks). */
  dialled = 0;

  /** Dials still watched by the addon (connecting, or awaiting their response head). */
  get open(): number {
    return this.live.size;
  }

  /** Where the addon reads response bytes (its own memory, never moved); each read is copied out. */
  private readonly readBuf = Buffer.allocUnsafeSlow(64 * 1024);

  constructor(readonly calls: DialCalls) {
    calls.dialInit(this.onEvent.bind(this), this.readBuf);
  }

  /**
   * Connect to `ip`:`port` and write `head` once connected. Null when the addon cannot (a host
   * name, not an address; no socket to be had): the caller dials in JS, which reports such
   * failures its own way.
   */
  dial(ip: string, port: number, head: Buffer, sink: DialSink): NativeUpstream | null {
    const id = this.calls.dial(ip, port, head);
    if (id <= 0) return null;
    const u = new NativeUpstream(this, id, sink);
    this.live.set(id, u);
    this.dialled++;
    return u;
  }

  /** @internal It is no longer watched: no event comes for it. */
  forget(id: number): void {
    this.live.delete(id);
  }

  private onEvent(id: number, kind: number, arg: number | string | undefined): void {
    const u = this.live.get(id);
    if (u === undefined) return;
    const sink = u.sink;
    if (kind === DATA) {
      // An ordinary Buffer (pooled when small): the parser and the client's write keep slices of it.
      sink.dialData(u, ownCopy(arg as number, this.readBuf));
    }
    else if (kind === CONNECTED) sink.dialConnected(u);
    else if (kind === END) {
      u.readableEnded = true;
      sink.dialEnded(u);
    }
    else if (kind === ERROR) {
      u.failed();
      sink.dialFailed(u, String(arg));
    }
  }
}

const WATCHED = 0;
/** Taken from the poll: the fd is ours to hand on or close. */
const RELEASED = 1;
/** Closed, or owned by a net.Socket / the engine. */
const GONE = 2;

/** One dialled upstream connection: an fd and an id, no JS socket. */
export class NativeUpstream {
  private state = WATCHED;
  private fdNum = -1;
  /** The backend's FIN came (nothing more will be read). */
  readableEnded = false;
  /** While it waits in the retired set for the backend's close (upstream/retire.ts). */
  retiredBy?: RetiredSockets | null;
  retiredAt?: number;

  constructor(
    private readonly dialer: Dialer,
    private readonly id: number,
    /** Who hears its events: the leg, then the retired set. */
    public sink: DialSink,
  ) {}

  get destroyed(): boolean {
    return this.state === GONE;
  }

  /** Stop reading (the client is not taking the response as fast as it comes). */
  pause(): void {
    if (this.state === WATCHED) this.dialer.calls.dialPause(this.id, true);
  }

  /** Read again; bytes that waited come on the loop's next turn. */
  resume(): void {
    if (this.state === WATCHED) this.dialer.calls.dialPause(this.id, false);
  }

  /** The fd, no longer watched (-1: the connection is not up or is gone). */
  fd(): number {
    if (this.state === WATCHED) {
      this.fdNum = this.dialer.calls.dialRelease(this.id);
      this.dialer.forget(this.id);
      this.state = this.fdNum >= 0 ? RELEASED : GONE;
    }
    return this.state === RELEASED ? this.fdNum : -1;
  }

  /** Write what the kernel takes of `b` now (never blocks; the fd is taken from the poll first): bytes written, or -errno. */
  write(b: Buffer): number {
    const fd = this.fd();
    return fd < 0 ? -constants.errno.EBADF : this.dialer.calls.dialWrite(fd, b);
  }

  /** A JS socket on this connection from now on (it reads at once); it owns the fd. */
  toSocket(): Socket {
    const fd = this.fd();
    if (fd < 0) throw new Error('dialled upstream is not connected');
    this.state = GONE;
    return new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
  }

  /** The engine holds the fd now: its own dup (ours goes, nothing is sent), or, `taken`, ours itself. */
  handedOver(taken: boolean): void {
    if (this.state === RELEASED && !taken) this.dialer.calls.closeFd(this.fdNum);
    this.state = GONE;
  }

  /** Close it now (`reset`: with an RST). */
  destroy(reset = false): void {
    if (this.state === WATCHED) {
      this.dialer.calls.dialClose(this.id, reset);
      this.dialer.forget(this.id);
    } else if (this.state === RELEASED) this.dialer.calls.closeFd(this.fdNum);
    this.state = GONE;
  }

  /** @internal The addon closed it after an error. */
  failed(): void {
    this.dialer.forget(this.id);
    this.state = GONE;
  }
}

type StartTail = Parameters<Relay['start']> extends [Socket, Socket, ...infer R] ? R : never;

/** Start a tunnel on `relay` whether its upstream is a JS socket or one the addon dialled (through that relay's dialer). */
export function startTunnel(relay: Relay, client: Socket, upstream: Socket | NativeUpstream, ...rest: StartTail): Tunnel {
  if (upstream instanceof NativeUpstream) {
    if (relay.startNative !== undefined) return relay.startNative(client, upstream, ...rest);
    return relay.start(client, upstream.toSocket(), ...rest);
  }
  return relay.start(client, upstream, ...rest);
}
