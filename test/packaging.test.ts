// The package as a consumer gets it: `npm pack` ships only what runs; the tarball installs into a
// fresh project (from the local npm cache where it can, else the npm registry), builds its native relay there, type-checks
// a consumer file under moduleResolution nodenext and bundler, and runs the README's library
// example against two `ws` backends and its three embedding examples (node:http, Express, Fastify).
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ROOT, closeWss, httpBackend, httpGet, openWs, port, whoami, within, wsEcho } from './support/index.js';

t.setTimeout(420_000); // a native build in the consumer's install, on a loaded machine

const NPM_ENV = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

function run(cmd: string, args: string[], cwd: string, timeout = 240_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: NPM_ENV });
}

/** `what` when the command succeeded, else `what` with its exit status and the tail of its output. */
function show(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status === 0) return what;
  return `${what}: exit ${r.status}${r.error ? ` ${r.error.message}` : ''}\n${(r.stdout ?? '').slice(-1500)}\n${(r.stderr ?? '').slice(-1500)}`;
}

function filesUnder(dir: string, base = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, base))) {
    const rel = base ? `${base}/${name}` : name;
    if (statSync(join(dir, rel)).isDirectory()) out.push(...filesUnder(dir, rel));
    else out.push(rel);
  }
  return out;
}

