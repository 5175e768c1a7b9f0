/**
 * The 'auto' relay when the native one is built: every tunnel starts on the
 * JS relay, and moves to the native relay once it has moved `afterBytes` or
 * lived `afterMs`. A handshake-and-close tunnel never pays the fd hand-over
 * (about 30 us on the relay thread); a long or busy one gets splice(2) and
 * costs the event loop nothing from then on.
 */
import type { Socket } from 'node:net';
import { JsTunnel } from './js.js';
import type { Relay, RelayOptions, Tunnel, TunnelCloseReason, TunnelStats } from './types.js';

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

class PromotingTunnel implements Tunnel {
  private current: Tunnel;
  private readonly js: JsTunnel;
  private baseUp = 0;
  private baseDown = 0;
  private readonly started = Date.now();

  constructor(
    private readonly native: Relay,
    private readonly client: Socket,
    private readonly upstream: Socket,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    private readonly options: RelayOptions,
    private readonly onEnd: (stats: TunnelStats) => void,
    when: Required<PromoteOptions>,
  ) {
    this.js = new JsTunnel(client, upstream, toUpstream, toClient, options, onEnd, {
      afterBytes: when.afterBytes,
      afterMs: when.afterMs,
      offer: this.promote.bind(this),
    });
    this.current = this.js;
  }

  private promote(): void {
    const moved = this.js.release();
    if (moved === null) return; // ended, or half-closed: stays on the JS relay
    this.baseUp = moved.bytesUp;
    this.baseDown = moved.bytesDown;
    this.current = this.native.start(this.client, this.upstream, null, null, this.options, (s) => {
      this.onEnd({
        bytesUp: this.baseUp + s.bytesUp,
        bytesDown: this.baseDown + s.bytesDown,
        durationMs: Date.now() - this.started,
        reason: s.reason,
        relay: s.relay ?? this.native.kind,
      });
    });
  }

  get bytesUp(): number {
    return this.current === this.js ? this.js.bytesUp : this.baseUp + this.current.bytesUp;
  }

  get bytesDown(): number {
    return this.current === this.js ? this.js.bytesDown : this.baseDown + this.current.bytesDown;
  }

  close(reason: TunnelCloseReason): void {
    this.current.close(reason);
  }
}

/** A relay that starts tunnels on JS and promotes long or busy ones to `native`. */
export function promotingRelay(native: Relay, options: PromoteOptions = {}): Relay {
  const when = { afterBytes: options.afterBytes ?? 256 * 1024, afterMs: options.afterMs ?? 250 };
  return {
    kind: native.kind,
    start(client, upstream, toUpstream, toClient, relayOptions, onEnd) {
      return new PromotingTunnel(native, client, upstream, toUpstream, toClient, relayOptions, onEnd, when);
    },
  };
}
