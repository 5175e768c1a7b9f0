// Macro benchmark runner: starts the echo backend, the load generator and every peer,
// runs each scenario round by round with the peers interleaved, writes bench/results/latest.{md,json}
// and ratios.svg. Usage: node dist/bench/macro/run.js [--full | --tiny] [--peers a,b] [--rounds N]
//   [--out DIR] [--install] [--keep] [--wait-quiet S] [--rerender latest.json] [--http-client auto|own|wrk] [--scenarios idPrefix,...]
//   [--baseline DIR] (another built checkout's wsplice-js/splice/auto as base-wsplice-*, for a before/after in one run)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseFlags } from 'node:util';
import { aggregate } from './report/aggregate.js';
import { renderChart } from './report/chart.js';
import { type Backend, LoadGen, startBackend } from './orchestrate/gen-driver.js';
import { type Sample, measure } from './orchestrate/measure.js';
import { ALL_PEERS, baselinePeers, type PeerContext, type PeerSpec, type RunningPeer } from './orchestrate/peers/peers.js';
import type { BenchCert } from './orchestrate/peers/configs.js';
import { type Mode, type Plan, makePlan } from './orchestrate/plan.js';
import { ULIMIT_SH, freePort, killAllNow } from './orchestrate/proc.js';
import { type RunMeta, renderMarkdown } from './report/report.js';
import { fmt } from './report/format.js';
import { disturbed, waitQuiet } from './orchestrate/quiet.js';

interface Args {
  mode: Mode;
  peers: string[] | null;
  rounds: number | null;
  out: string | null;
  install: boolean;
  httpClient: 'auto' | 'own' | 'wrk';
  /** Scenario id prefixes to keep (e.g. "handshake,pingpong-c50"); null = all of the mode's. */
  scenarios: string[] | null;
  /** Keep the temp dir (configs, nginx/haproxy logs) for a look after the run. */
  keep: boolean;
  /** Wait up to this many seconds for the machine to be quiet before starting (shared machines). */
  waitQuietS: number;
  /** Only re-render latest.md and ratios.svg from this latest.json (no measuring). */
  rerender: string | null;
  /** Another built checkout: its wsplice-js/splice/auto run as base-wsplice-* beside this tree's, interleaved. */
  baseline: string | null;
}

