/**
 * Reading the configuration file named by `-c`: JSON when the name ends in
 * `.json`, otherwise nginx syntax. Either way the result is the one options
 * object, with the file:line of each field for the checks that follow.
 */
import { readFileSync } from 'node:fs';
import { parseJsonConfig, type LoadedConfig } from '../config/json.js';
import { ConfigError } from '../errors.js';
import type { Issues } from '../config/issues.js';

export function loadConfigFile(file: string, is: Issues): LoadedConfig | null {
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
