/** nginx's value syntaxes: times ("1m30s", "500ms", "60"), sizes ("8k"), on/off. */

const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };

/** Milliseconds, or null when malformed. A bare number is seconds, as in nginx. */
export function parseTime(s: string): number | null {
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const re = /(\d+)(ms|s|m|h|d|w|M|y)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (m === null) return null;
    total += Number(m[1]) * TIME_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  return s === '' ? null : total;
}

/** Bytes, or null. */
export function parseSize(s: string): number | null {
  const m = /^(\d+)([kKmMgG]?)$/.exec(s);
  if (m === null) return null;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

export function parseFlag(s: string): boolean | null {
  return s === 'on' ? true : s === 'off' ? false : null;
}

/**
 * A listen address as nginx writes it: `8080`, `127.0.0.1:8080`, `[::1]:8080`,
 * `*:80`, `localhost:80`, `unix:/path`. Returns the wsplice form or an error.
 */
export function parseListenAddress(s: string): { address: string } | { error: string } {
  if (s.startsWith('unix:')) return { address: s };
  let host = '0.0.0.0';
  let port: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(s);
  if (v6 !== null) {
    host = `[${v6[1]!}]`;
    port = v6[2] ?? '80';
  } else if (/^\d+$/.test(s)) {
    port = s;
  } else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(s);
    if (m === null) return { error: `invalid listen address "${s}"` };
    host = m[1] === '*' ? '0.0.0.0' : m[1]!;
    port = m[2] ?? '80';
  }
  const n = Number(port);
  // Port 0 (an ephemeral port) is wsplice's own extension, for tests and embedding.
  if (!Number.isInteger(n) || n < 0 || n > 65535) return { error: `invalid port in "${s}" of the "listen" directive (0-65535)` };
  return { address: `${host}:${n}` };
}
