/**
 * The native relay (`kind: 'splice'`): once JS holds no byte of a tunnel, the
 * engine (src/native/) dup()s both socket fds, JS destroys its socket objects
 * (the dups keep the connections open, so nothing is sent), and a native epoll
 * thread moves the bytes with splice(2) / recv-send. The event loop then spends
 * nothing per byte; it hears back once, when the tunnel ends.
 *
 * `loadNativeRelay()` returns `{ relay: null, reason }` when the addon is not
 * built, cannot load, or this is not Linux: the caller then uses the JS relay.
 */
import type { Socket } from 'node:net';
import { loadBinding, type Binding, type NativeEndSink, type NativeEngineStats, type NativeMode } from './addon.js';
import type { Dialer, NativeUpstream } from './dial.js';
import { emptyInJs, fdOf, stopReading } from './handover.js';
import { jsRelay } from './js.js';
import { RelayTunnel, type Carrier } from './tunnel.js';
import type { Relay, Tunnel, TunnelCloseReason, TunnelStats } from './types.js';

export type { NativeEngineStats, NativeMode } from './addon.js';

export interface NativeRelayOptions {
  /** Default 'adaptive'. */
  mode?: NativeMode;
  /**
   * Pipe capacity per direction (F_SETPIPE_SZ), bytes; at least 64 KiB. Default 1 MiB.
   * Process-wide. A direction that cannot get a pipe of 64 KiB (fds exhausted, or an
   * unprivileged user past fs.pipe-user-pages-soft) copies instead.
   */
  pipeSize?: number;
  /**
   * Used for tunnels the addon cannot take (a TLS socket, no fd) or when the
   * hand-over fails (e.g. out of fds). Default: the JS relay. `null`: such a
   * tunnel is closed with reason 'shutdown'.
   */
  fallback?: Relay | null;
}

export interface NativeRelay extends Relay {
  readonly kind: 'splice';
  readonly mode: NativeMode;
  /** Tunnels started on this relay and not ended yet (hand-over included). */
  readonly active: number;
  engineStats(): NativeEngineStats;
  /**
   * @internal Move a live tunnel's sockets (open, paused, nothing unread in JS
   * but `toUpstream`/`toClient`) onto the engine. promote.ts uses it.
   */
  carry(tunnel: RelayTunnel, client: Socket, upstream: Socket, toUpstream: Buffer | null, toClient: Buffer | null): void;
}

export interface NativeRelayLoad {
  relay: NativeRelay | null;
  /** One line: what was loaded, or why not. */
  reason: string;
}

const MODES: ReadonlySet<string> = new Set<NativeMode>(['splice', 'copy', 'adaptive']);

/** Loads the addon (once per process) and returns a splice relay, or null and why. */
export function loadNativeRelay(options: NativeRelayOptions = {}): NativeRelayLoad {
  const { binding, reason } = loadBinding();
  if (binding === null) return { relay: null, reason };
  const mode = options.mode ?? 'adaptive';
  if (!MODES.has(mode)) return { relay: null, reason: `unknown native relay mode '${String(mode)}'` };
  if (options.pipeSize !== undefined) binding.configure(options.pipeSize);
  const relay = new SpliceRelay(binding, mode, options.fallback === undefined ? jsRelay : options.fallback);
  return { relay, reason: `native splice relay loaded (mode ${mode})` };
}

function concat(a: Buffer | null, b: Buffer | null): Buffer | null {
  if (a === null || a.length === 0) return b !== null && b.length > 0 ? b : null;
  if (b === null || b.length === 0) return a;
  return Buffer.concat([a, b]);
}

class SpliceRelay implements NativeRelay {
  readonly kind = 'splice' as const;
  active = 0;
  /** Upgrade legs dial through it: their upstream is never a JS socket (null: an older addon). */
  readonly dialer: Dialer | null;

