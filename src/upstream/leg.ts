/**
 * The back connection of one client connection: connect to a backend, write
 * the request head and body, parse the response head, pass the body through
 * to the client, and retire the socket when the response is complete. It
 * reports to its owner (the client connection) and decides nothing itself:
 * every failure goes back as a code for the owner's failure table.
 *
 * Listeners are module functions that find their leg through the socket, and
 * act only while that socket is still the leg's current one: a retired,
 * replaced or reset socket can never touch a later exchange. They are added
 * once per socket, when it is opened, and stay: an idle pooled socket's events
 * go to its pool, a retired one's to the retired set (pool.ts, retire.ts).
 */
import net, { type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ErrorCode } from '../errors.js';
import { readResponseHead, type ResponseHead } from '../http1/head.js';
import { Ev, type Parser, type ParserPool } from '../http1/llhttp.js';
import { resetOrDestroy } from '../sockets.js';
import type { StateTimer } from '../timeouts.js';
import type { ResolvedOptions } from '../options.js';
import { proxyHeaderFor } from '../proxy-protocol/write.js';
import type { DialSink, NativeUpstream } from '../relay/dial.js';
import { fdOf, ownCopy, readDirect } from '../relay/handover.js';
import type { Relay } from '../relay/types.js';
import type { UpstreamTls } from '../tls/upstream.js';
import type { Backend } from './group.js';
import { responseKeepsAlive, type PooledSocket, type UpstreamPool } from './pool.js';
import { retiredDial, retiredEnded, type RetiredSocket, type RetiredSockets } from './retire.js';

/** What every leg of a proxy shares (the proxy context has these). */
export interface LegShared {
  readonly options: ResolvedOptions;
  readonly upstreamTls: ReadonlyMap<string, UpstreamTls>;
  readonly responseParsers: ParserPool;
  /** Finished connections waiting for their backend to close. */
  readonly retired: RetiredSockets;
  /** Keep-alive pools of the upstream groups that have one, by name. */
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  /** Its dialer (if any) connects upgrades (for its startNative) and bodiless plain requests with no JS socket. */
  readonly relay: Relay;
}

/** What the request is to the leg. */
export const enum LegKind {
  /** A plain request; the backend is asked to close after the response. */
  Close = 0,
  /** An upgrade: a 101 may answer it; never on a pooled connection. */
  Upgrade = 1,
  /** A plain request on a keep-alive connection, taken from the pool or opened, given back after. */
  Pooled = 2,
  /** Pooled, and sending it again is safe: a reused connection closing before any response byte (the keep-alive race) is retried once on a fresh one. */
  PooledReplayable = 3,
}

/** What the owner makes of a response head. */
export const enum HeadVerdict {
  /** Stop parsing: the exchange ended (failed) or the socket became a tunnel. */
  Stop = 0,
  /** An interim (1xx) response: the final head follows. */
  Interim = 1,
  /** The head went to the client: pass the body through. */
  Body = 2,
}

export interface LegOwner {
  /** Where response bytes go. */
  readonly client: Socket;
  /** Connected; the head and the body bytes held so far are written. */
  legConnected(): void;
  /** `chunk[pos..]` follows the head. */
  legHead(res: ResponseHead, p: Parser, chunk: Buffer, pos: number): HeadVerdict;
  /** The response is complete (`eof`: it was delimited by the backend's close). */
  legDone(eof: boolean): void;
  legFailed(code: ErrorCode, reason: string): void;
  /** The backend took the body bytes written so far. */
  legDrain(): void;
}

/** Body bytes up to this size are copied behind the response head (one write); larger ones follow it. */
const JOIN_MAX = 16 * 1024;

const enum Phase {
  Idle = 0,
  Connecting = 1,
  /** Request written, no response head yet. */
  Waiting = 2,
  /** Response head passed on; body flowing. */
  Body = 3,
}

interface LegSocket extends PooledSocket, RetiredSocket {
  leg?: UpstreamLeg | null;
}

