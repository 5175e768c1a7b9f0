/**
 * TLS termination for one listener. A tls.Server that never listens does the
 * handshakes: the listener's net.Server hands it each socket (after any PROXY
 * header), and it hands back an established TLSSocket. Certificates are chosen
 * by SNI, ALPN offers http/1.1, sessions resume by ticket (or, with tickets
 * off, from a bounded cache). A reload swaps the certificates for new
 * handshakes only: connections already open keep theirs.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { CappedTable } from '../limits/table.js';
import { peerOf, setPeer } from '../proxy-protocol/peer.js';
import { contextFor, loadCertificates, type CertificateSet } from './certificates.js';
import type { ResolvedListenerTls } from './options.js';
import { CertificateWatcher } from './watch.js';

export interface TerminatorHooks {
  secure(socket: TLSSocket): void;
  /** The handshake failed: the reason (OpenSSL's, or the client certificate's verification). */
  failed(raw: Socket, reason: string, remoteAddress: string): void;
  /** `raw` is out of the handshake (established, failed or gone). */
  settled(raw: Socket): void;
}

export interface ReloadResult {
  ok: boolean;
  /** Why the new files were refused (the old certificates stay). */
  reason?: string;
  warnings: string[];
  trigger: 'reload' | 'watch';
}

export interface TerminatorEvents {
  reload: [ReloadResult];
}

/** What a plain-HTTP client on the TLS port gets, as nginx answers it. */
const PLAIN_HTTP_ANSWER = Buffer.from(
  'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 53\r\nConnection: close\r\n\r\n' +
    '400 Bad Request: plain HTTP request sent to HTTPS port',
  'latin1',
);
/** First byte of a TLS record carrying a handshake message. */
const TLS_HANDSHAKE = 0x16;
const SESSION_CACHE_ENTRIES = 20_000;

function tupleKey(s: Socket): string | null {
  return s.remoteAddress === undefined ? null : `${s.remoteAddress}|${s.remotePort}|${s.localPort}`;
}

export class TlsTerminator extends EventEmitter<TerminatorEvents> {
  private set: CertificateSet;
  private readonly ticketKeys = randomBytes(48);
  private readonly server: tls.Server;
  /** Raw sockets in their handshake, by their TCP 4-tuple (how a TLSSocket is matched to its raw socket). */
  private readonly handshaking = new Map<string, Socket>();
  /** Raw sockets whose handshake has not ended (established or failed). */
  private readonly pending = new Map<Socket, string>();
  private readonly sessions = new CappedTable<{ data: Buffer; expires: number }>(SESSION_CACHE_ENTRIES);
  private readonly watcher: CertificateWatcher | null;
  private hooks: TerminatorHooks | null = null;
  private readonly headTimeoutMs: number;

  /** Throws TlsFileError when a file is unreadable or wrong. */
  constructor(readonly options: ResolvedListenerTls, headTimeoutMs: number) {
    super();
    this.headTimeoutMs = headTimeoutMs;
    this.set = loadCertificates(options, this.ticketKeys);
    const verify = options.verifyClient !== 'off';
    this.server = tls.createServer({
      ...this.set.defaultOptions,
      SNICallback: (name, cb) => cb(null, contextFor(this.set, name)),
      ALPNProtocols: ['http/1.1'],
      requestCert: verify,
      // 'on' is enforced in onSecure, where the verification's reason can be reported.
      rejectUnauthorized: false,
      handshakeTimeout: headTimeoutMs > 0 ? headTimeoutMs : 120_000,
    });
    this.server.on('secureConnection', (s: TLSSocket) => this.onSecure(s));
    this.server.on('tlsClientError', (err: Error & { code?: string }, s: TLSSocket) => this.onClientError(err, s));
    if (!options.sessionTickets) {
      this.server.on('newSession', (id: Buffer, data: Buffer, cb: () => void) => {
        this.sessions.touch(id.toString('hex'), () => ({ data, expires: Date.now() + options.sessionTimeoutSec * 1000 }));
        cb();
      });
      this.server.on('resumeSession', (id: Buffer, cb: (err: null, data: Buffer | null) => void) => {
        const e = this.sessions.get(id.toString('hex'));
        cb(null, e !== undefined && e.expires > Date.now() ? e.data : null);
      });
    }
    this.watcher = options.watch ? new CertificateWatcher(this.set.files, () => this.reload('watch')) : null;
  }

  get warnings(): readonly string[] {
    return this.set.warnings;
  }

  get certificates(): CertificateSet['summary'] {
    return this.set.summary;
  }