  constructor(
    readonly binding: Binding,
    readonly mode: NativeMode,
    readonly fallback: Relay | null,
  ) {
    this.dialer = binding.dialer;
  }

  engineStats(): NativeEngineStats {
    return this.binding.stats();
  }

  start(
    client: Socket,
    upstream: Socket,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    options: Parameters<Relay['start']>[4],
    onEnd: Parameters<Relay['start']>[5],
  ): Tunnel {
    if (this.fallback !== null && (fdOf(client) < 0 || fdOf(upstream) < 0) && !client.destroyed && !upstream.destroyed) {
      return this.fallback.start(client, upstream, toUpstream, toClient, options, onEnd);
    }
    const tunnel = new RelayTunnel(options, onEnd);
    this.carry(tunnel, client, upstream, toUpstream, toClient);
    return tunnel.opened();
  }

  /** `start` for an upstream the addon dialled: its fd goes to the engine with no JS socket made. */
  startNative(
    client: Socket,
    upstream: NativeUpstream,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    options: Parameters<Relay['start']>[4],
    onEnd: Parameters<Relay['start']>[5],
  ): Tunnel {
    if (fdOf(client) < 0 && !client.destroyed) return this.start(client, upstream.toSocket(), toUpstream, toClient, options, onEnd);
    const tunnel = new RelayTunnel(options, onEnd);
    const carrier = new NativeCarrier(this, tunnel, client, null, upstream);
    tunnel.carry(carrier);
    carrier.begin(toUpstream, toClient);
    return tunnel.opened();
  }

  carry(tunnel: RelayTunnel, client: Socket, upstream: Socket, toUpstream: Buffer | null, toClient: Buffer | null): void {
    const carrier = new NativeCarrier(this, tunnel, client, upstream);
    tunnel.carry(carrier);
    carrier.begin(toUpstream, toClient);
  }
}

const EMPTY = Buffer.alloc(0);

const HANDOVER = 0;
const NATIVE = 1;
const ELSEWHERE = 2; // the hand-over failed: the fallback carries the tunnel
const DONE = 3;
const OUT = 4;
/** MovedTunnel (src/native/engine.h): its size and where each direction's byte count sits. */
export const RECORD_BYTES = 120;
const UP_BYTES_AT = 40;
const DOWN_BYTES_AT = 80; // detached from the engine, on its way to another process (src/handover/)

/** What travels with a moved tunnel besides the engine's record. */
export interface MovedMeta {
  /** Totals at the detach (bytes JS carried before the engine included). */
  bytesUp: number;
  bytesDown: number;
  idleTimeoutMs: number;
  websocket: boolean;
}

/** A tunnel adopted from another process, staged: `start` lets it run, `discard` gives it back. */
export interface AdoptedTunnel {
  readonly tunnel: Tunnel;
  start(): void;
  discard(): void;
}

/** The native carrier of `t`, or null when another relay carries it (or none). */
export function nativeCarrierOf(t: Tunnel): NativeCarrier | null {
  const c = t instanceof RelayTunnel ? t.current : null;
  return c instanceof NativeCarrier ? c : null;
}

/**
 * Detach `carriers` from the engine as one batch (src/handover/): those it still relayed come back
 * in order with their record index; the others (ending, going away) are left alone.
 */
export function detachCarriers(carriers: readonly NativeCarrier[]): { records: Buffer; fds: Int32Array; moved: NativeCarrier[] } {
  if (carriers.length === 0) return { records: Buffer.alloc(0), fds: new Int32Array(0), moved: [] };
  const binding = carriers[0]!.binding;
  const byId = new Map<number, NativeCarrier>();
  for (const c of carriers) if (c.movable) byId.set(c.nativeId, c);
  const out = binding.detach([...byId.keys()]);
  const moved = out.ids.map((id) => byId.get(id)!);
  for (const c of moved) c.handedOut();
  return { records: out.records, fds: out.fds, moved };
}

