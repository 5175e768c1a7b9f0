/** The proxy's own set of open tunnels, kept by wrapping its relay (the hand-over walks it). */
import type { Relay, Tunnel } from '../relay/types.js';

export function trackTunnels(relay: Relay, open: Set<Tunnel>): Relay {
  const tracking: Relay = {
    kind: relay.kind,
    start(client, upstream, toUpstream, toClient, options, onEnd) {
      // One closure per tunnel (never per chunk): the set forgets the tunnel as it ends.
      const t: Tunnel = relay.start(client, upstream, toUpstream, toClient, options, (s) => {
        open.delete(t);
        onEnd(s);
      });
      open.add(t);
      return t;
    },
  };
  const native = relay.startNative;
  if (native === undefined || relay.dialer == null) return tracking;
  return {
    ...tracking,
    dialer: relay.dialer,
    startNative(client, upstream, toUpstream, toClient, options, onEnd) {
      const t: Tunnel = native.call(relay, client, upstream, toUpstream, toClient, options, (s) => {
        open.delete(t);
        onEnd(s);
      });
      open.add(t);
      return t;
    },
  };
}
