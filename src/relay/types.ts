import type { Socket } from 'node:net';
import type { Dialer, NativeUpstream } from './dial.js';

/** Which relay carries a tunnel's bytes: the JS loop, or the native splice(2) engine. */
export type RelayKind = 'js' | 'splice';

/** Why a tunnel ended. Stable strings: they appear in events and logs. */
export type TunnelCloseReason =
  | 'client-closed'     // both directions finished (FIN each way) or the client closed first
  | 'upstream-closed'   // the upstream closed first
  | 'client-error'      // the client socket errored / reset
  | 'upstream-error'    // the upstream socket errored / reset
  | 'idle-timeout'      // no byte in either direction for idleTimeoutMs
  | 'shutdown'          // the proxy closed it (close()/drain)
  | 'moved';            // handed over, live, to another process (src/handover/): it goes on there

export interface TunnelStats {
  /** Bytes written to the upstream after the handshake (early data included). */
  bytesUp: number;
  /** Bytes written to the client after the 101 head (upstream early bytes included). */
  bytesDown: number;
  durationMs: number;
  reason: TunnelCloseReason;
  /** The relay that ended the tunnel (with 'auto', a long tunnel moves from 'js' to 'splice'). */
  relay?: RelayKind;
}

/** A tunnel moved from one relay to another; counts are those carried before the move. */
export interface TunnelMove {
  from: RelayKind;
  to: RelayKind;
  bytesUp: number;
  bytesDown: number;
}

export interface RelayOptions {
  /** Close the tunnel after this long with no byte either way; 0 disables. */
  idleTimeoutMs: number;
  /** Called each time the tunnel moves to another relay (never inside `start`). */
  onMove?: (move: TunnelMove) => void;
  /** The tunnel speaks WebSocket: relays that can follow its frame boundaries do (for goAway). */
  websocket?: boolean;
}

/**
 * A running tunnel. The relay owns both sockets from `start` on: it destroys them
 * when the tunnel ends and then calls `onEnd` exactly once, never inside `start`.
 */
export interface Tunnel {
  /** The relay carrying the bytes now. */
  readonly relay: RelayKind;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** End the tunnel now (graceful shutdown, admin). Calls onEnd with `reason`. */
  close(reason: TunnelCloseReason): void;
  /**
   * End a WebSocket tunnel cleanly (reason 'shutdown'): a Close frame 1001 ("going away") to the
   * client and to the backend, each at a frame boundary of its direction, then a FIN; a direction
   * in the middle of a frame gets a bounded wait. Where the carrier cannot follow frames (a
   * non-WebSocket tunnel, an addon built without goAway), the same as close('shutdown').
   */
  goAway(): void;
}

/**
 * Moves bytes both ways between two established sockets, with backpressure and
 * half-close. The handshake is finished before `start`; bytes that arrived with
 * the heads are handed in so the relay writes them first, in order.
 */
export interface Relay {
  /** The fastest relay its tunnels run on ('auto' with the addon: 'splice'; each tunnel says what runs it). */
  readonly kind: RelayKind;
  /**
   * Take over `client` and `upstream`.
   * `toUpstream` / `toClient`: bytes that arrived before the tunnel opened (client
   * frames pipelined behind the upgrade head; upstream bytes behind the 101 head);
   * the relay writes them first, in order. Either may be empty.
   */
  start(
    client: Socket,
    upstream: Socket,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    options: RelayOptions,
    onEnd: (stats: TunnelStats) => void,
  ): Tunnel;
  /**
   * @internal Where the relay can take an upstream the addon dialled (no JS socket): the dialer
   * the upgrade legs use, and `startNative`, `start` for such an upstream.
   */
  readonly dialer?: Dialer | null;
  startNative?(
    client: Socket,
    upstream: NativeUpstream,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    options: RelayOptions,
    onEnd: (stats: TunnelStats) => void,
  ): Tunnel;
}
