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

class JsTunnel implements Tunnel {
  bytesUp = 0;
  bytesDown = 0;
  private readonly started = Date.now();
  private reason: TunnelCloseReason | null = null;
  private done = false;
  private closed = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastTotal = -1;
  private quiet = 0;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    options: RelayOptions,
    private readonly onEnd: (stats: TunnelStats) => void,
  ) {
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
    // A socket may already be gone by the time the handshake finished.
    if (client.closed) this.onSocketClose();
    if (upstream.closed) this.onSocketClose();
  }

  private onClientData(chunk: Buffer): void {
    this.bytesUp += chunk.length;
    if (!this.upstream.write(chunk)) this.client.pause();
  }

  private onUpstreamData(chunk: Buffer): void {
    this.bytesDown += chunk.length;
    if (!this.client.write(chunk)) this.upstream.pause();
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
    if (!this.client.destroyed) this.client.destroy();
    if (!this.upstream.destroyed) this.upstream.destroy();
    this.onEnd({
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      durationMs: Date.now() - this.started,
      reason: this.reason ?? 'client-closed',
    });
  }
}

export const jsRelay: Relay = {
  kind: 'js',
  start(client, upstream, toUpstream, toClient, options, onEnd) {
    return new JsTunnel(client, upstream, toUpstream, toClient, options, onEnd);
  },
};
