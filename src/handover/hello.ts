/** The first messages: each side says its protocol, record layout and version; a mismatch refuses. */
import { readFileSync } from 'node:fs';
import type { HandoverCalls } from '../relay/addon.js';
import { RECORD_BYTES } from '../relay/native.js';
import { PROTOCOL, type Message } from './channel.js';

let pkgVersion: string | null = null;

/** This package's version (package.json, from src/ or dist/src/). */
export function packageVersion(): string {
  if (pkgVersion !== null) return pkgVersion;
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const v = (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string });
      if (v.name === 'wsplice' && typeof v.version === 'string') return (pkgVersion = v.version);
    } catch {
      // not there from this layout
    }
  }
  return (pkgVersion = 'unknown');
}

export function hello(calls: HandoverCalls): Message {
  return { t: 'hello', protocol: PROTOCOL, version: packageVersion(), recordSize: calls.moved.recordSize, pid: process.pid };
}

/** Why the peer's hello cannot work with this side, or null. A newer package version is fine. */
export function checkHello(calls: HandoverCalls, m: Extract<Message, { t: 'hello' }>): string | null {
  if (m.protocol !== PROTOCOL) return `hand-over protocol ${String(m.protocol)} (version ${String(m.version)}) is not this side's ${PROTOCOL} (version ${packageVersion()})`;
  if (m.recordSize !== calls.moved.recordSize || calls.moved.recordSize !== RECORD_BYTES) {
    return `tunnel record of ${String(m.recordSize)} bytes (version ${String(m.version)}), this side's is ${calls.moved.recordSize}: a native relay built from other sources`;
  }
  return null;
}
