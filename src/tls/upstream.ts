/**
 * TLS to a backend: the connect the upstream leg calls instead of
 * net.connect for an upstream with `tls`. Verifies by default (Node's root
 * store, or the configured CA), sends SNI (the configured name, else the
 * backend's host name when it is not an IP), offers ALPN http/1.1, presents a
 * client certificate when configured, and resumes the last session per backend.
 * The caller waits for 'secureConnect'; a certificate that does not verify
 * is an 'error' whose message says why (see upstreamTlsReason).
 */
import net, { isIP, type Socket } from 'node:net';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { TlsFileError } from './certificates.js';
import type { ResolvedUpstreamTls } from './options.js';

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsFileError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** One per upstream group: its secure context (files read once) and the sessions to reuse. */
export class UpstreamTls {
  private readonly context: SecureContext;
  /** Last session ticket per backend address. Bounded by the number of backends. */
  private readonly sessions = new Map<string, Buffer>();

  /** Throws TlsFileError when a file is unreadable or wrong. */
  constructor(readonly options: ResolvedUpstreamTls) {
    const o = options;
    try {
      this.context = tls.createSecureContext({
        ...(o.ca !== null ? { ca: read(o.ca, 'CA file') } : {}),
        ...(o.cert !== null ? { cert: read(o.cert, 'client certificate'), key: read(o.key!, 'client key') } : {}),
        ...(o.ciphers !== null ? { ciphers: o.ciphers } : {}),
        minVersion: o.minVersion,
        maxVersion: o.maxVersion,
      });
    } catch (err) {
      if (err instanceof TlsFileError) throw err;
      throw new TlsFileError(`upstream TLS: ${(err as Error).message}`);
    }
  }

  /** The SNI name for a backend host (undefined: none). */
  serverNameFor(host: string): string | undefined {
    const s = this.options.serverName;
    if (s === false) return undefined;
    if (s !== undefined) return s;
    return isIP(host) === 0 ? host : undefined;
  }

  /**
   * Connect to a TCP backend (or a unix path) and start TLS. A `preamble` (a
   * PROXY header) goes out in the clear first, as HAProxy sends it.
   */
  connect(target: { host: string; port: number } | { path: string }, label: string, preamble: Buffer | null = null): TLSSocket {
    const o = this.options;
    const servername = 'host' in target ? this.serverNameFor(target.host) : typeof o.serverName === 'string' ? o.serverName : undefined;
    const session = o.sessionReuse ? this.sessions.get(label) : undefined;
    // allowHalfOpen is honoured by tls.connect (a FIN is relayed), though not in its types.
    let raw: Socket | null = null;
    if (preamble !== null) {
      raw = net.connect({ ...target, allowHalfOpen: true });
      raw.write(preamble);
    }
    const opts: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
      ...(raw !== null ? { socket: raw } : target),
      secureContext: this.context,
      rejectUnauthorized: o.verify,
      ALPNProtocols: ['http/1.1'],
      allowHalfOpen: true,
      ...(servername !== undefined ? { servername } : {}),
      ...(session !== undefined ? { session } : {}),
    };
    // With no SNI name (an IP backend) Node verifies the certificate against the IP.
    if (servername === undefined && 'host' in target) opts.host = target.host;
    const s = tls.connect(opts);
    // The raw socket's own errors (a refused connect) become the TLS socket's.
    raw?.on('error', (err) => s.destroy(err));
    if ('host' in target) s.setNoDelay(true);
    if (o.sessionReuse) s.on('session', (ticket: Buffer) => this.sessions.set(label, ticket));
    return s;
  }
}

/** The reason a TLS connect failed, for the 502's log line. */
export function upstreamTlsReason(err: Error & { code?: string }): string {
  return err.code !== undefined && err.code !== err.message ? `TLS: ${err.code}: ${err.message}` : `TLS: ${err.message}`;
}
