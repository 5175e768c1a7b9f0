/**
 * Relay selection: the native splice(2) relay when it is built and loads (Linux),
 * else the JavaScript relay. Never a crash for lack of the addon, and no
 * top-level await: the addon is loaded synchronously, on the first selection.
 */
import { jsRelay } from './js.js';
import { loadNativeRelay, type NativeRelay } from './native.js';
import { promotingRelay } from './promote.js';
import type { Relay } from './types.js';

export type { Relay, RelayKind, RelayOptions, Tunnel, TunnelCloseReason, TunnelMove, TunnelStats } from './types.js';
export { jsRelay };

let native: { relay: NativeRelay | null; reason: string } | null = null;
let promoting: Relay | null = null;

/** Pick the relay for `choice`. 'splice' without the addon is an error; 'auto' falls back to JS. */
export function selectRelay(choice: 'auto' | 'js' | 'splice'): { relay: Relay; note: string } {
  if (choice === 'js') return { relay: jsRelay, note: 'relay: js' };
  native ??= loadNativeRelay();
  const n = native;
  if (n.relay !== null) {
    if (choice === 'splice') return { relay: n.relay, note: 'relay: splice' };
    // auto: a dialled upstream starts on splice; a JS one starts on JS and moves when long or busy.
    promoting ??= promotingRelay(n.relay);
    const dialled = n.relay.dialer != null ? 'plain TCP tunnels at the 101, others' : 'tunnels';
    return { relay: promoting, note: `relay: splice (auto: ${dialled} after 250 ms or 256 KiB)` };
  }
  if (choice === 'splice') throw new Error(`relay 'splice' requested but ${n.reason}`);
  return { relay: jsRelay, note: `relay: js (${n.reason})` };
}

/** The native relay of this process (loaded once), or null without the addon: the hand-over adopts tunnels into it. */
export function nativeRelay(): NativeRelay | null {
  native ??= loadNativeRelay();
  return native.relay;
}
