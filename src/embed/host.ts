/**
 * What `proxy.ws` and `proxy.web` share with the proxy that embeds them: its
 * context, the groups made for `target` options, and the registry of live
 * connections (so `proxy.close()` ends embedded exchanges and tunnels too).
 */
import type { Connection } from '../connection.js';
import type { ProxyContext } from '../context.js';
import type { TargetGroups } from './target.js';

export interface EmbedHost {
  readonly ctx: ProxyContext;
  readonly targets: TargetGroups;
  /** Count a connection made from a handed socket; false: the proxy is closing or full. */
  adopt(c: Connection): boolean;
  /** Whether a connection may be adopted now. */
  accepting(): boolean;
}

/** The callback form: `(err, req, socketOrRes)`, as http-proxy calls it. */
export type EmbedCallback<S> = (err: Error | null, req: unknown, target: S) => void;

/** Marks `p` handled (an unawaited call never becomes an unhandledRejection) and returns it. */
export function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(noop);
  return p;
}

function noop(): void {}
