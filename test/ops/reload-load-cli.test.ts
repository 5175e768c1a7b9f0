/**
 * Reload under load from the command line, as an operator does it: 100 `ws`
 * tunnels through `wsplice -c FILE` stream checksummed binary messages; half
 * way, the file is rewritten with a new backend and SIGHUP sent. Every tunnel
 * echoes exactly what it sent and stays on its backend, new connections go to
 * the new file's backend; then a broken file is sent the same way, mid-stream
 * again, and changes nothing. /metrics is scraped all through both reloads:
 * every scrape answers and parses, and the end counts say what happened.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type WebSocket from 'ws';
import { checksummedStream, closeWss, freePort, openWs, port, startCli, waitFor, whoami, within, wsEcho } from '../support/index.js';

interface Family { name: string; metrics: Array<{ value?: string; labels?: Record<string, string> }> }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];
const sample = (families: Family[], name: string, labels: Record<string, string> = {}): number | undefined => {
  const m = families.find((f) => f.name === name)?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m === undefined ? undefined : Number(m.value);
};

const TUNNELS = 100;
const MESSAGES = 20;

t.test('SIGHUP with a new file under load on 100 tunnels: no byte lost, new connections by the new file; a broken file changes nothing', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-reload-load-'));
  const a = await wsEcho('a');
  const b = await wsEcho('b');
  const clients: WebSocket[] = [];
  t.teardown(async () => {
    for (const c of clients) c.terminate();
    await closeWss(a);
    await closeWss(b);
    rmSync(dir, { recursive: true, force: true });
  });
  const conf = join(dir, 'wsplice.json');
  const listen = await freePort();
  const write = (servers: string[]): void =>
    writeFileSync(conf, JSON.stringify({ listen: [`127.0.0.1:${listen}`], upstreams: { app: { servers } }, timeouts: { idleMs: 60_000 } }, null, 2));
  write([`127.0.0.1:${port(a)}`]);
  const cli = await startCli(['-c', conf, '--admin', '127.0.0.1:0'], t);
  const admin = /wsplice admin on (\S+)/.exec(cli.stdout())?.[1];
  t.ok(admin, 'the admin listener is up');
  const scrape = async (): Promise<Family[]> => {
    const res = await fetch(`http://${admin}/metrics`);
    t.equal(res.status, 200, 'a scrape answers');
    return parsePrometheus(await res.text());
  };
  /** Scrapes at once and then until `done` (at most 200 times): each must parse and name the generation. */
  let scrapes = 0;
  const scrapeUntil = async (done: () => boolean): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      const gen = sample(await scrape(), 'wsplice_config_generation');
      if (gen === 1 || gen === 2) scrapes++;
      if (done()) break;
    }
  };
  const url = `ws://127.0.0.1:${listen}/`;
  for (let i = 0; i < TUNNELS; i++) clients.push(await openWs(url));
  const names = async (list: WebSocket[]): Promise<string[]> => Promise.all(list.map((c) => whoami(c)));
  t.same(await names(clients), clients.map(() => 'a'), 'every tunnel on the first backend');

  /** One round of streams on every tunnel; `during` runs when each has sent half. */
  async function round(during: () => Promise<void>): Promise<number> {
    let halfway!: () => void;
    const mid = new Promise<void>((r) => (halfway = r));
    const streams = clients.slice(0, TUNNELS).map((c) => checksummedStream(c, MESSAGES, mid));
    await during();
    halfway();
    const results = await within(Promise.all(streams), 60_000, 'every stream to come back');
    return results.filter(([sent, got]) => sent === got).length;
  }

  const intact = await round(async () => {
    write([`127.0.0.1:${port(b)}`]);
    process.kill(cli.pid, 'SIGHUP');
    const reloaded = (): boolean => /reload ok: generation 2/.test(cli.stderr());
    await scrapeUntil(reloaded);
    await waitFor(reloaded, 20_000, 'the reload');
  });
  t.equal(intact, TUNNELS, 'every tunnel echoed exactly what it sent across the reload');
  t.same(await names(clients), clients.map(() => 'a'), 'every old tunnel stays on its backend');
  const fresh = await openWs(url);
  clients.push(fresh);
  t.equal(await whoami(fresh), 'b', 'a new connection follows the new file');

  const intactAgain = await round(async () => {
    writeFileSync(conf, '{"listen": ["127.0.0.1:' + listen + '"], "upstreams": {"app": {"servers": ["not an address"]}},\n "timeouts": {"idleMs": -1}}');
    process.kill(cli.pid, 'SIGHUP');
    const refused = (): boolean => /reload refused/.test(cli.stderr());
    await scrapeUntil(refused);
    await waitFor(refused, 20_000, 'the refusal');
  });
  t.equal(intactAgain, TUNNELS, 'every tunnel still echoes exactly what it sent across the refused reload');
  t.match(cli.stderr(), /reload: config error.*servers/, 'the bad server is logged');
  t.match(cli.stderr(), /reload: config error.*idleMs/, 'and the bad timeout');
  const after = await openWs(url);
  clients.push(after);
  t.equal(await whoami(after), 'b', 'new connections still follow the last good file');
  t.same(await names(clients.slice(0, TUNNELS)), clients.slice(0, TUNNELS).map(() => 'a'), 'old tunnels still on their backend');
  t.equal(await whoami(fresh), 'b');
  t.ok(scrapes >= 2, `every scrape during the reloads parsed and named a generation (${scrapes})`);
  const end = await scrape();
  t.equal(sample(end, 'wsplice_reloads_total', { result: 'ok' }), 1, 'one reload counted ok');
  t.equal(sample(end, 'wsplice_reloads_total', { result: 'error' }), 1, 'one counted as an error');
  t.equal(sample(end, 'wsplice_config_generation'), 2);
  t.equal(sample(end, 'wsplice_tunnels_open'), TUNNELS + 2, 'no tunnel ended');
});
