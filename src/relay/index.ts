/**
 * Relay selection: the native splice(2) relay when it is built and loads (Linux),
 * else the JavaScript relay. Never a crash for lack of the addon.
 */
import { jsRelay } from './js.js';
import { promotingRelay } from './promote.js';
import type { Relay } from './types.js';

export type { Relay, Tunnel, TunnelStats, TunnelCloseReason, RelayOptions } from './types.js';
export { jsRelay };

interface NativeLoad {
  relay: Relay | null;
  reason: string;
}

let native: NativeLoad | null = null;

/** Load the native relay once. Its module is optional: absent source or addon -> null with a reason. */
async function loadNative(): Promise<NativeLoad> {
  if (native !== null) return native;
  try {
    const mod = (await import(new URL('./native.js', import.meta.url).href)) as { loadNativeRelay?: () => NativeLoad };
    native = mod.loadNativeRelay?.() ?? { relay: null, reason: 'native relay module has no loader' };
  } catch (err) {
    native = { relay: null, reason: `native relay not available: ${(err as Error).message.split('\n')[0]}` };
  }
  return native;
}

// Loaded at import so that relay selection (and createProxy) stays synchronous.
const loaded = await loadNative();
let promoting: Relay | null = null;

/** Pick the relay for `choice`. 'splice' without the addon is an error; 'auto' falls back to JS. */
export function selectRelay(choice: 'auto' | 'js' | 'splice'): { relay: Relay; note: string } {
  if (choice === 'js') return { relay: jsRelay, note: 'relay: js' };
  const n = loaded;
  if (n.relay !== null) {
    if (choice === 'splice') return { relay: n.relay, note: 'relay: splice' };
    // auto: short tunnels stay on JS (no hand-over cost), long or busy ones move to splice.
    if (promoting === null) promoting = promotingRelay(n.relay);
    return { relay: promoting, note: 'relay: splice (auto: tunnels move to it after 250 ms or 256 KiB)' };
  }
  if (choice === 'splice') throw new Error(`relay 'splice' requested but ${n.reason}`);
  return { relay: jsRelay, note: `relay: js (${n.reason})` };
}