/** A moved tunnel into `relay`'s engine (staged). Throws when the engine refuses it (the fds stay the caller's). */
export function adoptMoved(relay: NativeRelay, records: Buffer, index: number, fds: Int32Array, meta: MovedMeta, onEnd: (s: TunnelStats) => void): AdoptedTunnel {
  const r = relay as SpliceRelay;
  const tunnel = new RelayTunnel({ idleTimeoutMs: meta.idleTimeoutMs, websocket: meta.websocket }, onEnd);
  const carrier = new NativeCarrier(r, tunnel, null, null);
  carrier.adopted(records, index, fds, meta);
  tunnel.carry(carrier);
  return {
    tunnel,
    start: () => {
      carrier.run();
      tunnel.opened();
    },
    discard: () => carrier.giveBack(),
  };
}

/**
 * A tunnel on the engine. While JS still flushes its last bytes it watches the
 * sockets; once handed over it keeps no socket, only the counters the engine
 * writes and the id to close it by.
 */
export class NativeCarrier implements Carrier, NativeEndSink {
  readonly kind = 'splice' as const;
  private phase = HANDOVER;
  private jsUp = 0;
  private jsDown = 0;
  // The engine stores [bytesUp, bytesDown] here. An explicit ArrayBuffer is
  // never on the V8 heap, so its address is stable while we hold it (until the
  // end is reported, after which the engine no longer writes).
  private readonly counters = new Float64Array(new ArrayBuffer(16));
  private id = 0;
  private closing = false;
  private pending = 2;
  private client: Socket | null;
  private upstream: Socket | null;
  /** The upstream when the addon dialled it: an fd, no JS socket (upstream is null then). */
  private dialled: NativeUpstream | null;

  constructor(
    private readonly relay: SpliceRelay,
    private readonly tunnel: RelayTunnel,
    client: Socket | null,
    upstream: Socket | null,
    dialled: NativeUpstream | null = null,
  ) {
    this.client = client;
    this.upstream = upstream;
    this.dialled = dialled;
    this.onClientGone = this.onClientGone.bind(this);
    this.onUpstreamGone = this.onUpstreamGone.bind(this);
    relay.active++;
  }

  get keepsIdle(): boolean {
    return this.phase === NATIVE || this.phase === OUT;
  }

  get binding(): Binding {
    return this.relay.binding;
  }

  get nativeId(): number {
    return this.id;
  }

  /** On the engine and not ending: the hand-over may take it. */
  get movable(): boolean {
    return this.phase === NATIVE && !this.closing;
  }

  /** What travels with the record. */
  get meta(): MovedMeta {
    return { bytesUp: this.bytesUp, bytesDown: this.bytesDown, idleTimeoutMs: this.tunnel.idleTimeoutMs, websocket: this.tunnel.websocket };
  }

  /** Detached (detachCarriers): the counters are final; nothing runs it until moved() or reinstate(). */
  handedOut(): void {
    this.phase = OUT;
  }

  /** The other process has it: this one's tunnel ends, reason 'moved' (the caller closes the fds). */
  moved(): void {
    if (this.phase !== OUT) return;
    this.phase = DONE;
    this.relay.active--;
    this.tunnel.note('moved');
    this.tunnel.finish('moved');
  }

  /** It stays: back onto this engine from its record (the fds are the engine's again). */
  reinstate(records: Buffer, index: number, fds: Int32Array): void {
    if (this.phase !== OUT) return;
    this.id = this.relay.binding.adopt(records, index, fds, this.counters, this);
    this.run();
  }

  /** Staged from another process (adoptMoved); counters continue from the record's. */
  adopted(records: Buffer, index: number, fds: Int32Array, meta: MovedMeta): void {
    this.id = this.relay.binding.adopt(records, index, fds, this.counters, this);
    this.phase = OUT;
    // The engine counts on from the record's byte counts; the rest of the totals is "before".
    const at = index * RECORD_BYTES;
    const up = Number(records.readBigUInt64LE(at + UP_BYTES_AT));
    const down = Number(records.readBigUInt64LE(at + DOWN_BYTES_AT));
    this.counters[0] = up;
    this.counters[1] = down;
    this.jsUp = meta.bytesUp - up;
    this.jsDown = meta.bytesDown - down;
  }