/** The flags, read by node:util parseArgs (unknown ones are an error). */
function parseArgs(argv: string[]): Args {
  const { values: v } = parseFlags({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      full: { type: 'boolean' }, tiny: { type: 'boolean' }, quick: { type: 'boolean' },
      peers: { type: 'string' }, rounds: { type: 'string' }, out: { type: 'string' },
      install: { type: 'boolean' }, keep: { type: 'boolean' }, 'wait-quiet': { type: 'string' },
      rerender: { type: 'string' }, scenarios: { type: 'string' }, 'http-client': { type: 'string' },
      baseline: { type: 'string' },
    },
  });
  const list = (s: string | undefined): string[] | null => (s === undefined ? null : s.split(',').map((x) => x.trim()).filter(Boolean));
  const num = (flag: string, s: string | undefined): number | null => {
    if (s === undefined) return null;
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag} needs a number, not ${JSON.stringify(s)}`);
    return n;
  };
  const client = v['http-client'] ?? 'auto';
  if (client !== 'auto' && client !== 'own' && client !== 'wrk') throw new Error(`--http-client is auto, own or wrk, not ${JSON.stringify(client)}`);
  return {
    mode: v.full ? 'full' : v.tiny ? 'tiny' : 'quick',
    peers: list(v.peers),
    rounds: num('rounds', v.rounds),
    out: v.out ?? null,
    install: v.install ?? false,
    httpClient: client,
    scenarios: list(v.scenarios),
    keep: v.keep ?? false,
    waitQuietS: num('wait-quiet', v['wait-quiet']) ?? 0,
    rerender: v.rerender ?? null,
    baseline: v.baseline === undefined ? null : resolve(v.baseline),
  };
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);

function sh(cmd: string): string {
  try {
    return execFileSync('bash', ['-c', cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return '';
  }
}

/** A self-signed EC certificate for localhost in the run's dir, for every peer's TLS listener; null without openssl. */
function makeCert(dir: string): BenchCert | null {
  const cert = join(dir, 'bench-cert.pem');
  const key = join(dir, 'bench-key.pem');
  const pem = join(dir, 'bench-combined.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
      '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return { cert, key, pem };
}

async function startPeer(spec: PeerSpec, ctx: PeerContext): Promise<RunningPeer> {
  return spec.start(ctx, spec.name === 'direct' ? ctx.backendPort : await freePort());
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const args = parseArgs(process.argv.slice(2));
  if (args.rerender) return rerender(args.rerender, args.out);
  // dist/bench/macro/run.js -> repository root
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  const distMacro = join(root, 'dist/bench/macro');
  if (args.install) execFileSync('bash', [join(root, 'bench/macro/orchestrate/peers/install.sh')], { stdio: 'inherit' });

  if (args.waitQuietS > 0) {
    log(`waiting up to ${args.waitQuietS} s for the machine to be quiet...`);
    log((await waitQuiet(args.waitQuietS * 1000, 10)) ? 'quiet' : 'still busy: starting anyway');
  }
  const maxFds = Number(sh(`${ULIMIT_SH}; ulimit -n`)) || 1024;
  const plan = makePlan(args.mode, maxFds);
  if (args.rounds) plan.rounds = args.rounds;
  if (args.scenarios) plan.scenarios = plan.scenarios.filter((sc) => args.scenarios!.some((p) => sc.id.startsWith(p)));
  if (plan.scenarios.length === 0) throw new Error('no scenario left after --scenarios');
  const useWrk = args.httpClient === 'wrk' || (args.httpClient === 'auto' && args.mode !== 'tiny' && sh('command -v wrk') !== '');
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-bench-'));
  const outDir = args.out ? resolve(args.out) : join(root, 'bench/results');

  const backend: Backend = await startBackend(distMacro);
  const gen = LoadGen.start(distMacro);
  const ctx: PeerContext = { root, dir, backendPort: backend.port, maxFds, cert: makeCert(dir) };
  if (ctx.cert === null) log('no openssl: the wss rows are skipped');
  const skipped: RunMeta['skipped'] = [];
  const running = new Map<string, { spec: PeerSpec; peer: RunningPeer }>();
  const wanted = ALL_PEERS.filter((p) => !args.peers || args.peers.includes(p.name));
  // Each baseline twin runs right after its peer of this tree, so both see the same moment of the machine.
  for (const b of args.baseline ? baselinePeers(args.baseline, wanted.map((p) => p.name)) : []) {
    wanted.splice(wanted.findIndex((p) => `base-${p.name}` === b.name) + 1, 0, b);
  }
  for (const name of args.peers ?? []) {
    if (!ALL_PEERS.some((p) => p.name === name)) throw new Error(`unknown peer ${name} (${ALL_PEERS.map((p) => p.name).join(', ')})`);
  }
  const versions: Record<string, string> = { node: process.version };
  for (const spec of wanted) {
    const why = spec.unavailable(ctx);
    if (why) {
      skipped.push({ peer: spec.name, reason: why });
      log(`skip ${spec.name}: ${why}`);
      continue;
    }
    try {
      running.set(spec.name, { spec, peer: await startPeer(spec, ctx) });
      if (spec.name !== 'direct') versions[spec.name.replace(/-(1w|auto|js|splice)$/, '')] = spec.version(ctx);
      log(`started ${spec.name}`);
    } catch (e) {
      skipped.push({ peer: spec.name, reason: `launch failed: ${(e as Error).message}` });
      log(`skip ${spec.name}: launch failed: ${(e as Error).message}`);
    }
  }
  if (useWrk) versions.wrk = sh('wrk -v 2>&1 | head -1').replace(/^wrk (?:debian\/)?(\S+).*/, 'wrk $1');

  const samples: Sample[] = [];
  const discarded: Sample[] = [];
  const mctx = { plan, gen, backend, useWrk };
  const runOne = async (sc: (typeof plan.scenarios)[number], round: number, name: string, entry: { spec: PeerSpec; peer: RunningPeer }): Promise<Sample> => {
    try {
      // Idle: a fresh process, so earlier load does not hide (or inflate) the per-tunnel memory.
      // A peer that died in an earlier scenario is restarted too, once per sample.
      if ((sc.kind === 'idle' || entry.peer.pids().length === 0) && name !== 'direct') {
        await entry.peer.stop();
        entry.peer = await startPeer(entry.spec, ctx);
      }
      const m = await measure(mctx, sc, entry.peer, name === 'direct');
      const s: Sample = { scenario: sc.id, peer: name, round, ...m };
      s.disturbed = disturbed(s);
      const head = sc.kind === 'stream' ? `${fmt(m.values.mibps ?? NaN)} MiB/s`
        : sc.kind === 'idle' ? `${fmt(m.values.kibPerTunnel ?? NaN)} KiB/tunnel, idle CPU ${fmt(m.values.idleCpuPct ?? NaN)}%`
        : `${fmt(m.values.rate ?? NaN)}/s`;
      log(`[${sc.id} r${round}] ${name}: ${head}${m.ok ? '' : `  FAILED: ${m.error}`} (${(m.elapsedMs / 1000).toFixed(1)} s` +
        `${s.disturbed ? `, outside load ${fmt(m.values.otherCpuPct ?? NaN)}%` : ''})`);
      return s;
    } catch (e) {
      log(`[${sc.id} r${round}] ${name}: FAILED: ${(e as Error).message}`);
      return { scenario: sc.id, peer: name, round, ok: false, error: (e as Error).message, client: 'loadgen', values: {}, result: null, elapsedMs: NaN };
    }
  };
  let retrySeconds = 0;
  for (const sc of plan.scenarios) {
    let retries = 0;
    for (let round = 1; round <= plan.rounds; round++) {
      const roundStart = Date.now();
      const roundSamples: Sample[] = [];
      for (const [name, entry] of running) {
        if (sc.kind === 'idle' && name === 'direct') continue; // no proxy to weigh
        if (sc.tls && entry.peer.tlsPort === undefined) continue; // no TLS listener: n/a
        if (entry.spec.kinds && !entry.spec.kinds.includes(sc.kind)) continue; // a variant for other rows
        roundSamples.push(await runOne(sc, round, name, entry));
      }
      // Other processes took CPU during this round: measure it again (bounded in count and time).
      const roundSeconds = (Date.now() - roundStart) / 1000;
      if (roundSamples.some((s) => s.disturbed) && retries < plan.maxRetries && retrySeconds + roundSeconds + 5 <= plan.retryBudgetS) {
        retries++;
        discarded.push(...roundSamples);
        log(`[${sc.id} r${round}] outside load during the round: measuring it again (${retries}/${plan.maxRetries})`);
        const w0 = Date.now();
        await waitQuiet(5000);
        retrySeconds += roundSeconds + (Date.now() - w0) / 1000;
        round--;
        continue;
      }
      samples.push(...roundSamples);
    }
  }

  for (const { peer } of running.values()) await peer.stop();
  await gen.stop();
  killAllNow();
  if (args.keep) log(`kept configs and logs in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });

  const peers = [...running.keys()];
  const meta: RunMeta = {
    date: new Date().toISOString(),
    mode: args.mode,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    kernel: release(),
    versions,
    rounds: plan.rounds,
    fdLimit: maxFds,
    peers,
    skipped,
    httpClient: useWrk ? `wrk -t1 (${versions.wrk ?? 'wrk'}), after a warm-up with the generator's own client` : "the generator's own client",
    seconds: (Date.now() - t0) / 1000,
    idleWarmTunnels: plan.idleWarmTunnels,
    idleWindowMs: plan.idleWindowMs,
    repeatedRounds: discarded.length ? new Set(discarded.map((d) => `${d.scenario} r${d.round}`)).size : 0,
  };
  writeResults(outDir, meta, plan, samples, discarded);
}