  setHooks(h: TerminatorHooks): void {
    this.hooks = h;
  }

  /** Start the handshake on an accepted (and maybe PROXY-read) socket. */
  handshake(raw: Socket): void {
    raw.once('close', () => this.settle(raw));
    raw.on('error', noop); // the TLS socket reports; 'close' cleans up
    raw.once('data', (first: Buffer) => this.onFirstBytes(raw, first));
    // Until the ClientHello starts, the head timeout runs here; then OpenSSL's handshake timeout.
    if (this.headTimeoutMs > 0) {
      raw.setTimeout(this.headTimeoutMs, () => {
        this.hooks?.failed(raw, 'TLS handshake failed: no ClientHello in time', raw.remoteAddress ?? '');
        raw.destroy();
      });
    }
    if (raw.isPaused()) raw.resume();
  }

  /**
   * Re-read every file; on success new handshakes use the new certificates.
   * On failure the old ones stay and the reason is returned (and emitted).
   */
  reload(trigger: ReloadResult['trigger'] = 'reload'): ReloadResult {
    let result: ReloadResult;
    try {
      const next = loadCertificates(this.options, this.ticketKeys);
      this.server.setSecureContext(next.defaultOptions);
      this.set = next;
      this.watcher?.setFiles(next.files);
      result = { ok: true, warnings: next.warnings, trigger };
    } catch (err) {
      result = { ok: false, reason: (err as Error).message, warnings: [], trigger };
    }
    this.emit('reload', result);
    return result;
  }

  /** Stop watching the certificate files (a reload made a new terminator). */
  unwatch(): void {
    this.watcher?.close();
  }

  close(): void {
    this.watcher?.close();
    for (const raw of this.pending.keys()) raw.destroy();
    this.pending.clear();
    this.handshaking.clear();
  }

  private onFirstBytes(raw: Socket, first: Buffer): void {
    raw.setTimeout(0);
    raw.pause();
    raw.unshift(first);
    if (first[0] !== TLS_HANDSHAKE) {
      const plain = first[0]! >= 0x41 && first[0]! <= 0x5a; // an HTTP method's first letter
      this.hooks?.failed(raw, plain ? 'plain HTTP sent to the TLS port' : `not a TLS handshake (first byte 0x${first[0]!.toString(16)})`, raw.remoteAddress ?? '');
      if (plain && !raw.destroyed) {
        raw.end(PLAIN_HTTP_ANSWER);
        setTimeout(() => raw.destroy(), 1_000).unref();
      } else {
        raw.destroy();
      }
      return;
    }
    const key = tupleKey(raw);
    if (key !== null) this.handshaking.set(key, raw);
    this.pending.set(raw, raw.remoteAddress ?? '');
    this.server.emit('connection', raw);
  }

  private takeRaw(s: TLSSocket): Socket | undefined {
    const key = tupleKey(s);
    if (key === null) return undefined;
    const raw = this.handshaking.get(key);
    this.handshaking.delete(key);
    return raw;
  }

  private settle(raw: Socket): void {
    for (const [k, r] of this.handshaking) {
      if (r === raw) this.handshaking.delete(k);
    }
    // Gone in the middle of its handshake with no reason reported yet.
    if (this.pending.has(raw)) this.fail(raw, 'TLS handshake failed: connection closed before it completed');
    this.hooks?.settled(raw);
  }

  /** Report a failed handshake once, and forget the socket. */
  private fail(raw: Socket, reason: string): void {
    const addr = this.pending.get(raw);
    if (addr === undefined) return;
    this.pending.delete(raw);
    this.hooks?.failed(raw, reason, addr);
  }

  private onSecure(s: TLSSocket): void {
    const raw = this.takeRaw(s);
    if (this.options.verifyClient === 'on' && !s.authorized) {
      const why = s.getPeerX509Certificate() === undefined ? 'none sent' : String(s.authorizationError);
      if (raw !== undefined) this.fail(raw, `TLS handshake failed: client certificate: ${why}`);
      s.destroy();
      return;
    }
    if (raw !== undefined) {
      this.pending.delete(raw);
      const peer = peerOf(raw);
      if (peer !== undefined) setPeer(s, peer);
      this.hooks?.settled(raw);
    }
    this.hooks?.secure(s);
  }

  private onClientError(err: Error & { code?: string }, s: TLSSocket): void {
    const raw = this.takeRaw(s);
    if (raw !== undefined) this.fail(raw, `TLS handshake failed: ${err.code ?? err.message}`);
    s.destroy();
  }
}

function noop(): void {}
