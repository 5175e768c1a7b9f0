/**
 * The PROXY protocol end to end, as a user configures it: the CLI with an
 * nginx-syntax file (`listen ... proxy_protocol`, `set_real_ip_from`, a location
 * with `allow`/`deny` and `$remote_addr` / `$proxy_add_x_forwarded_for` sent on).
 * A v1 or v2 header from the trusted source replaces the client address for
 * both: X-Forwarded-For and X-Remote-Addr name the address in the header, and
 * the allow/deny rules judge that address, not the socket's (127.0.0.1, which
 * `deny all` would refuse). The same headers from an untrusted loopback
 * address (127.0.0.2) are closed unanswered and reach no backend.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { V2_SIGNATURE } from '../../src/proxy-protocol/parse.js';
import { freePort, startCli } from '../support/index.js';
import { exchange, proxyAwareBackend } from './fixtures/peers.js';

/** A v2 PROXY header (command PROXY, TCP) for an IPv4 or IPv6 source, built here from the layout, not by src/. */
function v2(src: string, dst: string, sp: number, dp: number): Buffer {
  const six = src.includes(':');
  const addrLen = six ? 36 : 12;
  const h = Buffer.alloc(16 + addrLen);
  V2_SIGNATURE.copy(h);
  h[12] = 0x21;
  h[13] = six ? 0x21 : 0x11;
  h.writeUInt16BE(addrLen, 14);
  const put = (ip: string, at: number): void => {
    if (!six) return ip.split('.').forEach((o, i) => (h[at + i] = Number(o)));
    // Full-form IPv6 only (the test writes them so): eight groups of four hex digits.
    Buffer.from(ip.split(':').map((g) => g.padStart(4, '0')).join(''), 'hex').copy(h, at);
  };
  put(src, 16);
  put(dst, six ? 32 : 20);
  h.writeUInt16BE(sp, six ? 48 : 24);
  h.writeUInt16BE(dp, six ? 50 : 26);
  return h;
}

const request = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n`;
const upgrade = (path: string): string =>
  `GET ${path} HTTP/1.1\r\nHost: edge.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const header = (head: string, name: string): string | undefined => new RegExp(`\\r\\n${name}: ([^\\r]*)`, 'i').exec(head)?.[1];

t.test('PROXY v1 and v2 from the trusted source set $remote_addr for X-Forwarded-For and for allow/deny; untrusted sources are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-pp-cli-'));
  const backend = await proxyAwareBackend();
  t.teardown(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const listen = await freePort();
  const conf = join(dir, 'wsplice.conf');
  writeFileSync(conf, `events {}
http {
  set_real_ip_from 127.0.0.1;
  real_ip_header proxy_protocol;
  upstream app { server 127.0.0.1:${backend.port}; }
  server {
    listen 127.0.0.1:${listen} proxy_protocol;
    location / {
      allow 203.0.113.0/24;
      allow 2001:db8::/32;
      deny all;
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Remote-Addr $remote_addr;
    }
  }
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
}
`);
  const cli = await startCli(['-c', conf], t);

  // Allowed by the address in the header; the socket's own address (127.0.0.1) would be denied.
  const allowed: Array<[string, Buffer | string, string]> = [
    ['v1 TCP4', 'PROXY TCP4 203.0.113.9 192.0.2.1 40000 443\r\n', '203.0.113.9'],
    ['v2 IPv4', v2('203.0.113.77', '192.0.2.1', 40001, 443), '203.0.113.77'],
    ['v1 TCP6', 'PROXY TCP6 2001:db8::5 2001:db8::1 40002 443\r\n', '2001:db8::5'],
    ['v2 IPv6', v2('2001:0db8:0000:0000:0000:0000:0000:0042', '2001:0db8:0000:0000:0000:0000:0000:0001', 40003, 443), '2001:db8::42'],
  ];
  for (const [what, pp, client] of allowed) {
    const before = backend.seen.length;
    const r = await exchange(listen, [pp, request(`/ok/${what.replace(' ', '-')}`)]);
    t.match(r.data.toString('latin1'), /^HTTP\/1\.1 200 /, `${what}: allowed`);
    t.equal(backend.seen.length, before + 1, `${what}: one request reached the backend`);
    const head = backend.seen.at(-1)!.head;
    t.equal(header(head, 'X-Forwarded-For'), client, `${what}: X-Forwarded-For is the address in the header`);
    t.equal(header(head, 'X-Remote-Addr'), client, `${what}: $remote_addr is the address in the header`);
  }
  const tunnel = await exchange(listen, [v2('203.0.113.8', '192.0.2.1', 40004, 443), upgrade('/ws')], { ms: 1_000 });
  t.match(tunnel.data.toString('latin1'), /^HTTP\/1\.1 101 /, 'an upgrade from an allowed address becomes a tunnel');
  t.equal(header(backend.seen.at(-1)!.head, 'X-Forwarded-For'), '203.0.113.8');

  // Denied by the address in the header, for a request and an upgrade alike: 403, nothing upstream.
  const seenBefore = backend.seen.length;
  const denied: Array<[string, Buffer | string, string]> = [
    ['v1 TCP4', 'PROXY TCP4 198.51.100.1 192.0.2.1 40010 443\r\n', request('/no')],
    ['v2 IPv4', v2('198.51.100.2', '192.0.2.1', 40011, 443), request('/no')],
    ['v2 IPv4 upgrade', v2('198.51.100.3', '192.0.2.1', 40012, 443), upgrade('/ws')],
    ['v1 TCP6', 'PROXY TCP6 2001:db9::1 2001:db8::1 40013 443\r\n', request('/no')],
  ];
  for (const [what, pp, req] of denied) {
    const r = await exchange(listen, [pp, req]);
    t.match(r.data.toString('latin1'), /^HTTP\/1\.1 403 /, `${what}: denied by the address in the header`);
  }
  t.equal(backend.seen.length, seenBefore, 'no denied request reached the backend');

  // Untrusted source: the same headers from 127.0.0.2 are closed with no answer and nothing upstream.
  for (const [what, pp] of [['v1', allowed[0]![1]], ['v2', allowed[1]![1]]] as const) {
    const r = await exchange(listen, [pp, request('/ok')], { localAddress: '127.0.0.2' });
    t.ok(r.closed, `untrusted ${what}: closed`);
    t.equal(r.data.length, 0, `untrusted ${what}: no answer`);
  }
  t.equal(backend.seen.length, seenBefore, 'nothing from the untrusted source reached the backend');
  t.match(cli.stderr(), /untrusted source 127\.0\.0\.2/, 'the refusal is logged with its reason');

  // A trusted source that sends no header at all is refused too: the listener requires one.
  const bare = await exchange(listen, [request('/ok')]);
  t.ok(bare.closed);
  t.equal(bare.data.length, 0, 'no header: no answer');
  t.equal(backend.seen.length, seenBefore);
});
