/**
 * The head model: a parsed request or response head as strings, made once
 * when llhttp reports the head complete. Payload bytes never become strings.
 */
import type { Parser } from './llhttp.js';

export interface Head {
  /** Raw header pairs in arrival order: names as sent, values without surrounding OWS. */
  readonly names: string[];
  /** Lower-cased names, index-aligned with `names`. */
  readonly keys: string[];
  readonly values: string[];
  readonly versionMajor: number;
  readonly versionMinor: number;
  /** llhttp flags (F_CHUNKED, F_CONTENT_LENGTH, ...). */
  readonly flags: number;
  readonly contentLength: number;
  /** Bytes of head on the wire (start line through the blank line). */
  readonly headBytes: number;
}

export interface RequestHead extends Head {
  readonly method: string;
  readonly target: string;
}

export interface ResponseHead extends Head {
  readonly status: number;
  readonly reason: string;
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** Strip the optional whitespace llhttp may leave at the end of a value span. */
function trimOws(s: string): string {
  let end = s.length;
  while (end > 0 && isOws(s.charCodeAt(end - 1))) end--;
  let start = 0;
  while (start < end && isOws(s.charCodeAt(start))) start++;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/**
 * The fields every head has. Header strings are slices of one latin1 decode
 * of the whole head: one call into the Buffer binding per head instead of two
 * per header.
 */
function readHead(p: Parser, text: string): Head {
  const names: string[] = [];
  const keys: string[] = [];
  const values: string[] = [];
  const s = p.spans;
  for (let i = 0; i < p.headerCount; i++) {
    const o = i * 4;
    const at = s[o]!;
    const name = text.slice(at, at + s[o + 1]!);
    names.push(name);
    keys.push(name.toLowerCase());
    const vat = s[o + 2]!;
    values.push(trimOws(text.slice(vat, vat + s[o + 3]!)));
  }
  return {
    names, keys, values,
    versionMajor: p.versionMajor,
    versionMinor: p.versionMinor,
    flags: p.flags,
    contentLength: p.contentLength,
    headBytes: p.headBytes,
  };
}

export function readRequestHead(p: Parser): RequestHead {
  const text = p.text(0, p.headBytes);
  const h = readHead(p, text) as Head & { method: string; target: string };
  h.method = p.method;
  h.target = text.slice(p.urlAt, p.urlAt + p.urlLen);
  return h;
}

export function readResponseHead(p: Parser): ResponseHead {
  const text = p.text(0, p.headBytes);
  const h = readHead(p, text) as Head & { status: number; reason: string };
  h.status = p.statusCode;
  h.reason = text.slice(p.statusAt, p.statusAt + p.statusLen);
  return h;
}

/** Every value of header `key` (lower case), in order. */
export function getAll(h: Head, key: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.keys.length; i++) if (h.keys[i] === key) out.push(h.values[i]!);
  return out;
}

/** How many times header `key` appears. */
export function count(h: Head, key: string): number {
  let n = 0;
  for (let i = 0; i < h.keys.length; i++) if (h.keys[i] === key) n++;
  return n;
}

/** The only value of `key`, or undefined when absent; null when repeated. */
export function getOne(h: Head, key: string): string | undefined | null {
  let found: string | undefined;
  for (let i = 0; i < h.keys.length; i++) {
    if (h.keys[i] !== key) continue;
    if (found !== undefined) return null;
    found = h.values[i]!;
  }
  return found;
}

/**
 * The comma-separated tokens of every `key` header, lower-cased, empty
 * elements dropped (RFC 9110 5.6.1: `#token` lists, may span several lines).
 */
export function tokens(h: Head, key: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.keys.length; i++) {
    if (h.keys[i] !== key) continue;
    const v = h.values[i]!;
    if (!v.includes(',')) {
      // One token (`close`, `keep-alive`, `upgrade`): no array of parts.
      const t = trimOws(v).toLowerCase();
      if (t !== '') out.push(t);
      continue;
    }
    for (const part of v.split(',')) {
      const t = trimOws(part).toLowerCase();
      if (t !== '') out.push(t);
    }
  }
  return out;
}
