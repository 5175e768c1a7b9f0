/**
 * The PROXY protocol header (versions 1 and 2), parsed from the first bytes
 * of a connection. Pure: bytes in, a verdict out. The header is bounded (v1
 * at most 107 bytes, v2 at most 16 + `maxV2Payload`), so a caller never holds
 * more than that while waiting for the rest.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface ProxyEndpoint {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export interface ProxyHeader {
  version: 1 | 2;
  /**
   * 'proxy': the addresses below are the real client and the address it reached.
   * 'local': a health check or the balancer's own connection; use the socket's
   * own addresses (as are v1 UNKNOWN and v2 AF_UNSPEC, which carry none).
   */
  command: 'proxy' | 'local';
  source: ProxyEndpoint | null;
  destination: ProxyEndpoint | null;
  /** Bytes the header took; what follows is the client's stream. */
  length: number;
}

export type ParseResult =
  | { kind: 'more' }
  | { kind: 'done'; header: ProxyHeader }
  | { kind: 'error'; reason: string };

/** The longest v1 line, CRLF included. */
export const V1_MAX = 107;
/** Default bound on the v2 address block and TLVs (the balancers in use send far less). */
export const V2_DEFAULT_MAX_PAYLOAD = 2048;

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const MORE: ParseResult = { kind: 'more' };

function error(reason: string): ParseResult {
  return { kind: 'error', reason };
}

/** Whether `buf` is a prefix of `sig` or starts with it. */
function matchesPrefix(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  return buf.subarray(0, n).equals(sig.subarray(0, n));
}

/** Parse the header at the start of `buf` (everything received so far). */
export function parseProxyHeader(buf: Buffer, maxV2Payload = V2_DEFAULT_MAX_PAYLOAD): ParseResult {
  if (buf.length === 0) return MORE;
  if (matchesPrefix(buf, V2_SIGNATURE)) return buf.length < 16 ? MORE : parseV2(buf, maxV2Payload);
  if (matchesPrefix(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? MORE : parseV1(buf);
  return error('no PROXY protocol header');
}

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

function v1Endpoint(addr: string, port: string, family: 'IPv4' | 'IPv6'): ProxyEndpoint | null {
  const ok = family === 'IPv4' ? isIPv4(addr) : isIPv6(addr);
  if (!ok || !PORT.test(port) || Number(port) > 65535) return null;
  return { address: addr, port: Number(port), family };
}

function parseV1(buf: Buffer): ParseResult {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end === -1) return buf.length >= V1_MAX ? error('v1 header longer than 107 bytes') : MORE;
  if (end + 2 > V1_MAX) return error('v1 header longer than 107 bytes');
  const line = buf.toString('latin1', V1_PREFIX.length, end);
  if (/[^\x20-\x7e]/.test(line)) return error('v1 header has a control or non-ASCII byte');
  const parts = line.split(' ');
  const length = end + 2;
  // UNKNOWN: the rest of the line is to be ignored, and the socket's own addresses used.
  if (parts[0] === 'UNKNOWN') return { kind: 'done', header: { version: 1, command: 'local', source: null, destination: null, length } };
  if (parts.length !== 5 || (parts[0] !== 'TCP4' && parts[0] !== 'TCP6')) return error(`v1 header malformed: "${line.slice(0, 60)}"`);
  const family = parts[0] === 'TCP4' ? 'IPv4' : 'IPv6';
  const source = v1Endpoint(parts[1]!, parts[3]!, family);
  const destination = v1Endpoint(parts[2]!, parts[4]!, family);
  if (source === null || destination === null) return error(`v1 header has a bad ${family} address or port`);
  return { kind: 'done', header: { version: 1, command: 'proxy', source, destination, length } };
}

function ipv6At(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
  // Canonical form (zeros compressed) through the URL parser's IPv6 serializer.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function parseV2(buf: Buffer, maxPayload: number): ParseResult {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return error(`v2 header with version ${verCmd >> 4}`);
  const command = verCmd & 0x0f;
  if (command > 1) return error(`v2 header with unknown command ${command}`);
  const famProto = buf[13]!;
  const payload = buf.readUInt16BE(14);
  if (payload > maxPayload) return error(`v2 header of ${payload} bytes (more than ${maxPayload})`);
  const length = 16 + payload;
  if (buf.length < length) return MORE;
  const base = { version: 2 as const, length };
  // LOCAL: the addresses, if any, are not the client's; skip them.
  if (command === 0) return { kind: 'done', header: { ...base, command: 'local', source: null, destination: null } };
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family === 0 || transport === 0) {
    return { kind: 'done', header: { ...base, command: 'local', source: null, destination: null } }; // AF_UNSPEC
  }
  if (transport !== 1) return error('v2 header for a datagram transport');
  if (family === 1) {
    if (payload < 12) return error('v2 IPv4 header shorter than its addresses');
    const ip = (at: number): string => `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
    const source: ProxyEndpoint = { address: ip(16), port: buf.readUInt16BE(24), family: 'IPv4' };
    const destination: ProxyEndpoint = { address: ip(20), port: buf.readUInt16BE(26), family: 'IPv4' };
    return { kind: 'done', header: { ...base, command: 'proxy', source, destination } };
  }
  if (family === 2) {
    if (payload < 36) return error('v2 IPv6 header shorter than its addresses');
    const source: ProxyEndpoint = { address: ipv6At(buf, 16), port: buf.readUInt16BE(48), family: 'IPv6' };
    const destination: ProxyEndpoint = { address: ipv6At(buf, 32), port: buf.readUInt16BE(50), family: 'IPv6' };
    return { kind: 'done', header: { ...base, command: 'proxy', source, destination } };
  }
  if (family === 3) {
    // AF_UNIX: no network address to report; the socket's own is kept.
    if (payload < 216) return error('v2 unix header shorter than its addresses');
    return { kind: 'done', header: { ...base, command: 'local', source: null, destination: null } };
  }
  return error(`v2 header with unknown address family ${family}`);
}
