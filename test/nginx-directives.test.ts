/**
 * Each nginx directive wsplice reads, and what it means in the JSON model
 * (whose runtime behaviour the other suites test); each refusal in nginx's
 * words with its file:line, all of them in one run.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Issues } from '../src/config/issues.js';
import { loadNginxConfig } from '../src/config/nginx/read.js';
import { resolveOptions } from '../src/options.js';

const dir = mkdtempSync(join(tmpdir(), 'wsplice-directives-'));
let n = 0;

/** Read `text` as an nginx file: the model and the problems as "LINE: message". */
function read(text: string): { value: Record<string, unknown>; errors: string[]; warnings: string[] } {
  const file = join(dir, `c${n++}.conf`);
  writeFileSync(file, text);
  const is = new Issues();
  const r = loadNginxConfig(file, is);
  const fmt = (sev: string): string[] => is.list.filter((i) => i.severity === sev).map((i) => `${i.line ?? '?'}: ${i.message}`);
  return { value: r?.value ?? {}, errors: fmt('error'), warnings: fmt('warning') };
}

const site = (inner: string, http = ''): string => `${http}\nupstream b { server 127.0.0.1:9001; }\nserver {\n listen 127.0.0.1:8080;\n${inner}\n}\n`;

t.test('upstream and its server lines', async (t) => {
  const r = read('upstream b {\n server 127.0.0.1:1 weight=3 max_fails=2 fail_timeout=5s;\n server 127.0.0.1:2 max_fails=2 fail_timeout=5s;\n keepalive 16;\n keepalive_timeout 30s;\n keepalive_requests 100;\n}\nserver { listen 8080; location / { proxy_pass http://b; } }\n');
  t.same(r.errors, []);
  t.same(r.value.upstreams, { b: { servers: [{ address: '127.0.0.1:1', weight: 3 }, '127.0.0.1:2'], maxFails: 2, failTimeoutMs: 5000, keepalive: { idle: 16, timeoutMs: 30_000, requests: 100 } } });
  t.same(r.value.listen, ['0.0.0.0:8080'], 'a bare port listens on every address, as nginx');
  const all = read('upstream b {\n server 127.0.0.1:1 backup max_fails=3 fail_timeout=1m;\n server 127.0.0.1:2 max_conns=3 slow_start=30s;\n server 127.0.0.1:3 down;\n server example.internal:4 resolve;\n least_conn;\n sticky cookie srv expires=1h domain=.example.com path=/app httponly secure samesite=lax;\n}\nserver { location / { proxy_pass http://b; } }\n');
  t.same(all.errors, []);
  t.same(all.value.upstreams, {
    b: {
      servers: [
        { address: '127.0.0.1:1', backup: true, maxFails: 3, failTimeoutMs: 60_000 }, { address: '127.0.0.1:2', maxConns: 3, slowStartMs: 30_000 },
        { address: '127.0.0.1:3', down: true }, { address: 'example.internal:4', resolve: true },
      ],
      balance: 'least_conn',
      sticky: { cookie: 'srv', expiresMs: 3_600_000, domain: '.example.com', path: '/app', httpOnly: true, secure: true, sameSite: 'lax' },
    },
  }, 'every server parameter, per server; max_fails/fail_timeout where servers differ');
  t.doesNotThrow(() => resolveOptions(all.value), 'the model accepts it');
  const methods = (line: string): unknown => (read(`upstream b {\n server 127.0.0.1:1;\n ${line}\n}\nserver { location / { proxy_pass http://b; } }\n`).value.upstreams as Record<string, { balance?: unknown }>).b!.balance;
  t.same(
    ['ip_hash;', 'hash $remote_addr;', 'hash $http_x_session$arg_room consistent;', 'random;', 'random two;', 'random two least_conn;'].map(methods),
    ['ip_hash', { method: 'hash', key: '$remote_addr' }, { method: 'hash', key: '$http_x_session$arg_room', consistent: true }, 'random', { method: 'random', two: true }, { method: 'random', two: true, leastConn: true }],
  );
  const redefined = read('upstream b {\n least_conn;\n ip_hash;\n server 127.0.0.1:1;\n}\nserver { location / { proxy_pass http://b; } }\n');
  t.same([redefined.errors, redefined.warnings, (redefined.value.upstreams as Record<string, { balance?: unknown }>).b!.balance], [[], ['3: load balancing method redefined'], 'ip_hash'], 'as nginx: a warning, the later method wins');
  const bad = read('upstream b {\n hash $remote_addr;\n server 127.0.0.1:1 backup;\n server 127.0.0.1:2 weight=0 max_conns=abc;\n server 127.0.0.1:3 slow_start=1x max_fails=-1 backup=1 fast;\n random least_conn;\n hash a b;\n sticky route $x;\n sticky cookie s samesite=maybe;\n}\nserver { location / { proxy_pass http://b; } }\n');
  t.same(bad.errors, [
    '4: invalid parameter "weight=0"', '4: invalid parameter "max_conns=abc"',
    '5: invalid parameter "slow_start=1x"', '5: invalid parameter "max_fails=-1"', '5: invalid parameter "backup=1"', '5: invalid parameter "fast"',
    '6: invalid parameter "least_conn"', '7: invalid parameter "b"',
    '8: expected "sticky cookie NAME [expires=] [domain=] [path=] [httponly] [secure] [samesite=]"', '9: invalid parameter "samesite=maybe"',
    '3: balancing method does not support parameter "backup" (hash has no second tier to fall back on)',
  ]);
});

