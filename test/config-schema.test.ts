/**
 * The published JSON Schema (wsplice --schema): generated from the option
 * rows, and every JSON configuration the README and the tests show validates
 * against it with ajv, as an editor would check it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import t from 'tap';
import { Issues } from '../src/config/issues.js';
import { loadNginxConfig } from '../src/config/nginx/read.js';
import { configSchema } from '../src/config/schema.js';
import { CLI, ROOT } from './support/index.js';

const printed = spawnSync(process.execPath, [CLI, '--schema'], { encoding: 'utf8', timeout: 20_000 });
const schema = JSON.parse(printed.stdout) as object;
const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);

t.test('wsplice --schema prints the schema the option rows give', async (t) => {
  t.equal(printed.status, 0);
  t.same(schema, JSON.parse(JSON.stringify(configSchema())));
});

t.test("the README's JSON configurations validate", async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
  t.ok(blocks.length >= 2, 'the README shows JSON configurations');
  for (const b of blocks) t.ok(validate(JSON.parse(b)), `valid: ${JSON.stringify(validate.errors)}`);
});

t.test('the shapes the tests and the bench use validate; mistakes do not', async (t) => {
  const good = [
    { listen: ['127.0.0.1:8080', { address: '127.0.0.1:8443', tls: { certificates: [{ cert: '/p/c.pem', key: '/p/c.key' }] }, proxyProtocol: false }], upstreams: { backend: { servers: ['127.0.0.1:3001'] } }, relay: 'js' },
    { upstreams: { a: { servers: [{ address: '127.0.0.1:1', weight: 2 }], maxFails: 3 } }, routes: [{ path: '/ws', upstream: 'a', exact: true }, { path: '\\.php$', match: 'regex', upstream: 'a', access: [{ deny: '10.0.0.0/8' }, { allow: 'all' }] }, { path: '/internal', return: { status: 403 } }], forwarding: { host: '$host' }, accessLog: 'stdout', admin: { listen: '127.0.0.1:9100' } },
  ];
  const nested: object = { upstreams: { a: { servers: ['127.0.0.1:1'] } }, routes: [{ path: '/a/', upstream: 'a', uri: '/v1/', timeouts: { responseMs: 1000 }, forwarding: { host: null, setHeaders: { 'X-A': '1' } }, nextUpstream: { on: ['error'] }, routes: [{ path: '/a/b/', upstream: 'a', routes: [{ path: '\\.x$', match: 'regex', upstream: 'a' }] }] }] };
  for (const g of [...good, nested]) t.ok(validate(g), `valid: ${JSON.stringify(validate.errors)}`);
  t.notOk(validate({ upstreams: { a: { servers: ['x:1'] } }, routes: [{ path: '/a/', upstream: 'a', routes: [{ path: '/a/b', upstream: 'a', timeouts: { headMs: 1 } }] }] }), 'a global-only timeout in a nested route');
  t.notOk(validate({ upstreams: { a: { servers: ['127.0.0.1:1'] } }, timeouts: { idelMs: 5 } }), 'an unknown key');
  t.notOk(validate({ upstreams: { a: { servers: [] } } }), 'an empty server list');
  t.notOk(validate({ upstreams: { a: { servers: ['x:1'] } }, routes: [{ path: '/', match: 'glob', upstream: 'a' }] }), 'an unknown match');
});

t.test('an nginx file read into the model validates too (one model behind both syntaxes)', async (t) => {
  const is = new Issues();
  const r = loadNginxConfig(join(ROOT, 'test/fixtures/nginx/websocket.conf'), is);
  t.same(is.list.filter((i) => i.severity === 'error'), []);
  t.ok(validate(r!.value), `valid: ${JSON.stringify(validate.errors)}`);
});
