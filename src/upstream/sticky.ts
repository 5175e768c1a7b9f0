/**
 * Sticky sessions by cookie (HAProxy `cookie NAME insert indirect nocache`,
 * nginx `sticky cookie NAME ...`): the first response carries a cookie
 * naming the backend that served it, later requests carrying it go back to
 * that backend. The value is an HMAC of the backend's identity under a
 * secret (per process unless configured, so several proxies in front of the
 * same backends can share one): opaque, never the address, and not forgeable
 * into naming a backend the proxy did not issue. A cookie that does not
 * decode, or names a backend that is gone or unusable, falls back to
 * balancing and is issued again.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Backend } from './backend.js';
import { cookieValue, type PickContext } from './context.js';

export interface StickyConfig {
  /** Cookie name (a token). */
  cookie: string;
  /** Max-Age in ms; omitted = a session cookie. */
  expiresMs?: number;
  domain?: string;
  /** Default `/`. */
  path?: string;
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: 'strict' | 'lax' | 'none';
  /** Also send `Cache-Control: no-cache="set-cookie"` so shared caches do not store the cookie (HAProxy `nocache`). */
  nocache?: boolean;
  /** HMAC key; omitted = random per process. */
  secret?: string;
}

const PROCESS_SECRET = randomBytes(32);

export class Sticky {
  readonly cookie: string;
  private readonly secret: Buffer | string;
  private readonly attributes: string;
  private readonly byToken = new Map<string, Backend>();
  private readonly tokens = new Map<Backend, string>();
  private readonly lines = new Map<Backend, string>();

  constructor(cfg: StickyConfig, backends: readonly Backend[]) {
    this.cookie = cfg.cookie;
    this.secret = cfg.secret ?? PROCESS_SECRET;
    let attrs = `; Path=${cfg.path ?? '/'}`;
    if (cfg.expiresMs !== undefined) attrs += `; Max-Age=${Math.floor(cfg.expiresMs / 1000)}`;
    if (cfg.domain !== undefined) attrs += `; Domain=${cfg.domain}`;
    if (cfg.httpOnly === true) attrs += '; HttpOnly';
    if (cfg.secure === true) attrs += '; Secure';
    if (cfg.sameSite !== undefined) attrs += `; SameSite=${cfg.sameSite[0]!.toUpperCase()}${cfg.sameSite.slice(1)}`;
    this.attributes = attrs + '\r\n' + (cfg.nocache === true ? 'Cache-Control: no-cache="set-cookie"\r\n' : '');
    this.setBackends(backends);
  }

  /** (Re)build the token tables, e.g. after DNS changed the backends. */
  setBackends(backends: readonly Backend[]): void {
    this.byToken.clear();
    this.tokens.clear();
    this.lines.clear();
    for (const b of backends) {
      const token = createHmac('sha256', this.secret).update(b.label).digest('base64url').slice(0, 22);
      this.byToken.set(token, b);
      this.tokens.set(b, token);
      this.lines.set(b, `Set-Cookie: ${this.cookie}=${token}${this.attributes}`);
    }
  }

  /** The backend the request's cookie names, if it is one of ours and usable now. */
  find(ctx: PickContext, now: number): Backend | null {
    const v = cookieValue(ctx, this.cookie);
    if (v === '') return null;
    const b = this.byToken.get(v);
    return b !== undefined && b.usable(now, false) ? b : null;
  }

  /**
   * The header lines to add to the response served by `b`: none when the
   * client already holds the right cookie, else the Set-Cookie (CRLF-ended).
   */
  header(b: Backend, ctx: PickContext): string {
    const token = this.tokens.get(b);
    if (token === undefined) return '';
    return cookieValue(ctx, this.cookie) === token ? '' : this.lines.get(b)!;
  }

  tokenOf(b: Backend): string | undefined {
    return this.tokens.get(b);
  }
}
