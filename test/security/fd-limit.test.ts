// The default connection limit comes from the fd limit (RLIMIT_NOFILE), with room for
// each connection's upstream socket, the retired and pooled ones and a fixed reserve;
// --version says it. Proven on a child started under `ulimit -n`: past the derived
// limit a new connection is closed at accept instead of the process running out of fds.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { defaultMaxConnections, FD_RESERVE, nofileLimit } from '../../src/limits/nofile.js';
import { resolveOptions } from '../../src/options.js';
import { CLI, closed, connect, freePort, httpBackend, rawExchange, waitFor } from '../support/index.js';

t.test('the soft RLIMIT_NOFILE, as the shell sees it', async (t) => {
  const shell = Number(execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'latin1' }).trim());
  t.equal(nofileLimit(), shell);
});

t.test('derivation: two fds per connection after the reserve, the retired and the pooled sockets', async (t) => {
  t.equal(defaultMaxConnections(1024, 512, 0).max, (1024 - FD_RESERVE - 512) / 2);
  t.equal(defaultMaxConnections(65536, 512, 100).max, Math.floor((65536 - FD_RESERVE - 612) / 2));
  t.equal(defaultMaxConnections(100, 512, 0).max, 1, 'never below one');
  t.equal(defaultMaxConnections(null, 512, 0).max, 0, 'unknown: no limit');
  const o = resolveOptions({ upstreams: { b: { servers: ['127.0.0.1:1'], keepalive: { idle: 8 } } } });
  t.equal(o.limits.maxConnections, defaultMaxConnections(nofileLimit(), o.limits.maxRetired, 8).max, 'the default when none is configured');
  t.equal(resolveOptions({ upstreams: { b: { servers: ['127.0.0.1:1'] } }, limits: { maxConnections: -1 } }).limits.maxConnections, 0, '-1: no limit');
  t.equal(resolveOptions({ upstreams: { b: { servers: ['127.0.0.1:1'] } }, limits: { maxConnections: 7 } }).limits.maxConnections, 7);
});

/** The CLI under `ulimit -n N`. */
function underUlimit(n: number, args: string[]) {
  return spawn('/bin/sh', ['-c', `ulimit -n ${n} && exec "$0" "$@"`, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

t.test('--version names the derived limit', async (t) => {
  const child = underUlimit(300, ['--version']);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  t.match(out, /^connections: 1 = \(RLIMIT_NOFILE 300 - 64 reserved - 512 retired - 0 pooled\) \/ 2 fds each$/m);
});

t.test('under ulimit -n 300 (limit 1): the second client connection is closed at accept, the first is served', async (t) => {
  const backend = await httpBackend();
  t.teardown(() => backend.close());
  const p = await freePort();
  const child = underUlimit(300, ['--listen', `127.0.0.1:${p}`, '--upstream', `127.0.0.1:${backend.port}`]);
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('listening'), 15_000, 'the CLI to listen');
  const first = await connect(p);
  first.write('GET /a HTTP/1.1\r\nHost: a\r\n'); // a head in progress holds the connection
  await waitFor(async () => (await rawExchange(p, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', 2000)) === '', 5000, 'a second connection closed with no answer');
  first.write('Connection: close\r\n\r\n');
  const reply = await new Promise<string>((r) => {
    let s = '';
    first.on('data', (d: Buffer) => (s += d.toString()));
    first.on('end', () => r(s)); // allowHalfOpen: the proxy's FIN ends the reply
  });
  first.destroy();
  t.match(reply, /^HTTP\/1\.1 200 /, 'the first connection is served');
  await closed(first);
  // The proxy lets go of the first connection when it sees it closed: then a new one is served.
  await waitFor(async () => /^HTTP\/1\.1 200 /.test(await rawExchange(p, 'GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 2000)), 5000, 'a new connection served');
  t.pass('a new connection is accepted once the first is gone');
});
