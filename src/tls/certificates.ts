/**
 * Reading a listener's PEM files into secure contexts, one per certificate,
 * and the SNI lookup over them. Every problem is found before anything is
 * used: an unreadable file, a key that does not match its certificate, a PEM
 * OpenSSL refuses. An expired certificate is served, with a warning.
 */
import { constants, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls, { type SecureContext, type SecureContextOptions } from 'node:tls';
import type { ResolvedListenerTls } from './options.js';

export class TlsFileError extends Error {
  readonly code = 'WSPLICE_TLS_FILE';
  constructor(message: string) {
    super(message);
    this.name = 'TlsFileError';
  }
}

export interface CertificateSet {
  /** Options of the first certificate: clients that send no SNI get it. */
  defaultOptions: SecureContextOptions;
  default: SecureContext;
  exact: Map<string, SecureContext>;
  /** `*.example.com` -> keyed by `example.com`. */
  wildcard: Map<string, SecureContext>;
  warnings: string[];
  /** Every file read, for the watcher. */
  files: string[];
  /** Each certificate's names and expiry, for -T and logs. */
  summary: Array<{ names: string[]; notAfter: string; fingerprint: string }>;
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsFileError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The DNS names a certificate is for (its subjectAltName, else its CN). */
function certNames(x: X509Certificate): string[] {
  const san = x.subjectAltName;
  if (san !== undefined) {
    const dns = san.split(', ').filter((e) => e.startsWith('DNS:')).map((e) => e.slice(4).toLowerCase());
    if (dns.length > 0) return dns;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject);
  return cn !== null ? [cn[1]!.toLowerCase()] : [];
}

function loadOne(
  t: ResolvedListenerTls,
  c: ResolvedListenerTls['certificates'][number],
  shared: { ticketKeys: Buffer; ca: Buffer | null },
  warnings: string[],
): { options: SecureContextOptions; context: SecureContext; names: string[]; x: X509Certificate } {
  const cert = read(c.cert, 'certificate');
  const key = read(c.key, 'key');
  let x: X509Certificate;
  try {
    x = new X509Certificate(cert);
  } catch (err) {
    throw new TlsFileError(`${c.cert}: not a PEM certificate (${(err as Error).message})`);
  }
  let pkey;
  try {
    pkey = createPrivateKey(c.passphrase === null ? key : { key, passphrase: c.passphrase });
  } catch (err) {
    throw new TlsFileError(`${c.key}: not a usable private key (${(err as Error).message})`);
  }
  if (!x.checkPrivateKey(pkey)) throw new TlsFileError(`${c.key} does not match the certificate ${c.cert}`);
  const now = Date.now();
  if (Date.parse(x.validTo) < now) warnings.push(`${c.cert} expired on ${x.validTo}`);
  else if (Date.parse(x.validFrom) > now) warnings.push(`${c.cert} is not valid before ${x.validFrom}`);
  const options: SecureContextOptions = {
    cert, key,
    minVersion: t.minVersion,
    maxVersion: t.maxVersion,
    sessionTimeout: t.sessionTimeoutSec,
    // One set of ticket keys per listener, kept across reloads: a resumed session may land on any certificate.
    ticketKeys: shared.ticketKeys,
  };
  if (c.passphrase !== null) options.passphrase = c.passphrase;
  if (t.ciphers !== null) options.ciphers = t.ciphers;
  if (shared.ca !== null) options.ca = shared.ca;
  if (!t.sessionTickets) options.secureOptions = constants.SSL_OP_NO_TICKET;
  let context: SecureContext;
  try {
    context = tls.createSecureContext(options);
  } catch (err) {
    throw new TlsFileError(`${c.cert}: ${(err as Error).message}`);
  }
  return { options, context, names: c.serverNames ?? certNames(x), x };
}

/** Read every file of a listener's TLS options. Throws TlsFileError with the reason. */
export function loadCertificates(t: ResolvedListenerTls, ticketKeys: Buffer): CertificateSet {
  const warnings: string[] = [];
  const files: string[] = [];
  let ca: Buffer | null = null;
  if (t.clientCa !== null) {
    ca = read(t.clientCa, 'client CA');
    files.push(t.clientCa);
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new TlsFileError(`${t.clientCa}: not a PEM certificate (${(err as Error).message})`);
    }
  }
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  const summary: CertificateSet['summary'] = [];
  let first: ReturnType<typeof loadOne> | null = null;
  for (const c of t.certificates) {
    const one = loadOne(t, c, { ticketKeys, ca }, warnings);
    files.push(c.cert, c.key);
    first ??= one;
    for (const n of one.names) {
      // The first certificate naming a name keeps it (nginx: the first server_name match).
      if (n.startsWith('*.')) {
        if (!wildcard.has(n.slice(2))) wildcard.set(n.slice(2), one.context);
      } else if (!exact.has(n)) exact.set(n, one.context);
    }
    summary.push({ names: one.names, notAfter: one.x.validTo, fingerprint: one.x.fingerprint256 });
  }
  return { defaultOptions: first!.options, default: first!.context, exact, wildcard, warnings, files, summary };
}

/** The context for an SNI name: exact, then `*.parent`, then the default. */
export function contextFor(set: CertificateSet, servername: string): SecureContext {
  const n = servername.toLowerCase();
  const e = set.exact.get(n);
  if (e !== undefined) return e;
  const dot = n.indexOf('.');
  if (dot !== -1) {
    const w = set.wildcard.get(n.slice(dot + 1));
    if (w !== undefined) return w;
  }
  return set.default;
}