  run(): void {
    if (!this.relay.binding.start(this.id)) return;
    this.phase = NATIVE;
  }

  /** Could not be put back after a failed hand-over: it ends (its fds were closed). */
  lost(): void {
    if (this.phase !== OUT) return;
    this.phase = DONE;
    this.relay.active--;
    this.tunnel.note('shutdown');
    this.tunnel.finish('shutdown');
  }

  /** A staged adoption refused: its fds are closed here (the sender still holds its own). */
  giveBack(): void {
    if (this.phase !== OUT) return;
    this.phase = DONE;
    this.relay.active--;
    this.relay.binding.discard(this.id);
  }

  get bytesUp(): number {
    return this.jsUp + this.counters[0]!;
  }

  get bytesDown(): number {
    return this.jsDown + this.counters[1]!;
  }

  /** Flush every byte JS holds, then hand the fds to the engine. */
  begin(toUpstream: Buffer | null, toClient: Buffer | null): void {
    const client = this.client!;
    if (client.destroyed || fdOf(client) < 0) return this.abort('client-error');
    // Early data first, then whatever JS read past the heads, in order.
    let up = concat(toUpstream, stopReading(client));
    if (this.dialled !== null && up !== null) up = this.writeDialled(up);
    if (this.phase !== HANDOVER) return; // the write failed: ended
    const upstream = this.upstream;
    if (upstream !== null && (upstream.destroyed || fdOf(upstream) < 0)) return this.abort('upstream-error');
    client.on('error', this.onClientGone);
    client.on('close', this.onClientGone);
    if (upstream !== null) {
      upstream.on('error', this.onUpstreamGone);
      upstream.on('close', this.onUpstreamGone);
    }
    const down = concat(toClient, upstream !== null ? stopReading(upstream) : null);
    this.jsUp += up?.length ?? 0; // after what writeDialled wrote
    this.jsDown = down?.length ?? 0;
    // The callback of a write runs after every earlier write on that socket
    // completed (the 101 head included); an empty write just waits for those.
    const flushed = (err?: Error | null): void => {
      if (err) return; // the 'error' listener ends the tunnel
      if (--this.pending === 0) this.handOver();
    };
    if (upstream !== null && (up !== null || upstream.writableLength > 0)) upstream.write(up ?? EMPTY, flushed);
    else this.pending--;
    if (down !== null || client.writableLength > 0) client.write(down ?? EMPTY, flushed);
    else this.pending--;
    if (this.pending === 0) this.handOver();
  }

  /**
   * Client bytes for a dialled upstream, written now; what the kernel does not take at once
   * goes through a JS socket made on the fd (returned: still to write), as any upstream's would.
   */
  private writeDialled(up: Buffer): Buffer | null {
    const d = this.dialled!;
    const n = d.write(up);
    if (n < 0) {
      this.abort('upstream-error');
      return null;
    }
    this.jsUp = n;
    if (n === up.length) return null;
    this.dialled = null;
    this.upstream = d.toSocket();
    return up.subarray(n);
  }

