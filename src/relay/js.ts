/**
 * The JavaScript relay: one loop per direction over Node sockets, with
 * backpressure (a `false` from write() pauses the reader until 'drain'),
 * half-close (a FIN is relayed as end(), not as a close), and RST relayed as
 * RST. Handlers are bound once per tunnel. Reads go straight from libuv into one
 * shared buffer (readDirect) where Node allows it, else through 'data' events:
 * per chunk, the only allocation is the copy handed to write().
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { resetOrDestroy } from '../sockets.js';
import { readOwned } from './handover.js';
import { close1001ToServer, CLOSE_1001_TO_CLIENT, FrameCursor } from './frames.js';
import { RelayTunnel, type Carrier } from './tunnel.js';
import type { Relay } from './types.js';

/** How long goAway waits for a direction in the middle of a frame, and then for the peers to close. */
const GO_AWAY_GRACE_MS = 1000;

/** Calls `hit` once, from inside a socket callback, when the tunnel has carried `bytes`; `ended` when it ends on JS. */
export interface Watermark {
  bytes: number;
  hit(): void;
  ended(): void;
}

export class JsCarrier implements Carrier {
  readonly kind = 'js' as const;
  readonly keepsIdle = false;
  bytesUp = 0;
  bytesDown = 0;
  private done = false;
  private closed = 0;
  /** Total bytes at which to call watch.hit() (0: none, or already called). */
  private watchAt = 0;
  /** Frame boundaries of each direction (WebSocket tunnels only), for goAway. */
  private readonly upFrames: FrameCursor | null;
  private readonly downFrames: FrameCursor | null;
  /** goAway: a Close was written toward the upstream / the client; the grace timer. */
  private upClosed = false;
  private downClosed = false;
  private away: NodeJS.Timeout | null = null;

  constructor(
    private readonly tunnel: RelayTunnel,
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly watch: Watermark | null = null,
  ) {
    this.upFrames = tunnel.websocket ? new FrameCursor() : null;
    this.downFrames = tunnel.websocket ? new FrameCursor() : null;
    this.onClientData = this.onClientData.bind(this);
    this.onUpstreamData = this.onUpstreamData.bind(this);
    this.onClientDrain = this.onClientDrain.bind(this);
    this.onUpstreamDrain = this.onUpstreamDrain.bind(this);
    this.onClientEnd = this.onClientEnd.bind(this);
    this.onUpstreamEnd = this.onUpstreamEnd.bind(this);
    this.onClientError = this.onClientError.bind(this);
    this.onUpstreamError = this.onUpstreamError.bind(this);
    this.onSocketClose = this.onSocketClose.bind(this);
    if (watch !== null) this.watchAt = watch.bytes;

    // A direct reader stays for the socket's life; release() stops it with pause(), and the
    // native engine, the only next carrier, reads the fd itself.
    readOwned(client, this.onClientData);
    readOwned(upstream, this.onUpstreamData);
    client.on('drain', this.onClientDrain);
    upstream.on('drain', this.onUpstreamDrain);
    client.on('end', this.onClientEnd);
    upstream.on('end', this.onUpstreamEnd);
    client.on('error', this.onClientError);
    upstream.on('error', this.onUpstreamError);
    client.on('close', this.onSocketClose);
    upstream.on('close', this.onSocketClose);
  }

  /** Write the early bytes and start reading; call once the tunnel carries this. */
  begin(toUpstream: Buffer | null, toClient: Buffer | null): void {
    const { client, upstream } = this;
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
    // A socket may already be gone by the time the handshake finished.
    if (client.closed) this.onSocketClose();
    if (upstream.closed) this.onSocketClose();
  }

  /**
   * Hand both sockets back, still open and paused, to move the tunnel to another
   * carrier. Refused (false) once either side has ended, errored or closed: a FIN
   * that JS has already read could not be seen by the next carrier.
   */
  release(): boolean {
    const c = this.client;
    const u = this.upstream;
    if (this.done || this.away !== null || this.tunnel.ended || c.destroyed || u.destroyed) return false;
    if (c.readableEnded || u.readableEnded || c.writableEnded || u.writableEnded) return false;
    this.done = true;
    c.removeListener('data', this.onClientData);
    u.removeListener('data', this.onUpstreamData);
    c.removeListener('drain', this.onClientDrain);
    u.removeListener('drain', this.onUpstreamDrain);
    c.removeListener('end', this.onClientEnd);
    u.removeListener('end', this.onUpstreamEnd);
    c.removeListener('close', this.onSocketClose);
    u.removeListener('close', this.onSocketClose);
    // Until the next carrier owns them, an error must not go unheard (it would throw).
    c.removeListener('error', this.onClientError);
    u.removeListener('error', this.onUpstreamError);
    c.on('error', noop);
    u.on('error', noop);
    c.pause();
    u.pause();
    return true;
  }