export class UpstreamLeg implements DialSink {
  private readonly owner: LegOwner;
  private readonly parsers: ParserPool;
  private readonly retired: RetiredSockets;
  private readonly shared: LegShared;
  private readonly timer: StateTimer;
  /** Body bytes held while connecting; over this the owner pauses the client. */
  private readonly maxHeld: number;
  /** The current socket; only its events count. */
  socket: LegSocket | null = null;
  /** Instead of a socket: a connection the addon dialled (an upgrade, or a plain request with no body to send). */
  private dial: NativeUpstream | null = null;
  private parser: Parser | null = null;
  private phase = Phase.Idle;
  private head: Buffer | null = null;
  /** The request asked for an upgrade: a 101 may answer it (once). */
  private upgrade = false;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private kind = LegKind.Close;
  private backend: Backend | null = null;
  /** The current socket's pool (null: not pooled). */
  private pool: UpstreamPool | null = null;
  /** The current socket came from the pool; `gotBytes`: it has sent a byte of the response. */
  private reused = false;
  private gotBytes = false;
  /** Never reused: the response said close, or bytes came behind its end (out of step). */
  private spent = false;
  private group = '';
  /** The head as sent on a reused connection, for the keep-alive race. */
  private sentHead: Buffer | null = null;
  /** The response head for the client (latin1), written with the body bytes behind it (respond()). */
  private headOut: string | null = null;

  constructor(owner: LegOwner, shared: LegShared, timer: StateTimer, maxHeld: number) {
    this.owner = owner;
    this.parsers = shared.responseParsers;
    this.retired = shared.retired;
    this.shared = shared;
    this.timer = timer;
    this.maxHeld = maxHeld;
  }

  /** The request head is written; body bytes now go straight out. */
  get connected(): boolean {
    return this.phase >= Phase.Waiting;
  }

  /**
   * Open a connection to `backend` of upstream `group`; `head` goes out first once it is up, then
   * any held body bytes (behind a PROXY protocol header when the group sends one, over TLS when it
   * speaks TLS). `bodiless`: no body byte will follow the head (such a plain request may be
   * dialled by the addon). False: no response parser is free (limits.maxParsers), nothing was opened.
   */
  connect(backend: Backend, head: Buffer, kind: LegKind, group: string, bodiless = false): boolean {
    // The response parser is taken first: when none is left no backend connection is opened.
    if (this.parser === null && (this.parser = this.parsers.acquire()) === null) return false;
    this.head = head;
    this.kind = kind;
    this.upgrade = kind === LegKind.Upgrade;
    this.backend = backend;
    this.group = group;
    this.pool = kind >= LegKind.Pooled ? (this.shared.pools.get(group) ?? null) : null;
    const idle = this.pool?.take(backend) ?? null;
    if (idle !== null) {
      this.hook(idle);
      this.reused = true;
      this.socketConnected();
    } else this.open(group, bodiless);
    return true;
  }

  /** A new connection to the current backend. */
  private open(group: string, bodiless: boolean): void {
    const backend = this.backend!;
    const tls = this.shared.upstreamTls.get(group);
    const sendProxy = this.shared.options.upstreams.get(group)?.sendProxy ?? null;
    const preamble = sendProxy !== null ? proxyHeaderFor(this.owner.client, sendProxy) : null;
    const a = backend.address;
    if (tls === undefined && a.kind === 'tcp' && this.dialNative(a.host, a.port, preamble, bodiless)) return;
    const target = a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
    const up: LegSocket =
      tls !== undefined ? tls.connect(target, backend.label, preamble) : net.connect({ ...target, allowHalfOpen: true, noDelay: true });
    if (tls === undefined && preamble !== null) up.write(preamble); // queued until connected, ahead of the head
    this.reused = false;
    listen(up);
    this.hook(up);
    this.phase = Phase.Connecting;
    up.on(tls !== undefined ? 'secureConnect' : 'connect', onConnect);
  }

  /**
   * The addon connects to a plain TCP backend and writes the head; no JS socket at all. For an
   * upgrade whose client the engine can take, and for a plain request that sends nothing after its
   * head (Connection: close, not pooled): its response is read from the dial. Only with a relay
   * that has a dialer (`--relay js` has none: every upstream is a JS socket).
   */
  private dialNative(host: string, port: number, preamble: Buffer | null, bodiless: boolean): boolean {
    const dialer = this.shared.relay.dialer;
    if (dialer == null || this.held.length > 0) return false;
    if (this.kind === LegKind.Upgrade ? fdOf(this.owner.client) < 0 : this.kind !== LegKind.Close || !bodiless) return false;
    const out = preamble === null ? this.head! : Buffer.concat([preamble, this.head!]);
    const d = dialer.dial(host, port, out, this);
    if (d === null) return false;
    this.dial = d;
    this.reused = false;
    this.gotBytes = false;
    this.spent = false;
    this.phase = Phase.Connecting;
    return true;
  }

