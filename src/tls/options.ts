/**
 * TLS options: a listener's (certificates by server name, protocols,
 * ciphers, sessions, client certificates) and an upstream's (verification,
 * SNI, client certificate, session reuse). Validation checks shapes only;
 * the files are read when the listener is built (certificates.ts), so a
 * reload can re-read them.
 */
import { ConfigError } from '../errors.js';

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
const VERSIONS: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

export interface TlsCertificateConfig {
  /** PEM file: the certificate, then its chain (nginx ssl_certificate). */
  cert: string;
  /** PEM file: its private key (ssl_certificate_key). */
  key: string;
  /** Names it serves (the server block's server_name; `*.example.com` too). Default: the certificate's own DNS names. */
  serverNames?: string[];
  passphrase?: string;
}

export interface ListenerTlsConfig {
  /** One or more; SNI picks by name, the first serves clients that name none or an unknown one. */
  certificates: TlsCertificateConfig[];
  /** ssl_protocols; default TLSv1.2 and TLSv1.3. */
  protocols?: TlsVersion[];
  /** ssl_ciphers (TLS 1.2 suites, OpenSSL syntax); default Node's. */
  ciphers?: string;
  /** ssl_session_timeout, seconds; default 300. */
  sessionTimeoutSec?: number;
  /** ssl_session_tickets; default true. Off: a bounded server-side session cache instead. */
  sessionTickets?: boolean;
  /** ssl_client_certificate: CA file for client certificates (mTLS). */
  clientCa?: string;
  /** ssl_verify_client; default 'off'. 'on' needs clientCa. */
  verifyClient?: 'off' | 'on' | 'optional';
  /** Re-read the files when they change (default true). */
  watch?: boolean;
}

export interface ResolvedListenerTls {
  certificates: Array<{ cert: string; key: string; serverNames: string[] | null; passphrase: string | null }>;
  minVersion: TlsVersion;
  maxVersion: TlsVersion;
  ciphers: string | null;
  sessionTimeoutSec: number;
  sessionTickets: boolean;
  clientCa: string | null;
  verifyClient: 'off' | 'on' | 'optional';
  watch: boolean;
}

export interface UpstreamTlsConfig {
  /** Verify the backend's certificate (default true; nginx proxy_ssl_verify). */
  verify?: boolean;
  /** CA file to verify against (proxy_ssl_trusted_certificate); default Node's root store. */
  ca?: string;
  /** SNI and the name verified (proxy_ssl_name); false sends none (proxy_ssl_server_name off). Default: the backend's host name. */
  serverName?: string | false;
  /** Client certificate and key (proxy_ssl_certificate / _key). */
  cert?: string;
  key?: string;
  /** Reuse TLS sessions to a backend (proxy_ssl_session_reuse, default true). */
  sessionReuse?: boolean;
  protocols?: TlsVersion[];
  ciphers?: string;
}

export interface ResolvedUpstreamTls {
  verify: boolean;
  ca: string | null;
  /** undefined: the backend's host name when it is one (not an IP); false: no SNI. */
  serverName: string | false | undefined;
  cert: string | null;
  key: string | null;
  sessionReuse: boolean;
  minVersion: TlsVersion;
  maxVersion: TlsVersion;
  ciphers: string | null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ConfigError(`${field}.${k}`, `unknown option (expected one of ${allowed.join(', ')})`);
  }
}

function path(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '' || v.includes('\0')) throw new ConfigError(field, 'must be a file path');
  return v;
}

function optPath(v: unknown, field: string): string | null {
  return v === undefined || v === null ? null : path(v, field);
}

function bool(v: unknown, field: string, def: boolean): boolean {
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw new ConfigError(field, 'must be a boolean');
  return v;
}

/** ssl_protocols: the listed versions, which must be contiguous (OpenSSL takes a range). */
function versions(v: unknown, field: string): { minVersion: TlsVersion; maxVersion: TlsVersion } {
  if (v === undefined) return { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' };
  if (!Array.isArray(v) || v.length === 0) throw new ConfigError(field, `must be a non-empty array of ${VERSIONS.join(', ')}`);
  const idx = v.map((p: unknown) => {
    const i = VERSIONS.indexOf(p as TlsVersion);
    if (i === -1) throw new ConfigError(field, `unknown protocol ${JSON.stringify(p)} (expected ${VERSIONS.join(', ')})`);
    return i;
  });
  const lo = Math.min(...idx);
  const hi = Math.max(...idx);
  if (new Set(idx).size !== hi - lo + 1) throw new ConfigError(field, 'must be a contiguous range of versions (e.g. TLSv1.2 TLSv1.3)');
  return { minVersion: VERSIONS[lo]!, maxVersion: VERSIONS[hi]! };
}

function ciphers(v: unknown, field: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v === '' || /[\r\n\0]/.test(v)) throw new ConfigError(field, 'must be an OpenSSL cipher list');
  return v;
}

const NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

function certificate(c: unknown, field: string): ResolvedListenerTls['certificates'][number] {
  if (!isObject(c)) throw new ConfigError(field, 'must be { cert, key, serverNames? }');
  checkKeys(c, field, ['cert', 'key', 'serverNames', 'passphrase']);
  let serverNames: string[] | null = null;
  if (c.serverNames !== undefined) {
    if (!Array.isArray(c.serverNames) || c.serverNames.some((n) => typeof n !== 'string' || !NAME.test(n))) {
      throw new ConfigError(`${field}.serverNames`, 'must be an array of host names (exact or *.wildcard)');
    }
    serverNames = (c.serverNames as string[]).map((n) => n.toLowerCase());
  }
  if (c.passphrase !== undefined && typeof c.passphrase !== 'string') throw new ConfigError(`${field}.passphrase`, 'must be a string');
  return { cert: path(c.cert, `${field}.cert`), key: path(c.key, `${field}.key`), serverNames, passphrase: (c.passphrase as string | undefined) ?? null };
}

/** A listener's `tls` object. */
export function resolveListenerTls(v: unknown, field = 'tls'): ResolvedListenerTls {
  if (!isObject(v)) throw new ConfigError(field, 'must be an object with certificates');
  checkKeys(v, field, ['certificates', 'protocols', 'ciphers', 'sessionTimeoutSec', 'sessionTickets', 'clientCa', 'verifyClient', 'watch']);
  if (!Array.isArray(v.certificates) || v.certificates.length === 0) throw new ConfigError(`${field}.certificates`, 'must be a non-empty array of { cert, key }');
  const certificates = v.certificates.map((c: unknown, i: number) => certificate(c, `${field}.certificates[${i}]`));
  const st = v.sessionTimeoutSec ?? 300;
  if (typeof st !== 'number' || !Number.isInteger(st) || st < 1) throw new ConfigError(`${field}.sessionTimeoutSec`, 'must be an integer >= 1');
  const verifyClient = v.verifyClient ?? 'off';
  if (verifyClient !== 'off' && verifyClient !== 'on' && verifyClient !== 'optional') {
    throw new ConfigError(`${field}.verifyClient`, 'must be "off", "on" or "optional"');
  }
  const clientCa = optPath(v.clientCa, `${field}.clientCa`);
  if (verifyClient !== 'off' && clientCa === null) throw new ConfigError(`${field}.clientCa`, `verifyClient "${verifyClient}" needs a CA file`);
  return {
    certificates,
    ...versions(v.protocols, `${field}.protocols`),
    ciphers: ciphers(v.ciphers, `${field}.ciphers`),
    sessionTimeoutSec: st,
    sessionTickets: bool(v.sessionTickets, `${field}.sessionTickets`, true),
    clientCa,
    verifyClient,
    watch: bool(v.watch, `${field}.watch`, true),
  };
}

/** An upstream's `tls` object (`{}` or `true`: verify against Node's root store). */
export function resolveUpstreamTls(v: unknown, field = 'tls'): ResolvedUpstreamTls | null {
  if (v === undefined || v === null || v === false) return null;
  const o = v === true ? {} : v;
  if (!isObject(o)) throw new ConfigError(field, 'must be an object (or true)');
  checkKeys(o, field, ['verify', 'ca', 'serverName', 'cert', 'key', 'sessionReuse', 'protocols', 'ciphers']);
  let serverName: string | false | undefined;
  if (o.serverName === false) serverName = false;
  else if (o.serverName !== undefined) {
    if (typeof o.serverName !== 'string' || !NAME.test(o.serverName) || o.serverName.startsWith('*')) {
      throw new ConfigError(`${field}.serverName`, 'must be a host name or false');
    }
    serverName = o.serverName;
  }
  const cert = optPath(o.cert, `${field}.cert`);
  const key = optPath(o.key, `${field}.key`);
  if ((cert === null) !== (key === null)) throw new ConfigError(`${field}.${cert === null ? 'cert' : 'key'}`, 'cert and key go together');
  return {
    verify: bool(o.verify, `${field}.verify`, true),
    ca: optPath(o.ca, `${field}.ca`),
    serverName,
    cert,
    key,
    sessionReuse: bool(o.sessionReuse, `${field}.sessionReuse`, true),
    ...versions(o.protocols, `${field}.protocols`),
    ciphers: ciphers(o.ciphers, `${field}.ciphers`),
  };
}
