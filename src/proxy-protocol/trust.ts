/**
 * Trusted sources for the PROXY protocol (nginx `set_real_ip_from`): only
 * these may tell us who the client is. Addresses and CIDR blocks, IPv4 and
 * IPv6, matched with node:net's BlockList.
 */
import net from 'node:net';
import { ConfigError } from '../errors.js';

export class TrustList {
  private readonly list = new net.BlockList();
  /** As given, for messages and -T. */
  readonly entries: readonly string[];

  constructor(entries: readonly string[]) {
    this.entries = entries;
    for (const e of entries) {
      const [addr, bits] = e.split('/') as [string, string | undefined];
      const family = net.isIPv4(addr) ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(addr, family);
      else this.list.addSubnet(addr, Number(bits), family);
    }
  }

  get size(): number {
    return this.entries.length;
  }

  /** Whether a socket's peer address is trusted. IPv4-mapped IPv6 peers match their IPv4 rules. */
  has(address: string | undefined): boolean {
    if (address === undefined || address === '') return false;
    if (net.isIPv4(address)) return this.list.check(address, 'ipv4');
    if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) {
      return this.list.check(address.slice(7), 'ipv4') || this.list.check(address, 'ipv6');
    }
    return net.isIPv6(address) && this.list.check(address, 'ipv6');
  }
}

/** One entry: an IPv4/IPv6 address or CIDR block. Returns the reason it is not, or null. */
export function checkTrustEntry(e: string): string | null {
  const [addr, bits, extra] = e.split('/');
  if (extra !== undefined || addr === undefined) return 'must be an address or CIDR block';
  const v4 = net.isIPv4(addr);
  if (!v4 && !net.isIPv6(addr)) return `"${addr}" is not an IPv4 or IPv6 address`;
  if (bits !== undefined) {
    const max = v4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `prefix length must be 0..${max}`;
  }
  return null;
}

/** `realIpFrom` (set_real_ip_from): a list of addresses or CIDR blocks. */
export function resolveRealIpFrom(v: unknown, field = 'realIpFrom'): TrustList {
  if (v === undefined) return new TrustList([]);
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw new ConfigError(field, 'must be an array of addresses or CIDR blocks');
  list.forEach((e: unknown, i: number) => {
    if (typeof e !== 'string') throw new ConfigError(`${field}[${i}]`, 'must be an address or CIDR block');
    const why = checkTrustEntry(e);
    if (why !== null) throw new ConfigError(`${field}[${i}]`, why);
  });
  return new TrustList(list as string[]);
}
