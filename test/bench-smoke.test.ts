// Smoke test of the macro benchmark runner: a tiny run (a fraction of a second per scenario) with
// only `direct` and `wsplice-js`, into a temp dir; checks the numbers are sane, never how fast.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Sample {
  scenario: string;
  peer: string;
  ok: boolean;
  error: string | null;
  values: Record<string, number>;
  result: { count: number; bytes: number; checksumOk: boolean; errors: number } | null;
}

interface Output {
  meta: { peers: string[]; skipped: { peer: string; reason: string }[]; cores: number; versions: Record<string, string> };
  samples: Sample[];
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const runner = join(root, 'dist/bench/macro/run.js');

t.test('bench runner, tiny mode: direct and wsplice-js', async (t) => {
  t.ok(existsSync(runner), 'dist/bench/macro/run.js is built (npm test builds it first)');
  if (!existsSync(runner)) return;
  const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));

  const r = spawnSync(process.execPath, [runner, '--tiny', '--peers', 'direct,wsplice-js', '--http-client', 'own', '--out', out], {
    cwd: root, encoding: 'utf8', timeout: 60_000,
  });
  t.equal(r.status, 0, `runner exits 0 (stderr: ${r.stderr.slice(-800)})`);

  const json = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Output;
  t.ok(json.meta.cores > 0, 'records the core count');
  t.ok(json.meta.versions.node, 'records the node version');
  const md = readFileSync(join(out, 'latest.md'), 'utf8');
  t.match(md, /compete/, 'the table says generator, backend and proxy compete for the cores');
  t.match(readFileSync(join(out, 'ratios.svg'), 'utf8'), /^<\?xml[\s\S]*<svg[\s\S]*<\/svg>\s*$/, 'writes an SVG chart');

  const peers = ['direct'];
  if (existsSync(join(root, 'dist/src/cli/main.js'))) peers.push('wsplice-js');
  else t.comment('dist/src/cli/main.js not built: only direct is checked');
  for (const peer of peers) {
    t.ok(json.meta.peers.includes(peer), `${peer} ran (skipped: ${JSON.stringify(json.meta.skipped)})`);
    const mine = json.samples.filter((s) => s.peer === peer);
    const kinds = new Set(mine.map((s) => s.scenario.split('-')[0]));
    for (const k of ['handshake', 'pingpong', 'stream', 'http']) t.ok(kinds.has(k), `${peer}: ${k} measured`);
    if (peer !== 'direct') t.ok(kinds.has('idle'), `${peer}: idle measured`);
    if (peer !== 'direct') t.ok(kinds.has('wss'), `${peer}: the wss rows measured through its TLS listener`);
    else t.notOk(kinds.has('wss'), 'direct has no TLS listener: no wss sample');
    for (const s of mine) {
      t.ok(s.ok, `${peer} ${s.scenario}: passed its checks (${s.error ?? ''})`);
      t.ok(s.result && s.result.count > 0, `${peer} ${s.scenario}: operations completed`);
      t.ok(s.result?.checksumOk, `${peer} ${s.scenario}: checksum ok`);
      t.equal(s.result?.errors, 0, `${peer} ${s.scenario}: no errors`);
      if (s.scenario.startsWith('stream')) t.ok((s.result?.bytes ?? 0) > 0 && s.values.mibps! > 0, `${peer}: bytes streamed`);
      if (s.scenario.startsWith('idle')) t.ok(Number.isFinite(s.values.kibPerTunnel), `${peer}: RSS per tunnel read`);
      else t.ok(s.values.rate! > 0, `${peer} ${s.scenario}: rate > 0`);
    }
  }
});

t.test('bench runner: --baseline runs another checkout as base-wsplice-*, right after its twin', async (t) => {
  t.ok(existsSync(join(root, 'dist/src/cli/main.js')), 'dist/src/cli/main.js is built (npm test builds it first)');
  const out = mkdtempSync(join(tmpdir(), 'bench-smoke-base-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // This checkout stands in for the other one: the runner must start the CLI found under the given root.
  const r = spawnSync(process.execPath, [runner, '--tiny', '--peers', 'wsplice-js', '--scenarios', 'handshake', '--http-client', 'own', '--baseline', root, '--out', out], {
    cwd: root, encoding: 'utf8', timeout: 60_000,
  });
  t.equal(r.status, 0, `runner exits 0 (stderr: ${r.stderr.slice(-800)})`);
  const json = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Output;
  t.same(json.meta.peers, ['wsplice-js', 'base-wsplice-js'], 'the baseline twin runs right after its peer');
  t.match(json.meta.versions['base-wsplice'] ?? '', root, 'the baseline records which checkout it ran');
  const base = json.samples.filter((s) => s.peer === 'base-wsplice-js');
  t.ok(base.length > 0 && base.every((s) => s.ok && (s.result?.count ?? 0) > 0), 'the baseline completed its handshakes');
  t.notOk(base.some((s) => s.scenario.startsWith('wss')), 'a baseline has no TLS listener');
});

t.test('bench runner: an unknown flag or a bad number is an error, not a silent default', async (t) => {
  for (const [args, pattern] of [[['--rounds', 'x'], /--rounds needs a number/], [['--no-such-flag'], /no-such-flag/], [['--http-client', 'curl'], /--http-client is auto, own or wrk/]] as const) {
    const r = spawnSync(process.execPath, [runner, ...args], { cwd: root, encoding: 'utf8', timeout: 20_000 });
    t.equal(r.status, 1, `${args.join(' ')}: exit 1`);
    t.match(r.stderr, pattern, `${args.join(' ')}: says why`);
  }
});

t.test('npm run bench: the flags given after -- reach the macro bench, not the hand-over bench behind it', async (t) => {
  const entry = join(root, 'dist/bench/run.js');
  t.ok(existsSync(entry), 'dist/bench/run.js is built');
  // A bad value the macro bench refuses: had it gone to the hand-over bench, that would have run for minutes.
  const r = spawnSync(process.execPath, [entry, '--rounds', 'x'], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 1, 'exit 1');
  t.match(r.stderr, /--rounds needs a number/, 'the macro bench read the flag');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(pkg.scripts.bench ?? "", /node dist\/bench\/run\.js$/, 'npm run bench ends with the entry, so npm appends the flags to it');
});