  /** @internal */
  dialConnected(): void {
    this.phase = Phase.Waiting;
    this.head = null; // the addon writes it
    this.owner.legConnected();
  }

  /** @internal */
  dialData(_u: NativeUpstream, chunk: Buffer): void {
    this.socketData(chunk);
  }

  /** @internal */
  dialEnded(): void {
    this.socketEnded();
  }

  /** @internal */
  dialFailed(_u: NativeUpstream, code: string): void {
    this.dial = null; // closed by the addon
    this.socketFailed(code);
  }

  /** Make `up` (whose listeners are on) the current socket. */
  private hook(up: LegSocket): void {
    up.leg = this;
    this.socket = up;
    this.gotBytes = false;
    this.spent = false;
  }

  /** Request body bytes, in order. False: the client should pause (backpressure, or too much held). */
  send(b: Buffer): boolean {
    if (this.phase >= Phase.Waiting && this.socket !== null) {
      this.timer.refresh();
      return this.socket.write(b);
    }
    this.held.push(b);
    this.heldBytes += b.length;
    return this.heldBytes <= this.maxHeld;
  }

  pause(): void {
    this.socket?.pause();
    this.dial?.pause();
  }

  resume(): void {
    this.socket?.resume();
    this.dial?.resume();
  }

  /**
   * The response is complete and the backend was asked to close (Connection:
   * close). Let it close first: the side that closes first keeps TIME_WAIT, and
   * a proxy that closes first runs out of ephemeral ports at a few thousand
   * requests/s. The wait is bounded (retire.ts). The socket is unhooked first:
   * nothing it does later counts.
   */
  retire(reusable: boolean): void {
    const pool = this.pool;
    const backend = this.backend;
    const keep = reusable && !this.spent && pool !== null && this.phase === Phase.Body;
    const d = this.dial;
    if (d !== null) {
      // Never pooled (a dial is a Connection: close exchange's): it waits for the backend's FIN too.
      this.release();
      d.sink = retiredDial;
      this.retired.add(d);
      return;
    }
    const up = this.release();
    if (up === null) return;
    if (keep && pool.put(backend!, up)) return;
    if (keep || pool !== null) up.destroy(); // asked to stay open: the backend will not close it
    else this.retired.add(up);
  }

  /**
   * Close the backend connection now. `reset`: with an RST when the backend may
   * hold part of a request it must not take for a whole one. `keepBody`: the
   * held body bytes stay for the next try.
   */
  close(reset: boolean, keepBody = false): void {
    const sent = this.phase >= Phase.Waiting;
    this.dial?.destroy(reset && sent);
    const up = this.release();
    if (!keepBody) {
      this.held = [];
      this.heldBytes = 0;
    }
    if (up === null) return;
    if (reset && sent) resetOrDestroy(up);
    else up.destroy();
  }

  /**
   * Hand the socket over (a tunnel); the leg keeps nothing of it, its listeners included. A
   * dialled connection is taken from its poll: what the backend sends next stays for the relay.
   */
  detach(): Socket | NativeUpstream {
    const d = this.dial;
    if (d !== null) {
      this.release();
      d.fd();
      return d;
    }
    const up = this.release()!;
    up.removeListener('connect', onConnect);
    up.removeListener('secureConnect', onConnect);
    up.removeListener('data', onData);
    up.removeListener('end', onEnd);
    up.removeListener('error', onError);
    up.removeListener('drain', onDrain);
    up.removeListener('close', onClose);
    return up;
  }

  /** Unhook the current socket: its listeners stay, inert until a pool or the retired set owns it. */
  private release(): LegSocket | null {
    if (this.parser !== null) {
      this.parsers.release(this.parser);
      this.parser = null;
    }
    this.phase = Phase.Idle;
    this.dial = null;
    this.head = null;
    this.pool = null;
    this.sentHead = null;
    this.headOut = null;
    const up = this.socket;
    if (up === null) return null;
    this.socket = null;
    up.leg = null;
    return up;
  }

