/**
 * Reading the configuration file named by `-c`: JSON when the name ends in
 * `.json`, otherwise nginx syntax. Either way the result is the one options
 * object, with the file:line of each field for the checks that follow.
 */
import { readFileSync } from 'node:fs';
import { parseJsonConfig, type LoadedConfig } from '../config/json.js';
import { loadNginxConfig } from '../config/nginx/read.js';
import { ConfigError } from '../errors.js';
import type { Issues } from '../config/issues.js';
import type { ListenTarget } from '../server.js';
import type { ListenerEdgeOptions } from '../tls/listener.js';
import { resolveListenerTls } from '../tls/options.js';

export function loadConfigFile(file: string, is: Issues): LoadedConfig | null {
  if (!file.endsWith('.json')) return loadNginxConfig(file, is);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    is.error('--config', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return null;
  }
  const r = parseJsonConfig(text, file);
  if ('severity' in r) {
    is.add(r);
    return null;
  }
  return r;
}

/** A `listen` entry of a config file: an address string, or an object with one and the listener's edge options. */
export type ListenEntry = string | ({ address: string } & ListenerEdgeOptions);

/** A listen entry -> a listen target (TLS and PROXY options carried through, checked for shape). */
export function parseListenEntry(e: ListenEntry, field: string): ListenTarget {
  if (typeof e === 'string') return parseListen(e);
  const { address, tls, proxyProtocol, ...rest } = e;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new ConfigError(`${field}.${unknown[0]}`, 'unknown key (a listen entry takes address, tls, proxyProtocol)');
  if (typeof address !== 'string') throw new ConfigError(`${field}.address`, 'must be "HOST:PORT", "[v6]:PORT", "PORT" or "unix:/path"');
  if (proxyProtocol !== undefined && typeof proxyProtocol !== 'boolean') throw new ConfigError(`${field}.proxyProtocol`, 'must be true or false');
  if (tls !== undefined) resolveListenerTls(tls, `${field}.tls`);
  return { ...parseListen(address), ...(tls !== undefined ? { tls } : {}), ...(proxyProtocol !== undefined ? { proxyProtocol } : {}) };
}

/** `HOST:PORT`, `[v6]:PORT`, `PORT` or `unix:/path` -> a listen target. */
export function parseListen(s: string): { host?: string; port?: number; path?: string } {
  if (s.startsWith('unix:')) return { path: s.slice(5) };
  if (/^\d+$/.test(s)) return { host: '127.0.0.1', port: checkPort(Number(s), s) };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (m === null) throw new ConfigError('--listen', `expects HOST:PORT, [v6]:PORT or unix:/path, got "${s}"`);
  return { host: m[1] ?? m[2]!, port: checkPort(Number(m[3]), s) };
}

function checkPort(p: number, s: string): number {
  if (p > 65535) throw new ConfigError('--listen', `port out of range in "${s}" (0-65535)`);
  return p;
}

/** Every listen entry as a target; a bad one is reported in `is` with its field (listen[i]...) and left out. */
export function listenTargets(listen: readonly ListenEntry[], is: Issues): ListenTarget[] {
  const targets: ListenTarget[] = [];
  listen.forEach((l, i) => {
    try {
      targets.push(parseListenEntry(l, `listen[${i}]`));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      is.error(err.field || `listen[${i}]`, err.message.replace(/^[^:]*: /, ''));
    }
  });
  return targets;
}
