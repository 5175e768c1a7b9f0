import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { WebSocket } from 'ws';
import { closeWss, port, wsEcho } from './helpers.js';
import { TestPki } from './edge/fixtures/certs.js';

// The CLI is tested as users run it: the compiled bin (`npm test` builds first).
const BIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));

const TMP = mkdtempSync(`${tmpdir()}/wsplice-cli-`);
function writeTemp(name: string, text: string): string {
  writeFileSync(`${TMP}/${name}`, text);
  return `${TMP}/${name}`;
}

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('--help lists the flags', async (t) => {
  const r = run(['--help']);
  t.equal(r.status, 0);
  for (const flag of ['--listen', '--upstream', '--route', '--config', '--idle-timeout', '--version', '--relay']) t.match(r.stdout, flag);
});

t.test('--version names the parser build and the relay', async (t) => {
  const r = run(['--version']);
  t.equal(r.status, 0);
  t.match(r.stdout, /^wsplice \d+\.\d+\.\d+/);
  t.match(r.stdout, /parser: llhttp 9/);
  t.match(r.stdout, /relay: (js|splice)/);
});

t.test('bad flags and config errors exit 2 naming the field', async (t) => {
  const dir = mkdtempSync(`${tmpdir()}/wsplice-cli-`);
  const cases: Array<[string[], RegExp]> = [
    [['--bogus'], /--bogus: unknown option/],
    [['--upstream', 'nohost'], /invalid address "nohost"/],
    [['--upstream', '127.0.0.1:1,weight=x'], /unknown server parameter/],
    [['--idle-timeout', 'soon', '--upstream', '127.0.0.1:1'], /--idle-timeout: expects a whole number/],
    [[], /no upstream given/],
  ];
  writeFileSync(`${dir}/bad-route.json`, JSON.stringify({ upstreams: { a: { servers: ['127.0.0.1:1'] } }, routes: [{ path: '/x', upstream: 'nope' }] }));
  cases.push([['--config', `${dir}/bad-route.json`], /routes\[0\]\.upstream: must name an upstream \(one of a\)/]);
  writeFileSync(`${dir}/bad-weight.json`, JSON.stringify({ upstreams: { a: { servers: [{ address: '127.0.0.1:1', weight: 0 }] } } }));
  cases.push([['--config', `${dir}/bad-weight.json`], /upstreams\.a\.servers\[0\]\.weight: must be an integer >= 1/]);
  writeFileSync(`${dir}/typo.json`, JSON.stringify({ upstreams: { a: { servers: ['127.0.0.1:1'] } }, timeouts: { idle: 5 } }));
  cases.push([['--config', `${dir}/typo.json`], /timeouts\.idle: unknown option/]);
  writeFileSync(`${dir}/broken.json`, '{ "upstreams": ');
  cases.push([['--config', `${dir}/broken.json`], /not valid JSON/]);
  cases.push([['--config', `${dir}/missing.json`], /cannot read .*ENOENT/]);
  for (const [args, msg] of cases) {
    const r = run(args);
    t.equal(r.status, 2, args.join(' ') || '(no args)');
    t.match(r.stderr, msg);
  }
});

