// Minimal request-head parsing for the echo backend (heads are small; strings are fine here).

export interface RequestHead {
  method: string;
  path: string;
  http10: boolean;
  /** Header names lower-cased; a repeated header keeps its last value. */
  headers: Map<string, string>;
}

/** Parses `text` (the head without its final CRLF CRLF); null when it is not a request head. */
export function parseRequestHead(text: string): RequestHead | null {
  const lines = text.split('\r\n');
  const first = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? '');
  if (!first) return null;
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { method: first[1]!, path: first[2]!, http10: first[3] === '0', headers };
}

/** True when a comma-separated header value contains `token` (case-insensitive). */
export function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  return value.split(',').some((v) => v.trim().toLowerCase() === token);
}
