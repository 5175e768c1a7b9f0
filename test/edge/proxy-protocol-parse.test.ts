/**
 * The PROXY header parser and writer on their own: every accepted form, every
 * refusal with its reason, and the bounds (v1 107 bytes, v2 payload cap).
 */
import t from 'tap';
import { parseProxyHeader, V2_SIGNATURE } from '../../src/proxy-protocol/parse.js';
import { proxyHeaderV1, proxyHeaderV2 } from '../../src/proxy-protocol/write.js';
import { checkTrustEntry, resolveRealIpFrom } from '../../src/proxy-protocol/trust.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function v2(verCmd: number, famProto: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(16);
  V2_SIGNATURE.copy(h);
  h[12] = verCmd;
  h[13] = famProto;
  h.writeUInt16BE(payload.length, 14);
  return Buffer.concat([h, payload]);
}

t.test('v1 TCP4, TCP6 and UNKNOWN', async (t) => {
  const r = parseProxyHeader(b('PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n'));
  t.equal(r.kind, 'done');
  if (r.kind !== 'done') return;
  t.same(r.header.source, { address: '192.0.2.7', port: 56324, family: 'IPv4' });
  t.same(r.header.destination, { address: '198.51.100.1', port: 443, family: 'IPv4' });
  t.equal(r.header.length, 'PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n'.length);
  const r6 = parseProxyHeader(b('PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n'));
  t.equal(r6.kind === 'done' && r6.header.source?.address, '2001:db8::1');
  const u = parseProxyHeader(b('PROXY UNKNOWN whatever follows is ignored\r\n'));
  t.equal(u.kind === 'done' && u.header.command, 'local');
  t.equal(u.kind === 'done' && u.header.source, null);
});

t.test('v1 in pieces asks for more until the CRLF', async (t) => {
  const full = b('PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n');
  for (let i = 1; i < full.length; i++) t.equal(parseProxyHeader(full.subarray(0, i)).kind, 'more', `prefix of ${i}`);
  t.equal(parseProxyHeader(full).kind, 'done');
});

t.test('v1 refusals', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['PROXY TCP4 10.0.0.1 10.0.0.2 1000\r\n', /malformed/],
    ['PROXY TCP4 10.0.0.256 10.0.0.2 1000 80\r\n', /bad IPv4/],
    ['PROXY TCP4 2001:db8::1 10.0.0.2 1000 80\r\n', /bad IPv4/],
    ['PROXY TCP6 10.0.0.1 2001:db8::2 1000 80\r\n', /bad IPv6/],
    ['PROXY TCP4 10.0.0.1 10.0.0.2 65536 80\r\n', /port/],
    ['PROXY TCP4 10.0.0.1 10.0.0.2 0080 80\r\n', /port/],
    ['PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n', /malformed/],
    ['PROXY TCP4  10.0.0.1 10.0.0.2 1 2\r\n', /malformed/],
    ['PROXY TCP4 10.0.0.1 10.0.0.2 1 2\0\r\n', /control/],
    ['GET / HTTP/1.1\r\n', /no PROXY protocol header/],
    ['proxy TCP4 10.0.0.1 10.0.0.2 1 2\r\n', /no PROXY protocol header/],
  ];
  for (const [input, re] of cases) {
    const r = parseProxyHeader(b(input));
    t.equal(r.kind, 'error', JSON.stringify(input));
    if (r.kind === 'error') t.match(r.reason, re, JSON.stringify(input));
  }
});

t.test('v1 is bounded at 107 bytes', async (t) => {
  const long = b('PROXY UNKNOWN ' + 'x'.repeat(200));
  const r = parseProxyHeader(long.subarray(0, 107));
  t.equal(r.kind, 'error');
  t.equal(parseProxyHeader(long.subarray(0, 106)).kind, 'more');
  const exact = b('PROXY UNKNOWN ' + 'x'.repeat(107 - 16) + '\r\n');
  t.equal(exact.length, 107);
  t.equal(parseProxyHeader(exact).kind, 'done');
  const over = b('PROXY UNKNOWN ' + 'x'.repeat(108 - 16) + '\r\n');
  t.equal(parseProxyHeader(over).kind, 'error');
});

