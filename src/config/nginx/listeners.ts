/**
 * `listen` lines onto listen entries {address, tls, proxyProtocol}: one per
 * address over all server blocks. An `ssl` address takes the certificates of
 * every server block on it (SNI picks by server_name) and the ssl_* settings
 * of the first.
 */
import { merged, type Build, type ListenSpec, type ServerScope } from './build.js';

type Entry = { address: string; tls?: Record<string, unknown>; proxyProtocol?: boolean };

const TLS_KEYS = ['protocols', 'ciphers', 'sessionTimeoutSec', 'sessionTickets', 'clientCa', 'verifyClient'];

function certificate(srv: ServerScope, l: ListenSpec, b: Build): Record<string, unknown> | null {
  const s = merged(srv.settings, 'ssl');
  if (s.passphraseFile !== undefined) b.notYet(s.passphraseFile.at, '"ssl_password_file"');
  if (s.cert === undefined || s.key === undefined) {
    b.error(l.at, `no "ssl_certificate${s.cert === undefined ? '' : '_key'}" is defined for the "listen ... ssl" directive`);
    return null;
  }
  const names = srv.names.map((n) => n.name).filter((n) => !n.startsWith('~'));
  return { cert: s.cert.value, key: s.key.value, ...(names.length > 0 ? { serverNames: names } : {}) };
}

function tlsSettings(srv: ServerScope): Record<string, unknown> {
  const s = merged(srv.settings, 'ssl');
  return Object.fromEntries(TLS_KEYS.filter((k) => s[k] !== undefined).map((k) => [k, s[k]!.value]));
}

export function listenEntries(b: Build): Array<string | Entry> {
  const byAddr = new Map<string, { e: Entry; ssl: boolean; pp: boolean }>();
  for (const srv of b.servers) {
    const specs: ListenSpec[] = srv.listen.length > 0 ? srv.listen : [{ address: '0.0.0.0:80', defaultServer: false, ssl: false, proxyProtocol: false, at: srv.at }];
    for (const l of specs) {
      let cur = byAddr.get(l.address);
      if (cur === undefined) {
        cur = { e: { address: l.address }, ssl: l.ssl, pp: l.proxyProtocol };
        byAddr.set(l.address, cur);
        b.where.set(`listen[${byAddr.size - 1}]`, { file: l.at.file, line: l.at.line });
        if (l.ssl) cur.e.tls = { certificates: [], ...tlsSettings(srv) };
        if (l.proxyProtocol) cur.e.proxyProtocol = true;
      } else if (cur.ssl !== l.ssl || cur.pp !== l.proxyProtocol) {
        b.error(l.at, `listen ${l.address}: "ssl" and "proxy_protocol" must be the same on every server block using it`);
        continue;
      }
      const cert = l.ssl ? certificate(srv, l, b) : null;
      if (cert !== null) (cur.e.tls!.certificates as unknown[]).push(cert);
    }
  }
  return [...byAddr.values()].map(({ e }) => (e.tls === undefined && e.proxyProtocol === undefined ? e.address : e));
}
