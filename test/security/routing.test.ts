// Host / authority disagreement: with two virtual servers (a.test -> backend A,
// b.test -> backend B), no combination of Host header and request target can be
// routed one way and reach the other. Absolute-form targets are accepted as RFC
// 9112 3.2.2 says: the target's authority replaces Host, both for routing and in
// the Host forwarded upstream. nginx 1.22 does the same (measured: `GET
// http://b.test/x` + `Host: a.test` reaches the backend as `GET /x` + `Host:
// b.test`); HAProxy 2.6 answers 400 when Host and the authority disagree.
import t from 'tap';
import { connBytes, parseRequests, rawExchange, RecordingBackend, startProxy } from './fixtures/harness.js';

const A = await new RecordingBackend().listen();
const B = await new RecordingBackend().listen();
const h = await startProxy({
  upstreams: { A: { servers: [`127.0.0.1:${A.port}`] }, B: { servers: [`127.0.0.1:${B.port}`] } },
  routes: [
    { path: '/', upstream: 'A', hosts: ['a.test'] },
    { path: '/', upstream: 'B', hosts: ['b.test'] },
  ],
});
t.teardown(async () => {
  await h.proxy.close();
  await A.close();
  await B.close();
});

const vhostOf: Record<string, RecordingBackend> = { 'a.test': A, 'b.test': B };

/** `B.Test:80` -> `b.test` */
function hostName(host: string): string {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}

interface Seen {
  backend: 'A' | 'B' | null;
  head: string;
  status: number | undefined;
}

async function send(request: string): Promise<Seen> {
  const a0 = A.conns.length;
  const b0 = B.conns.length;
  const r = await rawExchange(h.port, [request]);
  await Promise.all([A.settled(), B.settled()]);
  const newA = A.conns.slice(a0);
  const newB = B.conns.slice(b0);
  if (newA.length + newB.length > 1) throw new Error('one request reached more than one upstream connection');
  const conn = newA[0] ?? newB[0];
  return {
    backend: newA.length === 1 ? 'A' : newB.length === 1 ? 'B' : null,
    head: conn === undefined ? '' : connBytes(conn).toString('latin1'),
    status: r.statuses[0],
  };
}

const HOSTS = ['a.test', 'b.test', 'A.TEST', 'b.test:8080', 'B.test:80', 'c.test', '[::1]', '127.0.0.1', null];
const TARGETS = [
  '/x', '/b.test/x', '//b.test/x', 'http://a.test/x', 'http://B.TEST:80/y?q=1', 'https://b.test', 'http://b.test?q',
  'http://c.test/', 'HTTP://a.test/', 'http://a.test:8080/p',
];

t.test('every Host x target combination reaches exactly the backend of the Host it forwards (and nothing else)', async (t) => {
  let forwarded = 0;
  for (const host of HOSTS) {
    for (const target of TARGETS) {
      const req = `GET ${target} HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`;
      const seen = await send(req);
      const label = JSON.stringify(req);
      const absolute = /^https?:\/\//i.test(target);
      const authority = absolute ? /^https?:\/\/([^/?#]*)/i.exec(target)![1]! : null;
      const effective = authority ?? host;
      if (seen.backend === null) {
        t.ok(seen.status !== undefined && seen.status >= 400 && seen.status < 500, `${label}: refused with a 4xx (${seen.status})`);
        // Refused only for no Host line (RFC 9112 3.2: 400 for any HTTP/1.1 request without one,
        // absolute-form or not) or no vhost for the effective host (404).
        t.ok(host === null || vhostOf[hostName(effective!)] === undefined, `${label}: a routable request was not refused`);
        continue;
      }
      forwarded++;
      const parsed = parseRequests(seen.head);
      t.equal(parsed.messages.length, 1, `${label}: one request upstream`);
      const fwd = parsed.messages[0]!.head;
      const hosts = fwd.values.filter((_, i) => fwd.keys[i] === 'host');
      t.equal(hosts.length, 1, `${label}: exactly one Host upstream`);
      const fwdHost = hosts[0]!;
      t.equal(vhostOf[hostName(fwdHost)] === A ? 'A' : vhostOf[hostName(fwdHost)] === B ? 'B' : null, seen.backend,
        `${label}: reached ${seen.backend}, the backend of the Host it carries (${fwdHost})`);
      t.equal(fwdHost, effective, `${label}: the forwarded Host is the ${absolute ? 'absolute-form authority' : 'client Host'}`);
      const xfh = fwd.values.filter((_, i) => fwd.keys[i] === 'x-forwarded-host');
      t.same(xfh, [fwdHost], `${label}: X-Forwarded-Host agrees with Host`);
      t.equal(fwd.target.charCodeAt(0), 0x2f, `${label}: origin-form target upstream (${fwd.target})`);
    }
  }
  t.ok(forwarded >= 20, `a good share of the combinations was forwarded (${forwarded})`);
});

t.test('absolute-form authority wins over a disagreeing Host: routed to B, Host: b.test upstream, A sees nothing', async (t) => {
  const seen = await send('GET http://b.test/admin HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
  t.equal(seen.status, 200);
  t.equal(seen.backend, 'B');
  t.match(seen.head, /^GET \/admin HTTP\/1\.1\r\nHost: b\.test\r\n/);
  t.notMatch(seen.head, /a\.test/, 'the disagreeing Host is not forwarded anywhere in the head');
});

t.test('a client X-Forwarded-Host cannot name another vhost upstream', async (t) => {
  const seen = await send('GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Host: b.test\r\nConnection: close\r\n\r\n');
  t.equal(seen.backend, 'A');
  t.equal((seen.head.match(/^x-forwarded-host:/gim) ?? []).length, 1, 'one X-Forwarded-Host');
  t.match(seen.head, /^X-Forwarded-Host: a\.test\r$/m);
});

t.test('keep-alive: each request on one client connection goes to its own vhost, on its own upstream connection', async (t) => {
  const a0 = A.conns.length;
  const b0 = B.conns.length;
  const r = await rawExchange(h.port, [
    'GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n' +
      'GET http://b.test/2 HTTP/1.1\r\nHost: a.test\r\n\r\n' +
      'GET /3 HTTP/1.1\r\nHost: b.test\r\n\r\n' +
      'GET /4 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n',
  ]);
  t.same(r.statuses, [200, 200, 200, 200]);
  await Promise.all([A.settled(), B.settled()]);
  const paths = (conns: typeof A.conns) => conns.map((c) => /^GET (\S+)/.exec(connBytes(c).toString('latin1'))?.[1]);
  t.same(paths(A.conns.slice(a0)), ['/1', '/4'], 'A got /1 and /4');
  t.same(paths(B.conns.slice(b0)), ['/2', '/3'], 'B got /2 and /3');
  for (const c of [...A.conns.slice(a0), ...B.conns.slice(b0)]) {
    t.equal(parseRequests(connBytes(c)).messages.length, 1, 'one request per upstream connection');
  }
});