t.test('proxy_pass: an upstream, an address (a group of one), https with proxy_ssl_*, a missing name', async (t) => {
  const r = read(site(' location /a { proxy_pass http://b; }\n location /c { proxy_pass http://127.0.0.1:9002; }\n location /s { proxy_ssl_trusted_certificate /ca.pem; proxy_ssl_name api.internal; proxy_pass https://10.0.0.5:8443; }\n location /x { proxy_pass http://nowhere; }'));
  t.same(r.errors, ['8: host not found in upstream "nowhere"']);
  t.same(r.value.routes, [{ path: '/a', upstream: 'b' }, { path: '/c', upstream: '127.0.0.1:9002' }, { path: '/s', upstream: '10.0.0.5:8443' }]);
  t.same((r.value.upstreams as Record<string, unknown>)['10.0.0.5:8443'], { servers: ['10.0.0.5:8443'], tls: { ca: '/ca.pem', serverName: 'api.internal' } });
  const uri = read(site(' location /a/ { proxy_pass http://b/a/; }\n location /c/ { proxy_pass http://b/d/; }\n location ~ \\.php$ { proxy_pass http://b/x; }\n location @named { proxy_pass http://b/y; }'));
  t.same(uri.errors, [
    '7: "proxy_pass" cannot have URI part in location given by regular expression, or inside named location, or inside "if" statement, or inside "limit_except" block',
    '8: a named location is not supported yet by wsplice',
    '8: "proxy_pass" cannot have URI part in location given by regular expression, or inside named location, or inside "if" statement, or inside "limit_except" block',
  ]);
  t.same((uri.value.routes as unknown[]).slice(0, 2), [{ path: '/a/', upstream: 'b', uri: '/a/', slashRedirect: true }, { path: '/c/', upstream: 'b', uri: '/d/', slashRedirect: true }], 'a URI part is the route\'s uri (and a /x/ location with proxy_pass redirects /x)');
});

t.test('proxy_set_header lines onto forwarding; timeouts; a level with its own lines or values is its routes\' own', async (t) => {
  const lines = ' proxy_set_header Host $host;\n proxy_set_header X-Real-IP $remote_addr;\n proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n proxy_set_header X-Env prod;\n proxy_set_header Accept-Encoding "";\n proxy_connect_timeout 5s;\n proxy_read_timeout 1m;\n';
  const full = { host: '$host', xForwarded: true, xRealIp: true, setHeaders: { 'X-Env': 'prod' }, removeHeaders: ['Accept-Encoding'] };
  const top = read(site(' location / { proxy_pass http://b; }', lines));
  t.same(top.errors, []);
  t.same(top.value.forwarding, { xForwarded: true, host: '$host', xRealIp: true, setHeaders: { 'X-Env': 'prod' }, removeHeaders: ['Accept-Encoding'] }, 'http level: the globals');
  t.same(top.value.timeouts, { connectMs: 5000, responseMs: 60_000, idleMs: 60_000 });
  t.same(top.value.routes, [{ path: '/', upstream: 'b' }], 'a location that sets nothing inherits them');
  const srv = read(site(`${lines} location / { proxy_pass http://b; }`));
  t.same(srv.errors, []);
  t.same(srv.value.forwarding, { xForwarded: false }, 'no X-Forwarded-* unless the file sets them, as nginx');
  t.same(srv.value.routes, [{ path: '/', upstream: 'b', timeouts: { connectMs: 5000, responseMs: 60_000, idleMs: 60_000 }, forwarding: full }], 'server level: each of its routes');
  const own = read(site(' location / { proxy_pass http://b; }\n location /x { proxy_read_timeout 5s; proxy_set_header X-Only x; proxy_next_upstream error http_502; proxy_pass http://b; }', lines));
  t.same(own.errors, []);
  t.same(own.value.routes, [
    { path: '/', upstream: 'b' },
    { path: '/x', upstream: 'b', timeouts: { responseMs: 5000, idleMs: 5000 }, forwarding: { host: null, xForwarded: false, xRealIp: false, setHeaders: { 'X-Only': 'x' }, removeHeaders: [] }, nextUpstream: { on: ['error', 'http_502'] } },
  ], 'a location with its own proxy_set_header lines inherits none of the enclosing ones (nginx\'s array rule); its timeouts win one by one');
  t.doesNotThrow(() => resolveOptions({ upstreams: own.value.upstreams, routes: own.value.routes, forwarding: own.value.forwarding, timeouts: own.value.timeouts }), 'the model accepts it');
  const tpl = read(site(' location / { proxy_pass http://b; }', ' proxy_set_header X-Original-URI $request_uri;\n proxy_set_header X-Client "$remote_addr via $scheme";\n'));
  t.same(tpl.errors, []);
  t.same(tpl.value.forwarding, { xForwarded: false, setHeaders: { 'X-Original-URI': '$request_uri', 'X-Client': '$remote_addr via $scheme' } }, 'values with variables wsplice has');
  const v = read(site(' proxy_set_header X-Id $request_id;\n proxy_set_header X-Typo $remote_adr;\n location / { proxy_pass http://b; }\n location /two { proxy_pass http://b; }'));
  t.same(v.errors, ['5: "proxy_set_header X-Id $request_id" is not supported yet by wsplice', '6: unknown "remote_adr" variable'], 'each line reported once, however many locations inherit it');
  const send = read(site(' location / { proxy_send_timeout 5s; proxy_pass http://b; }', ' proxy_send_timeout 30s;\n'));
  t.same(send.errors, []);
  t.equal((send.value.timeouts as { sendMs?: number }).sendMs, 30_000, 'proxy_send_timeout at the http level: timeouts.sendMs');
  t.same(send.value.routes, [{ path: '/', upstream: 'b', timeouts: { sendMs: 5000 } }], 'and in a location: the route\'s own');
  t.doesNotThrow(() => resolveOptions({ upstreams: send.value.upstreams, routes: send.value.routes, timeouts: send.value.timeouts }), 'the model accepts it');
});

