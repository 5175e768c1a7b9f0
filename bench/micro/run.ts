/**
 * Micro-benchmarks (tinybench): head parsing, the accept computation, the
 * head rewrite, and the upstream pick. `npm run bench:micro`.
 * Prints ns/op, ops/s and the relative margin of error, and writes
 * bench/results/micro.md.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { Bench } from 'tinybench';
import { readRequestHead } from '../../src/http1/head.js';
import { Ev, Parser, TYPE_REQUEST, llhttpBuild } from '../../src/http1/llhttp.js';
import { classifyRequest } from '../../src/http1/semantics.js';
import { forwardRequestHead } from '../../src/http1/serialize.js';
import { resolveOptions } from '../../src/options.js';
import { UpstreamGroup } from '../../src/upstream/group.js';
import { acceptFor, checkClientHandshake } from '../../src/websocket/handshake.js';

const quick = process.argv.includes('--quick');

/** A browser-like upgrade head of about 450 bytes. */
export const UPGRADE_HEAD = Buffer.from(
  'GET /websocket/chat?room=lobby HTTP/1.1\r\n' +
    'Host: app.example.com\r\n' +
    'Connection: Upgrade\r\n' +
    'Pragma: no-cache\r\n' +
    'Cache-Control: no-cache\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0\r\n' +
    'Upgrade: websocket\r\n' +
    'Origin: https://app.example.com\r\n' +
    'Sec-WebSocket-Version: 13\r\n' +
    'Accept-Encoding: gzip, deflate, br\r\n' +
    'Accept-Language: en-US,en;q=0.9\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
    'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n',
);

/** A 4 KiB head with 40 headers. */
function bigHead(): Buffer {
  let s = 'GET /api/v1/items?page=2&sort=desc HTTP/1.1\r\nHost: app.example.com\r\n';
  for (let i = 0; s.length < 4096 - 64; i++) s += `X-Header-${String(i).padStart(2, '0')}: ${'v'.repeat(80)}\r\n`;
  const h = s.split('\r\n').length - 2;
  return Buffer.from(`${s}X-Count: ${h}\r\n\r\n`);
}
const BIG_HEAD = bigHead();

const limits = { maxHeadBytes: 16384, maxHeaders: 100, maxUriBytes: 8192 };
const parser = new Parser(TYPE_REQUEST, limits);

function parseOnly(buf: Buffer): void {
  parser.reset();
  if (parser.execute(buf, 0) !== Ev.Head) throw new Error('no head');
}

function parseAndRead(buf: Buffer): void {
  parser.reset();
  if (parser.execute(buf, 0) !== Ev.Head) throw new Error('no head');
  readRequestHead(parser);
}

parser.reset();
parser.execute(UPGRADE_HEAD, 0);
const head = readRequestHead(parser);
const opts = resolveOptions({ upstreams: { a: { servers: ['127.0.0.1:1'] } } });
const info = classifyRequest(head, opts.tunnelProtocols);
const group = new UpstreamGroup('g', [
  { address: { kind: 'tcp', host: '10.0.0.1', port: 80 }, weight: 3 },
  { address: { kind: 'tcp', host: '10.0.0.2', port: 80 }, weight: 1 },
  { address: { kind: 'tcp', host: '10.0.0.3', port: 80 }, weight: 1 },
]);
const facts = { remoteAddress: '127.0.0.1', proto: 'http', fallbackHost: '10.0.0.1:80' };

const bench = new Bench({ time: quick ? 300 : 1500, warmupTime: quick ? 100 : 300 });
bench
  .add(`llhttp parse, ${UPGRADE_HEAD.length}-byte upgrade head (offsets only)`, () => parseOnly(UPGRADE_HEAD))
  .add(`llhttp parse + head strings, ${UPGRADE_HEAD.length}-byte upgrade head`, () => parseAndRead(UPGRADE_HEAD))
  .add(`llhttp parse, ${BIG_HEAD.length}-byte head, 40 headers (offsets only)`, () => parseOnly(BIG_HEAD))
  .add(`llhttp parse + head strings, ${BIG_HEAD.length}-byte head, 40 headers`, () => parseAndRead(BIG_HEAD))
  .add('classify + WebSocket handshake guards', () => {
    classifyRequest(head, opts.tunnelProtocols);
    checkClientHandshake(head);
  })
  .add('Sec-WebSocket-Accept (SHA-1 + base64)', () => acceptFor('dGhlIHNhbXBsZSBub25jZQ=='))
  .add('head rewrite + serialise (upgrade)', () => forwardRequestHead(head, info, opts.forward, facts))
  .add('upstream pick (smooth weighted round-robin, 3 backends)', () => group.pick());

await bench.run();

const rows = bench.tasks.map((task) => {
  const r = task.result as unknown as { latency?: { p50?: number; rme?: number; mean?: number }; throughput?: { mean?: number } } | undefined;
  const ns = (r?.latency?.p50 ?? r?.latency?.mean ?? NaN) * 1e6;
  const ops = r?.throughput?.mean ?? NaN;
  const rme = r?.latency?.rme ?? NaN;
  return { name: task.name, ns, ops, rme };
});
const lines = [
  `# wsplice micro-benchmarks`,
  '',
  `node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), parser: ${llhttpBuild()}`,
  `command: npm run bench:micro${quick ? ' -- --quick' : ''}; median latency per op (tinybench)`,
  '',
  '| benchmark | median ns/op | ops/s (mean) | ± rme |',
  '|---|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${r.ns.toFixed(0)} | ${Math.round(r.ops).toLocaleString('en-US')} | ${r.rme.toFixed(2)}% |`),
];
const text = lines.join('\n') + '\n';
process.stdout.write(text);
mkdirSync(new URL('../../../bench/results/', import.meta.url), { recursive: true });
writeFileSync(new URL('../../../bench/results/micro.md', import.meta.url), text);
