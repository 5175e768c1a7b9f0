/**
 * One tunnel's lifecycle, whatever carries its bytes. A RelayTunnel ends once,
 * decides which close reason wins, sums the bytes across relays, and runs the
 * idle timeout for carriers that do not keep it themselves. A Carrier (the JS
 * loop in js.ts, the native engine in native.ts) moves the bytes and reports here.
 */
import type { RelayKind, RelayOptions, Tunnel, TunnelCloseReason, TunnelStats } from './types.js';

/** One way of moving a tunnel's bytes. A tunnel has one at a time; 'auto' swaps it. */
export interface Carrier {
  readonly kind: RelayKind;
  /** Bytes this carrier has written to the upstream / to the client. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** The carrier enforces the idle timeout itself (the native engine: JS never sees its bytes). */
  readonly keepsIdle: boolean;
  /** End now: release both sockets, then call `tunnel.finish()`. */
  stop(reason: TunnelCloseReason): void;
  /** End with Close frames at frame boundaries (see Tunnel.goAway); false when this carrier cannot. */
  goAway?(): boolean;
}

/** The idle check runs this many times per idle period: closes within [T, 1.25 T). */
const IDLE_SLICES = 4;

const STARTING = 0;
const OPEN = 1;
const ENDED = 2;

export class RelayTunnel implements Tunnel {
  private carrier: Carrier | null = null;
  private baseUp = 0;
  private baseDown = 0;
  private why: TunnelCloseReason | null = null;
  private state = STARTING;
  private readonly started = performance.now();
  private idle: NodeJS.Timeout | null = null;
  private lastTotal = -1;
  private quiet = 0;

  constructor(
    private readonly options: RelayOptions,
    private readonly onEnd: (stats: TunnelStats) => void,
  ) {}

  get relay(): RelayKind {
    return this.carrier?.kind ?? 'js';
  }

  get bytesUp(): number {
    return this.baseUp + (this.carrier?.bytesUp ?? 0);
  }

  get bytesDown(): number {
    return this.baseDown + (this.carrier?.bytesDown ?? 0);
  }

  get ended(): boolean {
    return this.state === ENDED;
  }

  get idleTimeoutMs(): number {
    return this.options.idleTimeoutMs;
  }

  /** What carries the bytes now (src/handover/ looks for a native carrier). */
  get current(): Carrier | null {
    return this.carrier;
  }

  get websocket(): boolean {
    return this.options.websocket === true;
  }

  /** The carrier that moves the bytes from now on: the first one, or the next after a move. */
  carry(next: Carrier): void {
    const prev = this.carrier;
    if (prev !== null) {
      this.baseUp += prev.bytesUp;
      this.baseDown += prev.bytesDown;
    }
    this.carrier = next;
    if (prev !== null && prev.kind !== next.kind && this.state === OPEN && this.options.onMove !== undefined) {
      this.options.onMove({ from: prev.kind, to: next.kind, bytesUp: this.baseUp, bytesDown: this.baseDown });
    }
    this.armIdle();
  }

  /** `start()` returns this: from now on the end is reported as it happens. */
  opened(): this {
    if (this.state === STARTING) this.state = OPEN;
    return this;
  }

  /** A carrier saw how a side ended. The first reason wins, unless the proxy closes the tunnel. */
  note(reason: TunnelCloseReason): void {
    if (this.why === null) this.why = reason;
  }

  close(reason: TunnelCloseReason): void {
    if (this.state === ENDED) return;
    // The proxy's own close (shutdown, idle) wins over a half-close seen earlier.
    if (this.why === null || reason === 'shutdown' || reason === 'idle-timeout') this.why = reason;
    if (this.carrier !== null) this.carrier.stop(reason);
    else this.finish();
  }

  goAway(): void {
    if (this.state === ENDED) return;
    this.why = 'shutdown';
    if (this.carrier?.goAway?.() !== true) this.close('shutdown');
  }

  /**
   * The carrier released both sockets: report, once. `reason` is the carrier's
   * verdict when it knows better than socket events (the native engine).
   */
  finish(reason?: TunnelCloseReason): void {
    if (this.state === ENDED) return;
    const starting = this.state === STARTING;
    this.state = ENDED;
    if (this.idle !== null) {
      clearTimeout(this.idle);
      this.idle = null;
    }
    const stats: TunnelStats = {
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      durationMs: performance.now() - this.started,
      reason: this.why ?? reason ?? 'client-closed',
      relay: this.relay,
    };
    // The caller of start() holds the Tunnel before it hears of the end.
    if (starting) process.nextTick(this.onEnd, stats);
    else this.onEnd(stats);
  }

  private armIdle(): void {
    const ms = this.options.idleTimeoutMs;
    if (ms <= 0 || this.state === ENDED || this.carrier === null || this.carrier.keepsIdle) return;
    this.lastTotal = -1;
    this.quiet = 0;
    if (this.idle === null) {
      this.idle = setTimeout(this.onIdleCheck.bind(this), Math.max(1, Math.floor(ms / IDLE_SLICES)));
      this.idle.unref();
    }
  }

  private onIdleCheck(): void {
    if (this.state === ENDED || this.carrier === null || this.carrier.keepsIdle) {
      this.idle = null; // the carrier keeps it now: nothing of the check stays alive
      return;
    }
    const total = this.bytesUp + this.bytesDown;
    if (total !== this.lastTotal) {
      this.lastTotal = total;
      this.quiet = 0;
    } else if (++this.quiet >= IDLE_SLICES) {
      this.idle = null;
      this.close('idle-timeout');
      return;
    }
    this.idle!.refresh();
  }
}