  private onClientData(chunk: Buffer): void {
    if (this.upFrames !== null) {
      if (this.away !== null) return this.awayData(chunk, this.upFrames, true);
      this.upFrames.advance(chunk, 0, false);
    }
    this.bytesUp += chunk.length;
    if (!this.upstream.write(chunk)) this.client.pause();
    if (this.watchAt !== 0 && this.bytesUp + this.bytesDown >= this.watchAt) this.reached();
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.downFrames !== null) {
      if (this.away !== null) return this.awayData(chunk, this.downFrames, false);
      this.downFrames.advance(chunk, 0, false);
    }
    this.bytesDown += chunk.length;
    if (!this.client.write(chunk)) this.upstream.pause();
    if (this.watchAt !== 0 && this.bytesUp + this.bytesDown >= this.watchAt) this.reached();
  }

  /**
   * End with Close 1001 both ways, each at its direction's next frame boundary, then FIN; after
   * GO_AWAY_GRACE_MS whatever is left is destroyed. False for a tunnel that is not WebSocket.
   */
  goAway(): boolean {
    if (this.upFrames === null || this.downFrames === null || this.done) return false;
    if (this.away !== null) return true;
    this.away = setTimeout(() => this.stop(), GO_AWAY_GRACE_MS);
    this.away.unref();
    if (this.upFrames.atBoundary) this.closeToward(true);
    if (this.downFrames.atBoundary) this.closeToward(false);
    return true;
  }

  /** Draining: pass a direction's bytes up to its next frame boundary, then close it; drop the rest. */
  private awayData(chunk: Buffer, frames: FrameCursor, up: boolean): void {
    if (up ? this.upClosed : this.downClosed) return; // after our Close nothing more goes that way
    const end = frames.advance(chunk, 0, true);
    if (end > 0) {
      const part = end === chunk.length ? chunk : chunk.subarray(0, end);
      if (up) this.bytesUp += part.length;
      else this.bytesDown += part.length;
      if (!(up ? this.upstream : this.client).write(part)) (up ? this.client : this.upstream).pause();
    }
    if (frames.atBoundary) this.closeToward(up);
  }

  /** Write the Close toward the upstream (masked, as a client must) or the client; FIN once both are out. */
  private closeToward(up: boolean): void {
    if (up) {
      this.upClosed = true;
      this.upstream.write(close1001ToServer(randomBytes(4)));
    } else {
      this.downClosed = true;
      this.client.write(CLOSE_1001_TO_CLIENT);
    }
    if (this.upClosed && this.downClosed) {
      this.upstream.end();
      this.client.end();
    }
  }

  private reached(): void {
    this.watchAt = 0;
    this.watch!.hit();
  }

  private onUpstreamDrain(): void {
    this.client.resume();
  }

  private onClientDrain(): void {
    this.upstream.resume();
  }

  private onClientEnd(): void {
    this.tunnel.note('client-closed');
    this.upstream.end();
  }

  private onUpstreamEnd(): void {
    this.tunnel.note('upstream-closed');
    this.client.end();
  }

  private onClientError(): void {
    this.tunnel.note('client-error');
    // Relay the reset: the upstream learns the client is gone, not that it said goodbye.
    resetOrDestroy(this.upstream);
  }

  private onUpstreamError(): void {
    this.tunnel.note('upstream-error');
    resetOrDestroy(this.client);
  }

  private onSocketClose(): void {
    if (this.done) return;
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

  stop(): void {
    if (this.done) return;
    this.client.destroy();
    this.upstream.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.away !== null) clearTimeout(this.away);
    if (!this.client.destroyed) this.client.destroy();
    if (!this.upstream.destroyed) this.upstream.destroy();
    if (this.watch !== null) this.watch.ended();
    this.tunnel.finish();
  }
}

function noop(): void {}

export const jsRelay: Relay = {
  kind: 'js',
  start(client, upstream, toUpstream, toClient, options, onEnd) {
    const tunnel = new RelayTunnel(options, onEnd);
    const carrier = new JsCarrier(tunnel, client, upstream);
    tunnel.carry(carrier);
    carrier.begin(toUpstream, toClient);
    return tunnel.opened();
  },
};