  // ---------------------------------------------------------------- socket events (current socket only)

  /** @internal */
  socketConnected(): void {
    const up = this.socket!;
    this.phase = Phase.Waiting;
    up.write(this.head!);
    if (this.reused) this.sentHead = this.head;
    this.head = null;
    for (const b of this.held) up.write(b);
    this.held = [];
    this.heldBytes = 0;
    this.owner.legConnected();
  }

  /**
   * The response head for the client (from legHead, when it answers HeadVerdict.Body), as a
   * latin1 string: it goes out in one write with the body bytes that follow it in the chunk.
   */
  respond(head: string): void {
    this.headOut = head;
  }

  /** @internal */
  socketData(chunk: Buffer): void {
    if (this.parser === null) return;
    this.gotBytes = true;
    this.timer.refresh();
    this.parse(chunk);
  }

  /** Body bytes `chunk[from..to)` to the client, behind the head when it is still to go. */
  private toClient(chunk: Buffer, from: number, to: number): void {
    const client = this.owner.client;
    const head = this.headOut;
    let ok: boolean;
    if (head === null) ok = client.write(chunk.subarray(from, to));
    else {
      this.headOut = null;
      if (to - from <= JOIN_MAX) {
        // One write, one buffer: the head and a small body (a copy costs less than a second write).
        const out = Buffer.allocUnsafe(head.length + to - from);
        out.write(head, 0, 'latin1');
        chunk.copy(out, head.length, from, to);
        ok = client.write(out);
      } else {
        client.cork();
        client.write(head, 'latin1');
        ok = client.write(chunk.subarray(from, to));
        client.uncork();
      }
    }
    if (!ok) this.pause(); // the client's drain resumes it
  }

  /** The head alone: no body byte follows it in this chunk. */
  private flushHead(): void {
    const head = this.headOut;
    if (head === null) return;
    this.headOut = null;
    this.owner.client.write(head, 'latin1');
  }

  private parse(chunk: Buffer): void {
    const p = this.parser!;
    let pos = 0;
    // After a head llhttp runs once more with no bytes left: a bodiless message completes then.
    let again = false;
    while (pos < chunk.length || again) {
      again = false;
      const inHead = this.phase !== Phase.Body;
      const ev = p.execute(chunk, pos);
      if (ev === Ev.Error) {
        if (inHead) this.owner.legFailed('WSPLICE_UPSTREAM_PROTOCOL', `malformed response: ${p.reason}`);
        else {
          this.flushHead();
          this.owner.legFailed('WSPLICE_UPSTREAM_ABORTED', `malformed response body: ${p.reason}`);
        }
        return;
      }
      if (inHead) {
        if (ev === Ev.More) return;
        pos = p.offset;
        if (ev === Ev.End) continue; // the end of an interim (1xx) response
        const res = readResponseHead(p);
        const bad = this.checkHead(res);
        if (bad !== null) {
          this.owner.legFailed('WSPLICE_UPSTREAM_PROTOCOL', bad);
          return;
        }
        if (this.pool !== null && res.status >= 200 && !responseKeepsAlive(res)) this.spent = true;
        const verdict = this.owner.legHead(res, p, chunk, pos);
        if (verdict === HeadVerdict.Stop) return;
        if (verdict === HeadVerdict.Body) this.phase = Phase.Body;
        again = true;
        continue;
      }
      const end = p.offset;
      if (end > pos) this.toClient(chunk, pos, end);
      else this.flushHead();
      pos = end;
      if (ev === Ev.End) {
        if (pos < chunk.length) this.spent = true;
        this.owner.legDone(false);
        return;
      }
    }
  }

  /** What makes a response head unusable whatever the request (null: nothing). */
  private checkHead(res: ResponseHead): string | null {
    if (res.status === 101 && !this.upgrade) return '101 to a request that asked for no upgrade';
    if (res.versionMajor !== 1) return `HTTP/${res.versionMajor}.${res.versionMinor} response`;
    return null;
  }