t.test('every problem is reported at once, each on its own line', async (t) => {
  const r = run(['--bogus', '--idle-timeout', 'soon', '-u', 'nohost', '-u', '127.0.0.1:1,weight=x', 'stray']);
  t.equal(r.status, 2);
  const lines = r.stderr.trim().split('\n');
  t.match(lines, [/--bogus: unknown option/, /stray: unexpected argument/, /unknown server parameter "weight=x"/, /--idle-timeout: expects a whole number/, /invalid address "nohost"/]);
  t.match(run(['--idel-timeout', '5', '-u', '127.0.0.1:1']).stderr, /did you mean --idle-timeout\?/);
  const cfg = run(['-t', '-c', writeTemp('multi.json', JSON.stringify({ upstreams: { a: { servers: ['x'] } }, timeouts: { idleMs: -1, idelMs: 1 }, relay: 'fast' }))]);
  t.equal(cfg.status, 1, '-t exits 1 as nginx -t does');
  t.match(cfg.stderr, /upstreams\.a\.servers\[0\]: invalid address "x".* in \S+multi\.json:1/);
  t.match(cfg.stderr, /timeouts\.idleMs: must be an integer/);
  t.match(cfg.stderr, /timeouts\.idelMs: unknown option \(did you mean "idleMs"\?/);
  t.match(cfg.stderr, /relay: must be "auto", "js" or "splice"/);
  t.match(cfg.stderr, /test failed/);
});

t.test('bundled short flags work (-qt)', async (t) => {
  const r = run(['-qt', '-u', '127.0.0.1:9']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /configuration ok/);
});

t.test('JSON errors give a line, field errors the line where the field is written', async (t) => {
  const broken = run(['-t', '-c', writeTemp('syntax.json', '{\n  "upstreams": {\n    "a": { "servers": ["127.0.0.1:1"], }\n  }\n}\n')]);
  t.equal(broken.status, 1);
  t.match(broken.stderr, /not valid JSON: .* in \S+syntax\.json:3\n/);
  t.notMatch(broken.stderr, /position/);
  const field = run(['-t', '-c', writeTemp('field.json', '{\n  "upstreams": { "a": { "servers": ["127.0.0.1:1"] } },\n  "limits": {\n    "maxHeaders": 0\n  }\n}\n')]);
  t.match(field.stderr, /limits\.maxHeaders: must be an integer >= 1 in \S+field\.json:4/);
});

t.test('with -c, --listen and the option flags win; --upstream and --route are refused', async (t) => {
  const file = writeTemp('win.json', JSON.stringify({ listen: ['127.0.0.1:1'], upstreams: { a: { servers: ['127.0.0.1:2'] } }, timeouts: { idleMs: 1000 } }));
  const dump = run(['-T', '-c', file, '--idle-timeout', '5', '--listen', '127.0.0.1:3']);
  t.equal(dump.status, 0, dump.stderr);
  t.match(dump.stdout, /"idleMs": 5\b/);
  t.match(dump.stdout, /"port": 3\b/);
  t.notMatch(dump.stdout, /"port": 1\b/);
  const refused = run(['-t', '-c', file, '-u', '127.0.0.1:4', '-r', '/x=127.0.0.1:5']);
  t.equal(refused.status, 1);
  t.match(refused.stderr, /--upstream: cannot be combined with --config/);
  t.match(refused.stderr, /--route: cannot be combined with --config/);
});

t.test('-t refuses a listen port out of range', async (t) => {
  const r = run(['-t', '-u', '127.0.0.1:1', '-l', '127.0.0.1:99999']);
  t.equal(r.status, 1);
  t.match(r.stderr, /port out of range in "127\.0\.0\.1:99999"/);
});

t.test('-t checks a configuration without starting', async (t) => {
  const r = run(['-t', '--upstream', '127.0.0.1:9', '--route', '/ws=127.0.0.1:10,127.0.0.1:11']);
  t.equal(r.status, 0);
  t.match(r.stdout, /configuration ok \(2 upstream group/);
});

t.test('starts from a config file, proxies a WebSocket, closes gracefully on SIGTERM', async (t) => {
  const wss = await wsEcho('cli');
  t.teardown(() => closeWss(wss));
  const dir = mkdtempSync(`${tmpdir()}/wsplice-cli-`);
  writeFileSync(`${dir}/c.json`, JSON.stringify({
    listen: ['127.0.0.1:0'],
    upstreams: { backend: { servers: [`127.0.0.1:${port(wss)}`] } },
    routes: [{ path: '/websocket', upstream: 'backend' }],
    timeouts: { drainMs: 300 },
  }));
  const child = spawn(process.execPath, [BIN, '--config', `${dir}/c.json`], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /wsplice listening on (\S+)\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  t.match(line, /^127\.0\.0\.1:\d+$/);
  const ws = new WebSocket(`ws://${line}/websocket`);
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  ws.send('whoami');
  t.equal(await new Promise<string>((r) => ws.once('message', (m) => r(String(m)))), 'cli');
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after a graceful close');
  await closed;
});

t.test('a config file listens with TLS from a listen object; bad entries are named by -t', async (t) => {
  const pki = new TestPki();
  t.teardown(() => pki.cleanup());
  const leaf = pki.leaf('cli', ['localhost', '127.0.0.1']);
  const bad = writeTemp('bad-listen.json', JSON.stringify({
    listen: [{ adress: '127.0.0.1:0' }, { address: '127.0.0.1:0', tls: { certificates: [] } }, { address: '127.0.0.1:0', proxyProtocol: 'yes' }],
    upstreams: { backend: { servers: ['127.0.0.1:9'] } },
  }));
  const r = run(['-t', '-c', bad]);
  t.equal(r.status, 1, '-t fails');
  t.match(r.stderr, /listen\[0\]\.adress/, 'the unknown key is named');
  t.match(r.stderr, /listen\[1\]\.tls\.certificates/, 'the empty certificate list is named');
  t.match(r.stderr, /listen\[2\]\.proxyProtocol/, 'the non-boolean is named');

  const wss = await wsEcho('tls-cli');
  t.teardown(() => closeWss(wss));
  const conf = writeTemp('tls-listen.json', JSON.stringify({
    listen: ['127.0.0.1:0', { address: '127.0.0.1:0', tls: { certificates: [{ cert: leaf.cert, key: leaf.key }] } }],
    upstreams: { backend: { servers: [`127.0.0.1:${port(wss)}`] } },
    timeouts: { drainMs: 300 },
  }));
  const child = spawn(process.execPath, [BIN, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const lines = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = [...out.matchAll(/wsplice listening on (\S+)\n/g)].map((x) => x[1]!);
      if (m.length === 2) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const ws = new WebSocket(`wss://${lines[1]}/websocket`, { ca: pki.read(pki.ca.cert), servername: 'localhost' } as WebSocket.ClientOptions);
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  ws.send('whoami');
  t.equal(await new Promise<string>((r) => ws.once('message', (m) => r(String(m)))), 'tls-cli', 'wss through the TLS listener of the file');
  ws.terminate();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('the demo runs two echo backends behind the proxy', async (t) => {
  const child = spawn(process.execPath, [BIN, '--demo', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const addr = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /wsplice listening on (\S+)\n/.exec(out);
      if (m && out.includes('Ctrl-C')) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const names = new Set<string>();
  for (let i = 0; i < 2; i++) {
    const ws = new WebSocket(`ws://${addr}/`);
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
    ws.send('whoami');
    names.add(await new Promise<string>((r) => ws.once('message', (m) => r(String(m)))));
    ws.close();
  }
  t.same([...names].sort(), ['echo-1', 'echo-2']);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGINT');
  t.equal(await exited, 0);
});