const work = mkdtempSync(join(tmpdir(), 'wsplice-pack-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

// The suite's own build (npm test builds first) is what gets packed: no lifecycle scripts here.
const packed = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT);
const tarball = packed.status === 0 ? join(work, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename) : '';

t.test('npm pack ships only what runs', async (t) => {
  t.equal(packed.status, 0, show(packed, 'npm pack succeeds'));
  if (packed.status !== 0) return;
  const unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  t.equal(run('tar', ['-xzf', tarball, '-C', unpacked], work).status, 0, 'the tarball unpacks');
  const files = filesUnder(join(unpacked, 'package'));
  const allowed = /^(package\.json|README\.md|LICENSE|dist\/src\/[\w/.-]+\.(js|d\.ts)|src\/native\/(binding\.gyp|build\.cjs|[\w/-]+\.(cc|h)))$/;
  t.same(files.filter((f) => !allowed.test(f)), [], 'nothing but the built library, the CLI, the addon sources and their build script');
  for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'src/native/build.cjs', 'src/native/binding.gyp']) {
    t.ok(files.includes(f), `ships ${f}`);
  }
  t.notOk(files.some((f) => f.startsWith('src/native/build/')), 'no native build leftovers');
  t.notOk(files.some((f) => f.endsWith('.map')), 'no source maps pointing at sources not shipped');
  const leaking = files.filter((f) => readFileSync(join(unpacked, 'package', f), 'latin1').includes(ROOT));
  t.same(leaking, [], "no file carries the builder's paths");
  const pkg = JSON.parse(readFileSync(join(unpacked, 'package', 'package.json'), 'utf8')) as { bin: Record<string, string>; exports: Record<string, Record<string, string>> };
  for (const target of [...Object.values(pkg.bin), ...Object.values(pkg.exports['.']!)]) {
    t.ok(files.includes(target.replace(/^\.\//, '')), `package.json points at a shipped file: ${target}`);
  }
});

const consumer = join(work, 'consumer');
const installed = join(consumer, 'node_modules', 'wsplice');

t.test('the tarball installs into a fresh project; `npm rebuild wsplice` builds the native relay there', async (t) => {
  if (!tarball) return t.fail('no tarball');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  // First as an install that skips scripts (what the README's rebuild advice is for) ...
  const r = run('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-package-lock', tarball], consumer);
  t.equal(r.status, 0, show(r, 'npm install (cache first) succeeds'));
  t.ok(existsSync(join(installed, 'dist/src/index.js')), 'wsplice is in node_modules');
  t.notOk(existsSync(join(consumer, 'node_modules', 'typescript')), 'the TypeScript compiler is not needed');
  const addon = join(installed, 'src/native/build/Release/wsplice_relay.node');
  t.notOk(existsSync(addon), 'scripts skipped: no addon yet');
  const cli = (): SpawnSyncReturns<string> => run(process.execPath, [join(installed, 'dist/src/cli/main.js'), '--version'], consumer, 30_000);
  const before = cli();
  t.equal(before.status, 0, show(before, 'the installed CLI runs without the addon'));
  t.match(before.stdout, /^wsplice \d+\.\d+\.\d+/);
  t.match(before.stdout, /relay: js/, 'on the JS relay');
  // ... then the package's install script, run as `npm rebuild wsplice` runs it (and `npm install` does).
  const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.equal(pkg.scripts.install, 'node src/native/build.cjs', 'the install script builds the relay');
  const canBuild = process.platform === 'linux' && existsSync(join(ROOT, 'src/native/build/Release/wsplice_relay.node'));
  if (!canBuild) return t.comment('this machine does not build the addon (the repository has none): the JS relay stays');
  const rebuild = run('npm', ['rebuild', 'wsplice', '--foreground-scripts'], consumer);
  t.equal(rebuild.status, 0, show(rebuild, 'npm rebuild wsplice succeeds'));
  t.match(rebuild.stdout, /wsplice: native splice relay built/, 'the install script says it built the relay');
  t.ok(existsSync(addon), 'the addon was compiled in the consumer project');
  t.notOk(existsSync(join(installed, 'src/native/build/build.log')) && readFileSync(join(installed, 'src/native/build/build.log'), 'utf8').includes(ROOT),
    "the consumer's build log names no path of this repository");
  t.match(cli().stdout, /relay: splice/, 'and the CLI now uses the relay it built');
});

t.test('require() loads the ESM package (no top-level await) where Node has require(esm)', async (t) => {
  if (!existsSync(installed)) return t.fail('not installed');
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  if (major < 22 && !(major === 20 && minor >= 19)) return t.pass(`Node ${process.version} has no require(esm)`);
  const r = run(process.execPath, ['-e', "const w = require('wsplice'); if (typeof w.createProxy !== 'function') process.exit(3)"], consumer, 30_000);
  t.equal(r.status, 0, show(r, "require('wsplice') works"));
});

/** The first ```ts block under "## Library" in the installed README, with its fixed ports swapped for real backends. */
function readmeExample(t: Test, backends: [number, number]): string {
  const readme = readFileSync(join(installed, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Library'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  t.match(code, /from 'wsplice'/, 'the README library example imports the package by name');
  const swaps: Array<[string, string]> = [
    ["'127.0.0.1:3001'", `'127.0.0.1:${backends[0]}'`],
    ["'127.0.0.1:3002'", `'127.0.0.1:${backends[1]}'`],
    ['port: 8080', 'port: 0'],
  ];
  let out = code;
  for (const [from, to] of swaps) {
    t.ok(out.includes(from), `the example still uses ${from} (the test swaps it for a live one)`);
    out = out.replace(from, to);
  }
  return out;
}

function tsc(project: string): SpawnSyncReturns<string> {
  return run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', project], consumer, 120_000);
}

t.test('the README example type-checks under nodenext and bundler, and runs', async (t) => {
  if (!existsSync(installed)) return t.fail('not installed');
  const a = await wsEcho('A');
  const b = await wsEcho('B');
  t.teardown(async () => { await closeWss(a); await closeWss(b); });
  writeFileSync(join(consumer, 'example.ts'), readmeExample(t, [port(a), port(b)]));
  // Proof that the types resolved to the package's declarations, not to `any`: misuse must not compile.
  writeFileSync(join(consumer, 'misuse.ts'), [
    "import { createProxy, type ProxyOptions, type TunnelCloseEvent } from 'wsplice';",
    '// @ts-expect-error: upstreams is an object of groups',
    'export const bad: ProxyOptions = { upstreams: 42 };',
    "export const onClose = (e: TunnelCloseEvent): number => e.bytesUp + e.bytesDown;",
    'export const make = (): number => createProxy({ upstreams: {} }).stats().tunnels;',
    '',
  ].join('\n'));
  const files = ['example.ts', 'misuse.ts'];
  const base = {
    target: 'ES2022', strict: true, skipLibCheck: true, lib: ['ES2023'], types: ['node'],
    typeRoots: [join(ROOT, 'node_modules/@types')],
  };
  writeFileSync(join(consumer, 'tsconfig.nodenext.json'), JSON.stringify({
    compilerOptions: { ...base, module: 'NodeNext', moduleResolution: 'NodeNext', outDir: 'out' }, files,
  }));
  writeFileSync(join(consumer, 'tsconfig.bundler.json'), JSON.stringify({
    compilerOptions: { ...base, module: 'ESNext', moduleResolution: 'Bundler', noEmit: true }, files,
  }));
  const nodenext = tsc('tsconfig.nodenext.json');
  t.equal(nodenext.status, 0, show(nodenext, 'tsc, moduleResolution nodenext'));
  const bundler = tsc('tsconfig.bundler.json');
  t.equal(bundler.status, 0, show(bundler, 'tsc, moduleResolution bundler'));
  if (nodenext.status !== 0) return;

  const child = spawn(process.execPath, ['out/example.js'], { cwd: consumer, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const listening = await within(new Promise<number>((resolve, reject) => {
    child.stdout.on('data', () => {
      const m = /listening on .*port: (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then((code) => reject(new Error(`the example exited (${code}): ${out}`)));
  }), 30_000, 'the example to listen');
  const names: string[] = [];
  for (let i = 0; i < 3; i++) {
    const ws = await openWs(`ws://127.0.0.1:${listening}/websocket`);
    names.push(await whoami(ws));
    const closed = new Promise((r) => ws.once('close', r));
    ws.close();
    await closed;
  }
  t.same([...names].sort(), ['A', 'B', 'B'], 'weight 1 and 2: one tunnel to A, two to B');
  await within(new Promise<void>((resolve) => {
    const check = (): void => { if ((out.match(/^closed /gm) ?? []).length === 3) resolve(); };
    check();
    child.stdout.on('data', check);
  }), 10_000, 'three tunnelClose lines');
  t.match(out, /^tunnel \d+ to 127\.0\.0\.1:\d+ via (js|splice)$/m, "the example's tunnel event line");
  child.kill('SIGTERM');
  t.equal(await within(exited, 15_000, 'the example to exit on SIGTERM'), 0, 'SIGTERM closes it gracefully');
});

/** The ```ts blocks under "### Embedding" in the installed README, ports swapped for live backends. */
function embeddingExamples(t: Test, chat: number, api: number): string[] {
  const readme = readFileSync(join(installed, 'README.md'), 'utf8');
  const start = readme.indexOf('\n### Embedding');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  t.equal(blocks.length, 3, 'three embedding examples: node:http, Express, Fastify');
  return blocks.map((code) => {
    for (const from of ["'127.0.0.1:3001'", "'127.0.0.1:3002'", '8080']) t.ok(code.includes(from), `an example uses ${from}`);
    return code.replace("'127.0.0.1:3001'", `'127.0.0.1:${chat}'`).replace("'127.0.0.1:3002'", `'127.0.0.1:${api}'`).replace('8080', '0');
  });
}

t.test('the README embedding examples (node:http, Express, Fastify) type-check and run in the installed project', async (t) => {
  if (!existsSync(installed)) return t.fail('not installed');
  const deps = run('npm', ['install', '--prefer-offline', '--no-package-lock', '--no-save', 'express@5', 'fastify@5', '@types/express@5'], consumer);
  t.equal(deps.status, 0, show(deps, 'express and fastify install into the consumer'));
  if (deps.status !== 0) return;
  const chat = await wsEcho('chat');
  const api = await httpBackend();
  t.teardown(async () => { await closeWss(chat); await api.close(); });
  const files = ['embed-http.ts', 'embed-express.ts', 'embed-fastify.ts'];
  embeddingExamples(t, port(chat), api.port).forEach((code, i) => writeFileSync(join(consumer, files[i]!), code));
  const base = { target: 'ES2022', strict: true, skipLibCheck: true, lib: ['ES2023'], types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] };
  writeFileSync(join(consumer, 'tsconfig.embed.json'), JSON.stringify({
    compilerOptions: { ...base, module: 'NodeNext', moduleResolution: 'NodeNext', outDir: 'out' }, files,
  }));
  writeFileSync(join(consumer, 'tsconfig.embed-bundler.json'), JSON.stringify({
    compilerOptions: { ...base, module: 'ESNext', moduleResolution: 'Bundler', noEmit: true }, files,
  }));
  const nodenext = tsc('tsconfig.embed.json');
  t.equal(nodenext.status, 0, show(nodenext, 'tsc, moduleResolution nodenext'));
  const bundler = tsc('tsconfig.embed-bundler.json');
  t.equal(bundler.status, 0, show(bundler, 'tsc, moduleResolution bundler'));
  if (nodenext.status !== 0) return;
  for (const f of files) {
    const child = spawn(process.execPath, [join('out', f.replace(/\.ts$/, '.js'))], { cwd: consumer, stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const p = await within(new Promise<number>((resolve, reject) => {
      child.stdout.on('data', () => {
        const m = /listening on .*port: (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      void exited.then((code) => reject(new Error(`${f} exited (${code}): ${out}`)));
    }), 30_000, `${f} to listen`);
    t.equal((await httpGet(p, '/')).body, 'app', `${f}: the app's own route`);
    t.equal((await httpGet(p, '/api/items', { method: 'POST' }, 'b')).body, 'POST /api/items b', `${f}: /api through proxy.web`);
    const ws = await openWs(`ws://127.0.0.1:${p}/ws/live`);
    t.equal(await whoami(ws), 'chat', `${f}: /ws through proxy.ws`);
    ws.terminate();
    child.kill('SIGKILL');
    await exited;
  }
});
