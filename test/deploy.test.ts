// The deployment recipes in deploy/ stay true: every flag they pass is one the CLI takes (checked by
// running `wsplice -t` with their arguments), every path exists in the built package, the ports
// agree (admin probes, listen, Service), the grace periods cover the drain, and the signals they
// send do what they say (SIGHUP reloads, SIGTERM drains and exits 0). Docker and Kubernetes are not
// needed: the files are parsed (YAML with the `yaml` package) and checked against the CLI.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

const root = resolve(import.meta.dirname, '..');
const BIN = join(root, 'dist/src/cli/main.js');
const TMP = mkdtempSync(join(tmpdir(), 'wsplice-deploy-'));
const CONFIG = { listen: ['127.0.0.1:0'], upstreams: { app: { servers: ['127.0.0.1:3000'] } } };

/** `wsplice -t` with these arguments, `-c FILE` pointed at `config` written to a temp file. */
function checkArgs(args: string[], config: unknown): { status: number | null; out: string } {
  const file = join(TMP, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  const i = args.indexOf('-c');
  const real = i >= 0 ? [...args.slice(0, i + 1), file, ...args.slice(i + 2)] : args;
  const r = spawnSync(process.execPath, [BIN, '-t', ...real], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

const portOf = (addr: string): number => Number(addr.slice(addr.lastIndexOf(':') + 1));

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerfile(text: string): Array<{ op: string; rest: string }> {
  return text.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => ({ op: l.split(/\s+/)[0]!.toUpperCase(), rest: l.slice(l.indexOf(' ') + 1).trim() }));
}

t.test('deploy/Dockerfile: multi-stage, non-root, SIGTERM, healthcheck on the admin port, CLI args valid', async (t) => {
  const ins = dockerfile(readFileSync(join(root, 'deploy/Dockerfile'), 'utf8'));
  const ops = (op: string) => ins.filter((i) => i.op === op);
  t.ok(ops('FROM').length >= 2, 'multi-stage');
  t.match(ops('FROM')[0]!.rest, / AS build$/, 'a build stage');
  const user = ops('USER').pop()?.rest;
  t.ok(user !== undefined && user !== 'root' && user !== '0', `runs as ${user}, not root`);
  t.equal(ops('STOPSIGNAL')[0]?.rest, 'SIGTERM');
  const entry = JSON.parse(ops('ENTRYPOINT')[0]!.rest) as string[];
  const cmd = JSON.parse(ops('CMD').pop()!.rest) as string[];
  t.same(entry.slice(0, 2), ['node', 'dist/src/cli/main.js'], 'the entry point is the package bin');
  t.equal(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin.wsplice, entry[1], 'as package.json names it');
  t.ok(existsSync(join(root, entry[1]!)), `${entry[1]} exists once built`);
  const checked = checkArgs(cmd, CONFIG);
  t.equal(checked.status, 0, `wsplice -t ${cmd.join(' ')} passes: ${checked.out}`);
  const admin = flagValue(cmd, '--admin');
  t.ok(admin !== undefined, 'the admin listener is on');
  const health = ops('HEALTHCHECK')[0]!.rest;
  t.match(health, new RegExp(`127\\.0\\.0\\.1:${portOf(admin!)}/healthz`), 'the healthcheck asks /healthz on the admin port');
  t.ok(ops('EXPOSE').some((e) => e.rest.split(/\s+/).includes(String(portOf(admin!)))), 'the admin port is exposed');
  // The native relay is copied where the loader looks for it, under the name it loads.
  const addon = readFileSync(join(root, 'src/relay/addon.ts'), 'utf8');
  const file = /ADDON_FILE = '([^']+)'/.exec(addon)![1]!;
  const copied = ops('COPY').map((c) => c.rest).find((c) => c.includes(file));
  t.ok(copied !== undefined, `the image copies ${file}`);
  t.match(copied!, new RegExp(`/src/native/build/Release/${file.replace('.', '\\.')}$`), 'to src/native/build/Release, where the loader looks from dist/src/relay');
  t.match(addon, /'\.\.\/\.\.\/\.\.\/src\/native\/build\/Release\/'/, 'the loader does look there');
  const ignore = readFileSync(join(root, 'deploy/Dockerfile.dockerignore'), 'utf8').split('\n');
  for (const p of ['node_modules', 'dist', 'src/native/build']) t.ok(ignore.includes(p), `the build context leaves out ${p}`);
});

