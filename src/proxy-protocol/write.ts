/**
 * The PROXY header wsplice sends to a backend configured for it (HAProxy's
 * `send-proxy` / `send-proxy-v2`): who the client is and which address it
 * reached, written before the request head, once per upstream connection.
 */
import net, { type Socket } from 'node:net';
import { V2_SIGNATURE, type ProxyEndpoint } from './parse.js';
import { peerOf } from './peer.js';

export type ProxySendVersion = 'v1' | 'v2';

function endpoint(address: string | undefined, port: number | undefined): ProxyEndpoint | null {
  if (address === undefined || port === undefined) return null;
  if (net.isIPv4(address)) return { address, port, family: 'IPv4' };
  if (net.isIPv6(address)) return { address, port, family: 'IPv6' };
  return null;
}

/** As IPv6 (IPv4-mapped) when the two ends differ in family; both must be of one in a header. */
function toV6(e: ProxyEndpoint): ProxyEndpoint {
  return e.family === 'IPv6' ? e : { address: `::ffff:${e.address}`, port: e.port, family: 'IPv6' };
}

/** The client's two ends as seen by the proxy (after any PROXY header it received). */
export function clientEnds(client: Socket): { source: ProxyEndpoint; destination: ProxyEndpoint } | null {
  const peer = peerOf(client);
  const src = peer?.source ?? endpoint(client.remoteAddress, client.remotePort);
  const dst = peer?.destination ?? endpoint(client.localAddress, client.localPort);
  if (src === null || dst === null) return null; // a unix socket client: nothing to tell
  if (src.family === dst.family) return { source: src, destination: dst };
  return { source: toV6(src), destination: toV6(dst) };
}

export function proxyHeaderV1(ends: { source: ProxyEndpoint; destination: ProxyEndpoint } | null): Buffer {
  if (ends === null) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const { source: s, destination: d } = ends;
  const fam = s.family === 'IPv4' ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${fam} ${s.address} ${d.address} ${s.port} ${d.port}\r\n`, 'latin1');
}

function ipv4Bytes(a: string, out: Buffer, at: number): void {
  const p = a.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(p[i]);
}

function ipv6Bytes(a: string, out: Buffer, at: number): void {
  // Expand '::' and an embedded IPv4 tail into eight 16-bit groups.
  let s = a;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4 !== null) {
    const p = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + `${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(groups[i] ?? '0', 16), at + i * 2);
}

export function proxyHeaderV2(ends: { source: ProxyEndpoint; destination: ProxyEndpoint } | null): Buffer {
  if (ends === null) {
    // PROXY command, AF_UNSPEC: the receiver keeps the connection's own addresses.
    const out = Buffer.alloc(16);
    V2_SIGNATURE.copy(out, 0);
    out[12] = 0x21;
    out[13] = 0x00;
    return out;
  }
  const v4 = ends.source.family === 'IPv4';
  const len = v4 ? 12 : 36;
  const out = Buffer.alloc(16 + len);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = v4 ? 0x11 : 0x21; // AF_INET or AF_INET6, STREAM
  out.writeUInt16BE(len, 14);
  if (v4) {
    ipv4Bytes(ends.source.address, out, 16);
    ipv4Bytes(ends.destination.address, out, 20);
    out.writeUInt16BE(ends.source.port, 24);
    out.writeUInt16BE(ends.destination.port, 26);
  } else {
    ipv6Bytes(ends.source.address, out, 16);
    ipv6Bytes(ends.destination.address, out, 32);
    out.writeUInt16BE(ends.source.port, 48);
    out.writeUInt16BE(ends.destination.port, 50);
  }
  return out;
}

/** The header for `client`'s upstream connection. */
export function proxyHeaderFor(client: Socket, version: ProxySendVersion): Buffer {
  const ends = clientEnds(client);
  return version === 'v1' ? proxyHeaderV1(ends) : proxyHeaderV2(ends);
}