  /** @internal */
  socketEnded(): void {
    if (this.raced()) return;
    if (this.phase === Phase.Body && this.parser !== null) {
      // A close-delimited body ends here.
      if (this.parser.finish()) this.owner.legDone(true);
      else this.owner.legFailed('WSPLICE_UPSTREAM_ABORTED', 'response cut short');
    } else if (this.phase === Phase.Waiting) {
      this.owner.legFailed('WSPLICE_UPSTREAM_CLOSED', 'upstream closed before a complete response head');
    }
  }

  /** @internal */
  socketFailed(why: string): void {
    if (this.raced()) return;
    if (this.phase === Phase.Connecting) this.owner.legFailed('WSPLICE_UPSTREAM_CONNECT', `connect failed: ${why}`);
    else if (this.phase === Phase.Waiting) this.owner.legFailed('WSPLICE_UPSTREAM_CLOSED', `upstream error: ${why}`);
    else if (this.phase === Phase.Body) this.owner.legFailed('WSPLICE_UPSTREAM_ABORTED', `upstream error: ${why}`);
  }

  /** @internal */
  socketClosed(): void {
    if (this.raced()) return;
    // After a clean 'end' the exchange was already over and the socket released.
    if (this.phase === Phase.Body) this.owner.legFailed('WSPLICE_UPSTREAM_ABORTED', 'upstream closed mid-response');
    else if (this.phase === Phase.Waiting) this.owner.legFailed('WSPLICE_UPSTREAM_CLOSED', 'upstream closed before a complete response head');
    else if (this.phase === Phase.Connecting) this.owner.legFailed('WSPLICE_UPSTREAM_CLOSED', 'upstream closed');
  }

  /**
   * The keep-alive race: a reused connection the backend closed just as the
   * request went out, before any byte of a response. Sent again once, on a new
   * connection to the same backend, when the owner said that is safe.
   */
  private raced(): boolean {
    if (!this.reused || this.gotBytes || this.phase !== Phase.Waiting || this.kind !== LegKind.PooledReplayable) return false;
    const up = this.socket!;
    this.socket = null;
    up.leg = null;
    up.destroy();
    this.parser!.reset();
    this.head = this.sentHead;
    this.kind = LegKind.Pooled; // once
    this.pool!.races++;
    this.open(this.group, false);
    return true;
  }

  /** @internal */
  socketDrained(): void {
    this.owner.legDrain();
  }
}

/** The listeners of an upstream socket, for its whole life. */
function listen(up: LegSocket): void {
  up.on('data', onData);
  up.on('end', onEnd);
  up.on('error', onError);
  up.on('drain', onDrain);
  up.on('close', onClose);
}

// One set of listeners for every upstream socket: no closure per connection.
// The socket's owner gets the event: its leg while it is the leg's current
// one, its pool while idle, the retired set while retired; else nobody.
function onConnect(this: LegSocket): void {
  // Plain TCP: reads go straight into the shared read buffer from now on ('data' stays as the
  // fallback); a TLS socket decrypts through its stream and keeps 'data'.
  if (!(this instanceof TLSSocket)) readDirect(this, (nread, buf) => onData.call(this, ownCopy(nread, buf)));
  const leg = this.leg;
  if (leg != null && leg.socket === this) leg.socketConnected();
}
function onData(this: LegSocket, chunk: Buffer): void {
  const leg = this.leg;
  if (leg != null && leg.socket === this) leg.socketData(chunk);
  else if (this.idleIn != null) this.idleIn.forget(this); // a byte nobody asked for: the stream is out of step
}
function onEnd(this: LegSocket): void {
  const leg = this.leg;
  if (leg != null && leg.socket === this) leg.socketEnded();
  else if (this.idleIn != null) this.idleIn.forget(this);
  else if (this.retiredBy != null) retiredEnded(this);
}
function onError(this: LegSocket, err: Error): void {
  const leg = this.leg;
  if (leg != null && leg.socket === this) leg.socketFailed((err as Error & { code?: string }).code ?? err.message);
  // Idle or retired: 'close' follows.
}
function onDrain(this: LegSocket): void {
  const leg = this.leg;
  if (leg != null && leg.socket === this) leg.socketDrained();
}
function onClose(this: LegSocket): void {
  const leg = this.leg;
  if (leg != null && leg.socket === this) leg.socketClosed();
  else if (this.idleIn != null) this.idleIn.forget(this);
  else if (this.retiredBy != null) this.retiredBy.forget(this);
}
