#!/usr/bin/env node
// How node:cluster spreads connections over workers: each worker answers a connection with its pid
// and closes; the probe opens --conns connections, --parallel at a time, and counts them per worker.
// Figures in native-notes/workers.md come from this script.
//
//   node bench/workers/distribution.mjs [rr|none|reuseport] [--workers=N] [--conns=N] [--parallel=N]
//   rr: the primary accepts and hands each connection round robin (Node's default on Linux)
//   none: every worker accepts on the one shared socket (the kernel wakes whichever it picks)
//   reuseport: each worker binds its own socket with SO_REUSEPORT (Node >= 22.12 / 23.1)
import cluster from 'node:cluster';
import net from 'node:net';

const args = process.argv.slice(2);
const mode = args.find((a) => !a.startsWith('--')) ?? 'rr';
const opt = (name, dflt) => Number(args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);

if (cluster.isWorker) {
  const server = net.createServer((s) => s.end(`${process.pid}\n`));
  server.on('error', (err) => process.send({ error: `${err.code ?? err.message}` }));
  const port = Number(process.env.PROBE_PORT);
  // exclusive: each worker binds its own socket instead of asking the primary for a shared one.
  server.listen({ host: '127.0.0.1', port, ...(mode === 'reuseport' ? { reusePort: true, exclusive: true } : {}) }, () => process.send({ port: server.address().port }));
} else {
  await primary();
}

async function primary() {
  cluster.schedulingPolicy = mode === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  const n = opt('workers', 2);
  if (mode === 'reuseport' && !(await reusePortWorks())) {
    console.log(`reuseport: not supported by node ${process.version} (a second socket with reusePort gets EADDRINUSE)`);
    return;
  }
  // rr/none: every worker asks for port 0 and the primary shares one socket under that key.
  const fixed = mode === 'reuseport' ? await freePort() : 0;
  let port = fixed;
  const workers = [];
  for (let i = 0; i < n; i++) {
    const w = cluster.fork({ PROBE_PORT: String(fixed) });
    const msg = await new Promise((r) => w.once('message', r));
    if (msg.error) {
      console.log(`${mode}: worker ${i + 1} cannot listen: ${msg.error} (node ${process.version})`);
      for (const x of [...workers, w]) x.kill();
      return;
    }
    port = msg.port;
    workers.push(w);
  }
  const counts = new Map();
  const total = opt('conns', 2000);
  const parallel = opt('parallel', 20);
  let started = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (started < total) {
      started++;
      const pid = await once(port);
      counts.set(pid, (counts.get(pid) ?? 0) + 1);
    }
  }));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const per = [...counts.values()].sort((a, b) => b - a);
  console.log(`${mode} (node ${process.version}, ${n} workers, ${total} connections, ${parallel} in parallel): per worker ${per.join(' / ')}; max/min ${(per[0] / per[per.length - 1]).toFixed(2)}; ${Math.round(total / (ms / 1000))} conn/s`);
  for (const w of workers) w.kill();
}

function once(port) {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('data', (d) => (got += d));
    s.on('error', reject);
    s.on('close', () => resolve(got.trim()));
  });
}

async function reusePortWorks() {
  const port = await freePort();
  const open = () => new Promise((resolve) => {
    const s = net.createServer();
    s.on('error', () => resolve(null));
    s.listen({ host: '127.0.0.1', port, reusePort: true }, () => resolve(s));
  });
  const a = await open();
  const b = await open();
  a?.close();
  b?.close();
  return a !== null && b !== null;
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
