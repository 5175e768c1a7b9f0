/** The hand-over's public shapes: options, phases and the two sides' reports. */

/** Where a hand-over is: the old side's phases in order, then its result. */
export type Phase = 'spawn' | 'hello' | 'listeners' | 'ready' | 'tunnels' | 'done' | 'rolled-back';

export interface HandOverOptions {
  /** How long one answer of the other side may take (hello, acknowledgements). Default 10 s. */
  timeoutMs?: number;
  /** How long the other side may take to serve on the listeners it was given. Default 30 s. */
  readyTimeoutMs?: number;
  /**
   * More listening sockets to give along with the proxy's own (e.g. an admin listener): the other
   * side's `takeOver({ listen })` gets them in its list. They stay the caller's: not suspended.
   */
  extraListeners?: Array<{ key: string; address: string; fd: number }>;
}

/** The old side's result (`proxy.handOver`). */
export interface HandOverReport {
  peerPid: number;
  peerVersion: string;
  /** Listening sockets given. */
  listeners: number;
  /** Native tunnels that now run in the other process. */
  moved: number;
  /** Tunnels the other process did not take (they run on here). */
  refused: number;
  /** Tunnels still here after the hand-over (JS relay, TLS, refused): a close() drains them. */
  stayed: number;
  ms: number;
}

/** The new side's result (`proxy.takeOver`). */
export interface TakeOverReport {
  peerPid: number;
  peerVersion: string;
  listeners: number;
  /** Tunnels adopted and running here. */
  tunnels: number;
  /** Tunnels this side could not adopt (given back). */
  refused: number;
  /** How long each adopted tunnel was paused, ms (out of the old engine to into this one). */
  pausesMs: number[];
  maxPauseMs: number;
  ms: number;
}

export interface TakeOverOptions {
  /** How long to wait for the old side to connect, and for each of its messages. Default 30 s. */
  timeoutMs?: number;
}

/** A hand-over or take-over ended (`proxy.on('handoverEnd')`): what the logs and metrics report. */
export interface HandoverEndEvent {
  side: 'give' | 'take';
  ok: boolean;
  /** Why it failed ('' when ok). */
  reason: string;
  peerPid: number;
  /** Tunnels that moved (give) or were adopted (take). */
  moved: number;
  /** Give side: tunnels that stay here and drain (JS relay, TLS, refused). */
  stayed: number;
  /** Take side: how long each adopted tunnel was paused, ms. */
  pausesMs: number[];
  ms: number;
}