  private handOver(): void {
    const { client, upstream, dialled } = this;
    if (this.phase !== HANDOVER || client === null || (upstream === null && dialled === null)) return;
    if (!emptyInJs(client) || (upstream !== null && !emptyInJs(upstream))) {
      // Cannot happen with reading stopped and our writes done; be safe anyway.
      setImmediate(() => this.handOver());
      return;
    }
    this.detach();
    // A dial's fd goes to the engine as it is; a socket's is dup'd there and ours closed below.
    const owned = upstream === null && this.relay.binding.takesDialledFd;
    try {
      const { idleTimeoutMs, websocket } = this.tunnel;
      const upFd = upstream !== null ? fdOf(upstream) : dialled!.fd();
      this.id = this.relay.binding.open(fdOf(client), upFd, idleTimeoutMs, this.relay.mode, this.counters, this, websocket, owned);
    } catch {
      this.dialled = null;
      this.delegate(client, upstream ?? dialled!.toSocket());
      return;
    }
    this.phase = NATIVE;
    // The engine holds its own fd for each connection: closing ours sends
    // nothing (no FIN, no RST). The JS objects and their buffers go.
    client.destroy();
    upstream?.destroy();
    dialled?.handedOver(owned);
    this.client = this.upstream = null;
    this.dialled = null;
  }

  /** The engine refused the fds (e.g. out of fds): the fallback carries the intact sockets. */
  private delegate(client: Socket, upstream: Socket): void {
    const fallback = this.relay.fallback;
    this.relay.active--;
    if (fallback === null) {
      this.phase = DONE;
      client.destroy();
      upstream.destroy();
      this.tunnel.note('shutdown');
      this.tunnel.finish();
      return;
    }
    this.phase = ELSEWHERE;
    client.resume();
    upstream.resume();
    const tunnel = this.tunnel;
    const inner = fallback.start(client, upstream, null, null, { idleTimeoutMs: tunnel.idleTimeoutMs, websocket: tunnel.websocket }, (s) => tunnel.finish(s.reason));
    tunnel.carry(new ForeignCarrier(inner));
  }

  stop(reason: TunnelCloseReason): void {
    if (this.phase === HANDOVER) this.abort(reason);
    else if (this.phase === NATIVE && !this.closing) {
      this.closing = true;
      this.relay.binding.close(this.id, reason);
    }
  }

  /** On the engine, a WebSocket tunnel: Close 1001 both ways at frame boundaries (the engine follows them). */
  goAway(): boolean {
    if (this.phase !== NATIVE || this.closing || !this.tunnel.websocket) return false;
    if (!this.relay.binding.goAway(this.id)) return false;
    this.closing = true;
    return true;
  }

  nativeEnded(up: number, down: number, reason: TunnelCloseReason): void {
    if (this.phase !== NATIVE) return;
    this.phase = DONE;
    this.relay.active--;
    this.counters[0] = up;
    this.counters[1] = down;
    this.tunnel.finish(reason);
  }

  private onClientGone(): void {
    this.abort('client-error');
  }

  private onUpstreamGone(): void {
    this.abort('upstream-error');
  }

  private abort(reason: TunnelCloseReason): void {
    if (this.phase !== HANDOVER) return;
    this.phase = DONE;
    this.relay.active--;
    this.detach();
    this.client?.destroy();
    this.upstream?.destroy();
    this.dialled?.destroy();
    this.client = this.upstream = null;
    this.dialled = null;
    this.tunnel.note(reason);
    this.tunnel.finish();
  }

  private detach(): void {
    for (const [s, fn] of [
      [this.client, this.onClientGone],
      [this.upstream, this.onUpstreamGone],
    ] as const) {
      if (s === null) continue;
      s.off('error', fn);
      s.off('close', fn);
      // Destroying a socket can still emit 'error' (e.g. EPIPE queued): never unhandled.
      s.on('error', noop);
    }
  }
}

/** A tunnel of another relay (the fallback), carried under this tunnel's lifecycle. */
class ForeignCarrier implements Carrier {
  readonly keepsIdle = true; // the inner tunnel runs its own

  constructor(private readonly inner: Tunnel) {}

  get kind(): Tunnel['relay'] {
    return this.inner.relay;
  }

  get bytesUp(): number {
    return this.inner.bytesUp;
  }

  get bytesDown(): number {
    return this.inner.bytesDown;
  }

  stop(reason: TunnelCloseReason): void {
    this.inner.close(reason);
  }
}

function noop(): void {}