t.test('deploy/kubernetes.yaml: probes on the admin port, grace period over preStop + drain, ports agree', async (t) => {
  const docs = parseAllDocuments(readFileSync(join(root, 'deploy/kubernetes.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  t.same(docs.map((d) => d.kind), ['ConfigMap', 'Deployment', 'Service']);
  const [cm, dep, svc] = docs as [Record<string, any>, Record<string, any>, Record<string, any>];
  const config = JSON.parse(cm.data['wsplice.json']) as { listen: string[] };
  const pod = dep.spec.template.spec;
  const c = pod.containers.find((x: { name: string }) => x.name === 'wsplice');
  t.ok(c, 'a wsplice container');
  t.ok(pod.containers.length >= 2, 'beside the app (a sidecar)');
  const mount = c.volumeMounts[0].mountPath as string;
  const cfgPath = flagValue(c.args, '-c')!;
  t.equal(cfgPath, `${mount}/wsplice.json`, 'the -c file is the mounted ConfigMap key');
  const checked = checkArgs(c.args, { ...config, listen: ['127.0.0.1:0'] });
  t.equal(checked.status, 0, `wsplice -t with the container's args and the ConfigMap's file passes: ${checked.out}`);
  const admin = portOf(flagValue(c.args, '--admin')!);
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.readinessProbe.httpGet.port, admin, 'readiness on the admin port');
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.equal(c.livenessProbe.httpGet.port, admin);
  const drainS = Number(flagValue(c.args, '--drain-timeout')) / 1000;
  const preStop = c.lifecycle.preStop.exec.command as string[];
  t.equal(preStop[0], 'sleep');
  t.ok(pod.terminationGracePeriodSeconds > Number(preStop[1]) + drainS, `grace ${pod.terminationGracePeriodSeconds} s > preStop ${preStop[1]} s + drain ${drainS} s`);
  const listenPort = portOf(config.listen[0]!);
  t.ok(c.ports.some((p: { containerPort: number }) => p.containerPort === listenPort), 'the listen port is a container port');
  t.equal(svc.spec.ports[0].targetPort, listenPort, 'the Service targets the listen port');
  t.equal(c.securityContext.runAsNonRoot, true);
});

t.test('deploy/wsplice.service: ExecStart valid; SIGHUP reloads (the process stays), SIGTERM drains and exits 0', async (t) => {
  const unit = readFileSync(join(root, 'deploy/wsplice.service'), 'utf8');
  const kv = new Map(unit.split('\n').filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const exec = kv.get('ExecStart')!.split(/\s+/);
  t.equal(exec[0], '/usr/bin/node');
  t.equal(exec[1], `${kv.get('WorkingDirectory')}/dist/src/cli/main.js`, 'the bin under WorkingDirectory');
  const args = exec.slice(2);
  const checked = checkArgs(args, CONFIG);
  t.equal(checked.status, 0, `wsplice -t ${args.join(' ')} passes: ${checked.out}`);
  t.equal(kv.get('ExecReload'), '/bin/kill -HUP $MAINPID');
  t.equal(kv.get('KillSignal'), 'SIGTERM');
  t.ok(Number(kv.get('TimeoutStopSec')) > Number(flagValue(args, '--drain-timeout')) / 1000, 'systemd waits longer than the drain');
  const logDir = kv.get('LogsDirectory')!;
  t.ok(flagValue(args, '--access-log')!.startsWith(`/var/log/${logDir}/`), 'the access log is in the LogsDirectory systemd creates');

  // The signals, on the real CLI (the unit's flags, a temp config, port 0).
  const file = join(TMP, 'unit.json');
  writeFileSync(file, JSON.stringify(CONFIG));
  const child = spawn(process.execPath, [BIN, '-q', '-c', file, '--admin', '127.0.0.1:0', '--drain-timeout', '300'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const adminAddr = await new Promise<string>((res, rej) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /wsplice admin on (\S+)\n[\s\S]*listening on/.exec(out);
      if (m) res(m[1]!);
    });
    child.once('exit', (code) => rej(new Error(`exited ${code}`)));
  });
  child.kill('SIGHUP');
  // Unhandled, SIGHUP ends the process before it can answer anything: this request tells.
  t.equal((await fetch(`http://${adminAddr}/readyz`)).status, 200, 'still serving after SIGHUP');
  t.equal(child.exitCode, null, 'still running');
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: drained and exit 0');
});