t.test('v2 IPv4, IPv6, LOCAL, UNSPEC and TLVs', async (t) => {
  const p4 = Buffer.from([192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb]);
  const tlv = Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb]); // PP2_TYPE_NOOP, skipped
  const r = parseProxyHeader(Buffer.concat([v2(0x21, 0x11, Buffer.concat([p4, tlv])), b('GET')]));
  t.equal(r.kind, 'done');
  if (r.kind !== 'done') return;
  t.same(r.header.source, { address: '192.0.2.7', port: 0xdc04, family: 'IPv4' });
  t.same(r.header.destination, { address: '198.51.100.1', port: 443, family: 'IPv4' });
  t.equal(r.header.length, 16 + 12 + 5);
  const p6 = Buffer.alloc(36);
  p6.writeUInt16BE(0x2001, 0); p6.writeUInt16BE(0x0db8, 2); p6[15] = 1;
  p6.writeUInt16BE(0x2001, 16); p6.writeUInt16BE(0x0db8, 18); p6[31] = 2;
  p6.writeUInt16BE(1234, 32); p6.writeUInt16BE(80, 34);
  const r6 = parseProxyHeader(v2(0x21, 0x21, p6));
  t.same(r6.kind === 'done' && r6.header.source, { address: '2001:db8::1', port: 1234, family: 'IPv6' });
  t.same(r6.kind === 'done' && r6.header.destination, { address: '2001:db8::2', port: 80, family: 'IPv6' });
  const local = parseProxyHeader(v2(0x20, 0x11, p4));
  t.equal(local.kind === 'done' && local.header.command, 'local', 'LOCAL: addresses ignored');
  t.equal(local.kind === 'done' && local.header.source, null);
  const unspec = parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0)));
  t.equal(unspec.kind === 'done' && unspec.header.command, 'local');
});

t.test('v2 refusals and bounds', async (t) => {
  const p4 = Buffer.alloc(12);
  const cases: Array<[Buffer, RegExp]> = [
    [v2(0x22, 0x11, p4), /unknown command 2/],
    [v2(0x2f, 0x11, p4), /unknown command 15/],
    [v2(0x11, 0x11, p4), /version 1/],
    [v2(0x21, 0x12, p4), /datagram/],
    [v2(0x21, 0x51, p4), /unknown address family/],
    [v2(0x21, 0x11, Buffer.alloc(8)), /shorter/],
    [v2(0x21, 0x21, Buffer.alloc(20)), /shorter/],
    [v2(0x21, 0x11, Buffer.alloc(3000)), /more than 2048/],
  ];
  for (const [input, re] of cases) {
    const r = parseProxyHeader(input);
    t.equal(r.kind, 'error', String(re));
    if (r.kind === 'error') t.match(r.reason, re);
  }
  const whole = v2(0x21, 0x11, p4);
  for (let i = 1; i < whole.length; i++) t.equal(parseProxyHeader(whole.subarray(0, i)).kind, 'more', `prefix of ${i}`);
  t.equal(parseProxyHeader(v2(0x21, 0x11, Buffer.alloc(100)), 64).kind, 'error', 'cap is configurable');
});

t.test('written headers parse back (v1, v2, mixed families, unknown)', async (t) => {
  const cases = [
    { source: { address: '192.0.2.7', port: 5, family: 'IPv4' as const }, destination: { address: '10.1.2.3', port: 443, family: 'IPv4' as const } },
    { source: { address: '2001:db8::7', port: 5, family: 'IPv6' as const }, destination: { address: '::1', port: 8443, family: 'IPv6' as const } },
    { source: { address: '::ffff:192.0.2.7', port: 5, family: 'IPv6' as const }, destination: { address: 'fe80::1:2:3:4', port: 1, family: 'IPv6' as const } },
  ];
  for (const ends of cases) {
    for (const write of [proxyHeaderV1, proxyHeaderV2]) {
      const r = parseProxyHeader(write(ends));
      t.equal(r.kind, 'done');
      if (r.kind !== 'done') continue;
      t.equal(r.header.source?.port, ends.source.port);
      t.equal(r.header.destination?.port, ends.destination.port);
      // v2 carries bytes: compare canonical forms.
      const canon = (a: string): string => new URL(`http://[${a}]/`).hostname;
      if (ends.source.family === 'IPv4') t.equal(r.header.source?.address, ends.source.address);
      else t.equal(canon(r.header.source!.address), canon(ends.source.address));
    }
  }
  t.equal(proxyHeaderV1(null).toString(), 'PROXY UNKNOWN\r\n');
  const u = parseProxyHeader(proxyHeaderV2(null));
  t.equal(u.kind === 'done' && u.header.command, 'local');
});

t.test('realIpFrom entries', async (t) => {
  const list = resolveRealIpFrom(['10.0.0.0/8', '127.0.0.1', '2001:db8::/32']);
  t.ok(list.has('10.9.8.7'));
  t.ok(list.has('127.0.0.1'));
  t.ok(list.has('::ffff:127.0.0.1'), 'IPv4-mapped peer of a dual-stack listener');
  t.notOk(list.has('127.0.0.2'));
  t.ok(list.has('2001:db8:1::5'));
  t.notOk(list.has('2001:db9::1'));
  t.notOk(list.has(undefined));
  t.equal(checkTrustEntry('10.0.0.0/33'), 'prefix length must be 0..32');
  t.match(checkTrustEntry('example.com') ?? '', /not an IPv4 or IPv6/);
  t.throws(() => resolveRealIpFrom(['10.0.0.1', 'x']), /realIpFrom\[1\]/);
  t.throws(() => resolveRealIpFrom({}), /realIpFrom: must be an array/);
});