t.test('http-level settings: logs, workers, header limits, real ip, limits', async (t) => {
  const r = read(`error_log /var/log/wsplice.log warn;\nworker_processes auto;\npid /run/wsplice/front.pid;\nevents { worker_connections 512; multi_accept on; }\nhttp {\n access_log /dev/stdout main;\n client_header_timeout 10s;\n keepalive_timeout 30s;\n large_client_header_buffers 4 8k;\n set_real_ip_from 10.0.0.0/8;\n real_ip_header proxy_protocol;\n limit_conn_zone $binary_remote_addr zone=addr:1m;\n limit_req_zone $binary_remote_addr zone=one:1m rate=10r/s;\n limit_conn addr 20;\n limit_req zone=one burst=5 nodelay;\n limit_req_status 429;\n${site(' location / { proxy_pass http://b; }')}}\n`);
  t.same(r.errors, []);
  t.same([r.value.errorLog, r.value.logLevel, r.value.accessLog], ['/var/log/wsplice.log', 'warn', 'stdout']);
  t.same([r.value.workers, r.value.pid], ['auto', '/run/wsplice/front.pid'], 'worker_processes and pid: the workers and pid options');
  t.same([read(`worker_processes 4;\nevents {}\nhttp {${site(' location / { proxy_pass http://b; }')}}`).value.workers, read(`worker_processes many;\nevents {}\nhttp {${site(' location / { proxy_pass http://b; }')}}`).errors], [4, ['1: invalid value "many" in "worker_processes" directive']]);
  t.same(r.value.limits, { maxConnections: 512, maxUriBytes: 8192, maxHeadBytes: 32_768 });
  t.same(r.value.timeouts, { headMs: 10_000, keepAliveMs: 30_000 });
  t.same(r.value.realIpFrom, ['10.0.0.0/8']);
  t.same(r.value.clientLimits, { maxClients: 16_384, maxConnections: 20, requestRate: { rate: 10, burst: 5, key: '$remote_addr' }, status: 429 });
  t.match(r.warnings, [/access_log format .* ignored/, /ignored \(they only matter to nginx itself\): multi_accept/]);
  t.doesNotThrow(() => resolveOptions(Object.fromEntries(Object.entries(r.value).filter(([k]) => !['listen', 'errorLog', 'logLevel', 'accessLog', 'workers', 'pid'].includes(k)))), 'the model accepts it');
});

