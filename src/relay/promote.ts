/**
 * The 'auto' relay when the native one is built. A tunnel whose upstream the addon
 * dialled (a plain TCP client and backend) starts on the native relay at the 101:
 * it has no JS upstream socket to start on, and only the client's fd moves. Every
 * other tunnel (a JS upstream: a unix socket, TLS, a host name, early data) starts
 * on the JS relay and moves to the native one once it has moved `afterBytes` or
 * lived `afterMs`, so that a short one never pays that hand-over twice.
 */
import type { Socket } from 'node:net';
import { fdOf } from './handover.js';
import { JsCarrier, type Watermark } from './js.js';
import type { NativeRelay } from './native.js';
import { RelayTunnel } from './tunnel.js';
import type { Relay } from './types.js';

export interface PromoteOptions {
  /** Default 256 KiB. */
  afterBytes?: number;
  /**
   * Default 250 ms. The hand-over costs the same whatever the tunnel's life; what it
   * saves grows with every message after it. Only tunnels that end almost at once
   * (handshake and close, a refused login, a health check) are better off without.
   */
  afterMs?: number;
}

/** One tunnel's way from the JS carrier to the native one. */
class Promotion implements Watermark {
  readonly bytes: number;
  private timer: NodeJS.Timeout | null;
  private offered = false;
  readonly js: JsCarrier;

  constructor(
    private readonly native: NativeRelay,
    private readonly tunnel: RelayTunnel,
    private readonly client: Socket,
    private readonly upstream: Socket,
    when: Required<PromoteOptions>,
  ) {
    this.bytes = when.afterBytes;
    this.hit = this.hit.bind(this);
    this.move = this.move.bind(this);
    this.js = new JsCarrier(tunnel, client, upstream, this);
    this.timer = setTimeout(this.hit, when.afterMs);
    this.timer.unref();
  }

  /** From a socket callback or the timer: move from a fresh turn of the event loop. */
  hit(): void {
    if (this.offered) return;
    this.ended();
    if (!this.tunnel.ended) setImmediate(this.move);
  }

  /**
   * No move from now on. Also called when the tunnel ends on JS (a handshake and close,
   * mostly): the timer goes at once, so that the tunnel and its sockets die young instead of
   * living on to the deadline and into the old generation of the heap.
   */
  ended(): void {
    this.offered = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private move(): void {
    // Refused once a side has ended or errored: the tunnel stays on JS to its end.
    if (!this.js.release()) return;
    this.native.carry(this.tunnel, this.client, this.upstream, null, null);
  }
}

/** A relay that starts tunnels on JS and promotes long or busy ones to `native`. */
export function promotingRelay(native: NativeRelay, options: PromoteOptions = {}): Relay {
  const when = { afterBytes: options.afterBytes ?? 256 * 1024, afterMs: options.afterMs ?? 250 };
  const relay: Relay = {
    kind: native.kind,
    start(client, upstream, toUpstream, toClient, relayOptions, onEnd) {
      const tunnel = new RelayTunnel(relayOptions, onEnd);
      // A socket the engine cannot take (TLS: JS must decrypt) stays on JS for its whole life;
      // a promotion would only pause it and find no fd to hand over.
      if (fdOf(client) < 0 || fdOf(upstream) < 0) {
        const js = new JsCarrier(tunnel, client, upstream);
        tunnel.carry(js);
        js.begin(toUpstream, toClient);
        return tunnel.opened();
      }
      const p = new Promotion(native, tunnel, client, upstream, when);
      tunnel.carry(p.js);
      p.js.begin(toUpstream, toClient);
      return tunnel.opened();
    },
  };
  const startNative = native.startNative;
  if (native.dialer == null || startNative === undefined) return relay;
  return { ...relay, dialer: native.dialer, startNative: startNative.bind(native) };
}
