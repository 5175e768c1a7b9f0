/** The proxy's own set of open tunnels, kept by wrapping its relay (the hand-over walks it). */
import type { Relay, Tunnel, TunnelStats } from '../relay/types.js';

type OnEnd = (stats: TunnelStats) => void;

/** Start a tunnel through `start` with an end callback that first makes `open` forget it. */
function tracked(open: Set<Tunnel>, onEnd: OnEnd, start: (end: OnEnd) => Tunnel): Tunnel {
  // One closure per tunnel (never per chunk).
  const t: Tunnel = start((s) => {
    open.delete(t);
    onEnd(s);
  });
  open.add(t);
  return t;
}

export function trackTunnels(relay: Relay, open: Set<Tunnel>): Relay {
  const tracking: Relay = {
    kind: relay.kind,
    start: (client, upstream, toUpstream, toClient, options, onEnd) =>
      tracked(open, onEnd, (end) => relay.start(client, upstream, toUpstream, toClient, options, end)),
  };
  const native = relay.startNative;
  if (native === undefined || relay.dialer == null) return tracking;
  return {
    ...tracking,
    dialer: relay.dialer,
    startNative: (client, upstream, toUpstream, toClient, options, onEnd) =>
      tracked(open, onEnd, (end) => native.call(relay, client, upstream, toUpstream, toClient, options, end)),
  };
}