t.test('listen ... ssl with ssl_*, proxy_protocol; two servers on one TLS address share it by SNI', async (t) => {
  const r = read(`ssl_protocols TLSv1.2 TLSv1.3;\nssl_session_timeout 10m;\nupstream b { server 127.0.0.1:1; }\nserver {\n listen 127.0.0.1:8443 ssl;\n listen 127.0.0.1:8081 proxy_protocol;\n server_name a.test;\n ssl_certificate /a.pem;\n ssl_certificate_key /a.key;\n ssl_client_certificate /ca.pem;\n ssl_verify_client optional;\n location / { proxy_pass http://b; }\n}\nserver {\n listen 127.0.0.1:8443 ssl;\n server_name *.b.test;\n ssl_certificate /b.pem;\n ssl_certificate_key /b.key;\n location / { proxy_pass http://b; }\n}\nserver { listen 127.0.0.1:9443 ssl; server_name c.test; location / { proxy_pass http://b; } }\n`);
  t.same(r.errors, ['21: no "ssl_certificate" is defined for the "listen ... ssl" directive']);
  t.same((r.value.listen as unknown[]).slice(0, 2), [
    { address: '127.0.0.1:8443', tls: { certificates: [{ cert: '/a.pem', key: '/a.key', serverNames: ['a.test'] }, { cert: '/b.pem', key: '/b.key', serverNames: ['*.b.test'] }], protocols: ['TLSv1.2', 'TLSv1.3'], sessionTimeoutSec: 600, clientCa: '/ca.pem', verifyClient: 'optional' } },
    { address: '127.0.0.1:8081', proxyProtocol: true },
  ]);
});

t.test('locations, server names, return, allow/deny into routes', async (t) => {
  const r = read(`upstream b { server 127.0.0.1:1; }\nserver {\n listen 8080 default_server;\n location = /ws { proxy_pass http://b; }\n location ^~ /static/ { return 404; }\n location ~* \\.png$ { allow 10.0.0.0/8; deny all; proxy_pass http://b; }\n location /go { return 301 https://example.com/; }\n}\nserver {\n listen 8080;\n server_name api.test *.api.test;\n location / { proxy_pass http://b; }\n}\nserver { listen 8080; server_name old.test; return 301 https://new.test/; }\n`);
  t.same(r.errors, []);
  t.same(r.value.routes, [
    { path: '/ws', match: 'exact', upstream: 'b' },
    { path: '/static/', match: 'prefix-stop', return: { status: 404 } },
    { path: '\\.png$', match: 'regex-caseless', upstream: 'b', access: [{ allow: '10.0.0.0/8' }, { deny: 'all' }] },
    { path: '/go', return: { status: 301, text: 'https://example.com/' } },
    { path: '/', upstream: 'b', hosts: ['api.test', '*.api.test'] },
    { path: '/', hosts: ['old.test'], return: { status: 301, text: 'https://new.test/' } },
  ]);
  t.same(r.value.listen, ['0.0.0.0:8080'], 'one listener for the three servers');
});

t.test("the upgrade map in its keep-alive form ('' -> \"\") is the built-in behaviour too", async (t) => {
  const r = read(site(" proxy_set_header Connection $connection_upgrade;\n location / { proxy_pass http://b; }", "map $http_upgrade $connection_upgrade { default upgrade; '' ''; }"));
  t.same(r.errors, []);
});

t.test('every problem at once, in nginx words, each with its line', async (t) => {
  const r = read(`upstream b { server 127.0.0.1:1; }\nupstream unused { server 127.0.0.1:2; }\nserver {\n listen 127.0.0.1:99999;\n listen 127.0.0.1:8080;\n listen 127.0.0.1:8080;\n proxy_read_timout 5s;\n location /ws { proxy_pass http://b; }\n location /ws { proxy_pass http://b; }\n location / { proxy_pass http://b; worker_connections 5; }\n location /files { root /srv; }\n}\nmap $uri $x { default 1; }\n`);
  t.same(r.errors, [
    '4: invalid port in "127.0.0.1:99999" of the "listen" directive (0-65535)',
    '6: duplicate listen 127.0.0.1:8080',
    '7: unknown directive "proxy_read_timout" (did you mean "proxy_read_timeout"?)',
    '9: duplicate location "/ws"',
    '10: "worker_connections" directive is not allowed here',
    '11: location "/files" has no "proxy_pass" or "return" (wsplice serves no files)',
  ]);
  t.same(r.warnings, ['11: ignored (they only matter to nginx itself): root', '2: upstream "unused" is not used by any proxy_pass'].reverse());
});

t.test("the README's From nginx table names every directive of the table", async (t) => {
  const { readFileSync } = await import('node:fs');
  const { DIRECTIVES } = await import('../src/config/nginx/table.js');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### From nginx'), readme.indexOf('\n## ', readme.indexOf('### From nginx')));
  const missing = DIRECTIVES.filter((r) => !r.doc.startsWith('ignored') && !section.includes(r.name)).map((r) => r.name);
  t.same([...new Set(missing)], [], 'every directive wsplice acts on is in the README');
});