/** latest.json (everything), latest.md and ratios.svg (rendered from it), summary on stdout. */
function writeResults(outDir: string, meta: RunMeta, plan: Plan, samples: Sample[], discarded: Sample[]): void {
  const rows = aggregate(plan.scenarios, meta.peers, samples);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify({ meta, plan, rows, samples, discarded }, null, 1)}\n`);
  const md = renderMarkdown(meta, rows, samples);
  writeFileSync(join(outDir, 'latest.md'), md);
  writeFileSync(join(outDir, 'ratios.svg'), renderChart(rows, meta.peers, `${meta.mode} mode, ${meta.date.slice(0, 10)}, ${meta.cores} cores shared by generator, backend and proxy`));
  // The summary on stdout too, so a run in a terminal shows its result.
  process.stdout.write(`${md.slice(md.indexOf('## Summary'), md.indexOf('![ratios]'))}`);
  log(`wrote ${join(outDir, 'latest.md')} (${Math.round(meta.seconds)} s)`);
}

/** --rerender: the report again from a saved latest.json (e.g. after a change to the report's layout). */
function rerender(file: string, out: string | null): void {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { meta: RunMeta; plan: Plan; samples: Sample[]; discarded?: Sample[] };
  writeResults(out ? resolve(out) : dirname(resolve(file)), saved.meta, saved.plan, saved.samples, saved.discarded ?? []);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    killAllNow();
    log(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exit(1);
  },
);
