/**
 * The JavaScript relay: one loop per direction over Node sockets, with
 * backpressure (a `false` from write() pauses the reader until 'drain'),
 * half-close (a FIN is relayed as end(), not as a close), and RST relayed as
 * RST. Handlers are bound once per tunnel: nothing is allocated per chunk.
 */
import type { Socket } from 'node:net';
import { resetOrDestroy } from '../sockets.js';
import type { Relay, RelayOptions, Tunnel, TunnelCloseReason, TunnelStats } from './types.js';

/** The idle check runs this many times per idle period: closes within [T, 1.25 T). */
const IDLE_SLICES = 4;

/**
 * When to offer a JS tunnel to a faster relay (see promote.ts): once it has
 * moved `afterBytes`, or lived `afterMs`. Short tunnels never pay the hand-over.
 */
export interface PromoteWhen {
  afterBytes: number;
  afterMs: number;
  /** Called once, from a fresh turn of the event loop, never inside a socket callback. */
  offer(): void;
}

export class JsTunnel implements Tunnel {
  bytesUp = 0;
  bytesDown = 0;
  private readonly started = Date.now();
  private reason: TunnelCloseReason | null = null;
  private done = false;
  private closed = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastTotal = -1;
  private quiet = 0;
  /** Total bytes at which to offer promotion (0: never, or already offered). */
  private promoteAt = 0;
  private promoteTimer: NodeJS.Timeout | null = null;
  private readonly promote: PromoteWhen | null;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    options: RelayOptions,
    private readonly onEnd: (stats: TunnelStats) => void,
    promote: PromoteWhen | null = null,
  ) {
    this.promote = promote;
    this.onClientData = this.onClientData.bind(this);
    this.onUpstreamData = this.onUpstreamData.bind(this);
    this.onClientDrain = this.onClientDrain.bind(this);
    this.onUpstreamDrain = this.onUpstreamDrain.bind(this);
    this.onClientEnd = this.onClientEnd.bind(this);
    this.onUpstreamEnd = this.onUpstreamEnd.bind(this);
    this.onClientError = this.onClientError.bind(this);
    this.onUpstreamError = this.onUpstreamError.bind(this);
    this.onSocketClose = this.onSocketClose.bind(this);

    client.on('data', this.onClientData);
    upstream.on('data', this.onUpstreamData);
    client.on('drain', this.onClientDrain);
    upstream.on('drain', this.onUpstreamDrain);
    client.on('end', this.onClientEnd);
    upstream.on('end', this.onUpstreamEnd);
    client.on('error', this.onClientError);
    upstream.on('error', this.onUpstreamError);
    client.on('close', this.onSocketClose);
    upstream.on('close', this.onSocketClose);

    if (toClient !== null && toClient.length > 0) {
      this.bytesDown += toClient.length;
      if (!client.write(toClient)) upstream.pause();
    }
    if (toUpstream !== null && toUpstream.length > 0) {
      this.bytesUp += toUpstream.length;
      if (!upstream.write(toUpstream)) client.pause();
    }
    if (upstream.writableLength === 0) client.resume();
    if (client.writableLength === 0) upstream.resume();

    if (options.idleTimeoutMs > 0) {
      this.timer = setTimeout(this.onIdleCheck.bind(this), Math.max(1, Math.floor(options.idleTimeoutMs / IDLE_SLICES)));
      this.timer.unref();
    }
    if (promote !== null) {
      this.offerPromotion = this.offerPromotion.bind(this);
      this.promoteAt = promote.afterBytes;
      this.promoteTimer = setTimeout(this.offerPromotion, promote.afterMs);
      this.promoteTimer.unref();
    }
    // A socket may already be gone by the time the handshake finished.
    if (client.closed) this.onSocketClose();
    if (upstream.closed) this.onSocketClose();
  }

  private offerPromotion(): void {
    this.promoteAt = 0;
    if (this.promoteTimer !== null) {
      clearTimeout(this.promoteTimer);
      this.promoteTimer = null;
    }
    if (!this.done) setImmediate(this.promote!.offer);
  }

  /**
   * Hand both sockets back, still open, to move the tunnel to another relay.
   * Refused (null) once either side has ended, errored or closed: a FIN that
   * JS has already read could not be seen by the next relay.
   */
  release(): { bytesUp: number; bytesDown: number } | null {
    const c = this.client;
    const u = this.upstream;
    if (this.done || this.reason !== null || c.destroyed || u.destroyed) return null;
    if (c.readableEnded || u.readableEnded || c.writableEnded || u.writableEnded) return null;
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.promoteTimer !== null) clearTimeout(this.promoteTimer);
    c.removeListener('data', this.onClientData);
    u.removeListener('data', this.onUpstreamData);
    c.removeListener('drain', this.onClientDrain);
    u.removeListener('drain', this.onUpstreamDrain);
    c.removeListener('end', this.onClientEnd);
    u.removeListener('end', this.onUpstreamEnd);
    c.removeListener('close', this.onSocketClose);
    u.removeListener('close', this.onSocketClose);
    // Until the next relay owns them, an error must not go unheard (it would throw).
    c.removeListener('error', this.onClientError);
    u.removeListener('error', this.onUpstreamError);
    c.on('error', noop);
    u.on('error', noop);
    c.pause();
    u.pause();
    return { bytesUp: this.bytesUp, bytesDown: this.bytesDown };
  }

  private onClientData(chunk: Buffer): void {
    this.bytesUp += chunk.length;
    if (!this.upstream.write(chunk)) this.client.pause();
    if (this.promoteAt !== 0 && this.bytesUp + this.bytesDown >= this.promoteAt) this.offerPromotion();
  }

  private onUpstreamData(chunk: Buffer): void {
    this.bytesDown += chunk.length;
    if (!this.client.write(chunk)) this.upstream.pause();
    if (this.promoteAt !== 0 && this.bytesUp + this.bytesDown >= this.promoteAt) this.offerPromotion();
  }

  private onUpstreamDrain(): void {
    this.client.resume();
  }

  private onClientDrain(): void {
    this.upstream.resume();
  }

  private onClientEnd(): void {
    if (this.reason === null) this.reason = 'client-closed';
    this.upstream.end();
  }

  private onUpstreamEnd(): void {
    if (this.reason === null) this.reason = 'upstream-closed';
    this.client.end();
  }

  private onClientError(): void {
    if (this.reason === null) this.reason = 'client-error';
    // Relay the reset: the upstream learns the client is gone, not that it said goodbye.
    resetOrDestroy(this.upstream);
  }

  private onUpstreamError(): void {
    if (this.reason === null) this.reason = 'upstream-error';
    resetOrDestroy(this.client);
  }

  private onSocketClose(): void {
    if (++this.closed < 2) {
      // One side is fully closed. If the other has nothing left to say to it, end that too.
      const other = this.client.destroyed ? this.upstream : this.client;
      const gone = this.client.destroyed ? this.client : this.upstream;
      if (gone.readableEnded || gone.errored !== null) {
        if (!other.writableEnded) other.end();
      } else {
        other.destroy();
      }
      return;
    }
    this.finish();
  }

  private onIdleCheck(): void {
    const total = this.bytesUp + this.bytesDown;
    if (total !== this.lastTotal) {
      this.lastTotal = total;
      this.quiet = 0;
    } else if (++this.quiet >= IDLE_SLICES) {
      this.close('idle-timeout');
      return;
    }
    this.timer!.refresh();
  }

  close(reason: TunnelCloseReason): void {
    if (this.done) return;
    if (this.reason === null || reason === 'shutdown' || reason === 'idle-timeout') this.reason = reason;
    this.client.destroy();
    this.upstream.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.promoteTimer !== null) clearTimeout(this.promoteTimer);
    if (!this.client.destroyed) this.client.destroy();
    if (!this.upstream.destroyed) this.upstream.destroy();
    this.onEnd({
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      durationMs: Date.now() - this.started,
      reason: this.reason ?? 'client-closed',
      relay: 'js',
    });
  }
}

function noop(): void {}

export const jsRelay: Relay = {
  kind: 'js',
  start(client, upstream, toUpstream, toClient, options, onEnd) {
    return new JsTunnel(client, upstream, toUpstream, toClient, options, onEnd);
  },
};
