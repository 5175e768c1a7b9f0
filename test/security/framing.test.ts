// Request smuggling on the head: every ambiguity RFC 9112 and the CVE families
// name (CL+TE, duplicate CL, obfuscated TE, obs-fold, bare LF/CR, whitespace
// before the colon, CTLs, bad targets, HTTP/0.9, the HTTP/2 preface, ...) is
// refused with its 4xx and the upstream receives no byte at all.
// Each test name says what nginx 1.22.1 and HAProxy 2.6.12 do with the same bytes
// (measured: test/security/fixtures/peers.ts).
import t from 'tap';
import { HEAD_CASES, MARKER, SMUGGLED } from './fixtures/cases.js';
import { connBytes, parseRequests, rawExchange, world } from './fixtures/harness.js';

const w = await world();
t.teardown(w.close);
// The same cases through an app's http.Server and proxy.ws. Only upgrades reach wsplice there:
// the app answers plain requests itself.
const embedded = await world({}, undefined, 'proxy.ws');
t.teardown(embedded.close);
// And through an app's http.Server handing plain requests to proxy.web: Node's parser reads each head
// first and answers some itself (400, no reason, no refused event). Node also answers a request without
// Host itself and then serves what follows it, and drops CONNECT without an answer: those two are
// Node's, left out here.
const web = await world({}, undefined, 'proxy.web');
t.teardown(web.close);
const FRONT_CASES = [
  { front: 'listener', fw: w, cases: HEAD_CASES },
  { front: 'proxy.ws', fw: embedded, cases: HEAD_CASES.filter((k) => k.upgrade === true) },
  { front: 'proxy.web', fw: web, cases: HEAD_CASES.filter((k) => k.id !== 'missing Host' && k.id !== 'CONNECT') },
] as const;

for (const { front, fw, cases } of FRONT_CASES) for (const c of cases) {
  t.test(`${front}: ${c.id}: refused with ${c.status.join('/')}, upstream receives nothing (nginx 1.22: ${c.nginx}; HAProxy 2.6: ${c.haproxy})`, async (t) => {
    const connsBefore = fw.backend.conns.length;
    const refusedBefore = fw.h.refused.length;
    const r = await rawExchange(fw.h.port, [c.bytes]);
    t.ok(r.statuses.length >= 1 && c.status.includes(r.statuses[0]!), `status ${r.statuses[0]} is one of ${c.status}`, { why: c.why, text: r.text.slice(0, 200) });
    t.equal(r.statuses.length, 1, 'exactly one response: the pipelined request behind it is never served');
    t.match(r.text, /Connection: close\r\n/, 'the proxy closes the connection after the refusal');
    t.equal(r.end, 'fin', 'the proxy ends the connection itself');
    t.equal(fw.backend.conns.length, connsBefore, 'no upstream connection was opened');
    t.notOk(fw.backend.conns.slice(connsBefore).some((k) => connBytes(k).includes(MARKER)), 'the smuggled request never reached an upstream');
    if (front === 'proxy.web' && !/\r\n\r\n\d{3} [^\r\n:]+: /.test(r.text)) return; // Node's own answer: no reason, no event
    t.equal(fw.h.refused.length, refusedBefore + 1, 'one refused event');
    t.equal(fw.h.refused.at(-1)?.status, r.statuses[0], 'the event carries the status sent');
  });
}

// Inputs that look like the cases above but are well-formed: they must be
// forwarded, and framed upstream exactly as wsplice framed them. Without these
// a proxy that refused everything would pass the suite.
interface AcceptCase {
  id: string;
  bytes: string;
  /** The body bytes (as framed on the wire) the upstream must receive. */
  body: string;
  /** Header lines the forwarded head must contain (case-insensitive match). */
  keeps: RegExp[];
  nginx: string;
  haproxy: string;
}

const H = 'Host: a.test\r\n';
const ACCEPT: AcceptCase[] = [
  {
    id: 'TE:\\tchunked (HTAB is OWS)',
    bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    body: '5\r\nhello\r\n0\r\n\r\n',
    keeps: [/^Transfer-Encoding: chunked\r$/im],
    nginx: 'forwarded', haproxy: 'forwarded',
  },
  {
    id: 'TE: CHUNKED (case-insensitive coding)',
    bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    body: '3\r\nabc\r\n0\r\n\r\n',
    keeps: [/^Transfer-Encoding: CHUNKED\r$/im],
    nginx: 'forwarded', haproxy: 'forwarded',
  },
  {
    id: 'Connection: content-length does not drop Content-Length',
    bytes: `POST / HTTP/1.1\r\n${H}Connection: content-length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    body: SMUGGLED,
    keeps: [new RegExp(`^Content-Length: ${SMUGGLED.length}\\r$`, 'im')],
    nginx: 'forwarded with Content-Length (nginx rebuilds the head)', haproxy: 'forwarded with Content-Length',
  },
  {
    id: 'Connection: transfer-encoding does not drop Transfer-Encoding',
    bytes: `POST / HTTP/1.1\r\n${H}Connection: close, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    body: `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    keeps: [/^Transfer-Encoding: chunked\r$/im],
    nginx: 'forwarded as chunked', haproxy: 'forwarded as chunked',
  },
  {
    id: 'Connection: host does not drop Host',
    bytes: `GET / HTTP/1.1\r\nConnection: host\r\n${H}\r\n`,
    body: '',
    keeps: [/^Host: a\.test\r$/im],
    nginx: 'forwarded with Host', haproxy: 'forwarded with Host',
  },
  {
    id: 'Host: a.test. (one trailing dot: the root)',
    bytes: `GET / HTTP/1.1\r\nHost: a.test.\r\n\r\n`,
    body: '',
    keeps: [/^Host: a\.test\.\r$/im],
    nginx: 'forwarded', haproxy: 'forwarded',
  },
  {
    id: 'Host: [::1]:8080 (IP-literal and port)',
    bytes: `GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n`,
    body: '',
    keeps: [/^Host: \[::1\]:8080\r$/im],
    nginx: 'forwarded', haproxy: 'forwarded',
  },
  {
    id: 'Host: a.test: (an empty port, RFC 3986 3.2.3)',
    bytes: `GET / HTTP/1.1\r\nHost: a.test:\r\n\r\n`,
    body: '',
    keeps: [/^Host: a\.test:\r$/im],
    nginx: 'forwarded', haproxy: 'forwarded',
  },
  {
    id: 'Content-Length: 003 (leading zeros are 1*DIGIT)',
    bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 003\r\n\r\nabc`,
    body: 'abc',
    keeps: [/^Content-Length: 003\r$/im],
    nginx: 'forwarded', haproxy: 'forwarded',
  },
];

for (const c of ACCEPT) {
  t.test(`${c.id}: forwarded as one request framed as wsplice framed it (nginx 1.22: ${c.nginx}; HAProxy 2.6: ${c.haproxy})`, async (t) => {
    const before = w.backend.conns.length;
    const r = await rawExchange(w.h.port, [c.bytes], { halfClose: true });
    t.same(r.statuses, [200], 'answered by the upstream');
    await w.backend.settled();
    const conns = w.backend.conns.slice(before);
    t.equal(conns.length, 1, 'one upstream connection');
    const parsed = parseRequests(connBytes(conns[0]!));
    t.equal(parsed.error, null, 'the upstream stream parses strictly');
    t.equal(parsed.messages.length, 1, 'exactly one request upstream');
    t.equal(parsed.incomplete, 0, 'nothing after that request');
    const m = parsed.messages[0]!;
    t.equal(m.bodyRaw, c.body, 'the body, framed as the client framed it');
    const head = m.raw.slice(0, m.raw.length - m.bodyRaw.length);
    for (const re of c.keeps) t.match(head, re, `forwarded head keeps ${re}`);
    t.equal((head.match(/^host:/gim) ?? []).length, 1, 'exactly one Host upstream');
    t.equal((head.match(/^(content-length|transfer-encoding):/gim) ?? []).length, c.body === '' ? 0 : 1, 'exactly one framing header upstream');
  });
}

t.test('a smuggled request inside a valid body stays body: the upstream sees one request with that body', async (t) => {
  const before = w.backend.conns.length;
  const body = `0\r\n\r\n${SMUGGLED}`;
  const r = await rawExchange(w.h.port, [`POST / HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\n\r\n${body}`], { halfClose: true });
  t.same(r.statuses, [200]);
  await w.backend.settled();
  const conns = w.backend.conns.slice(before);
  t.equal(conns.length, 1);
  const parsed = parseRequests(connBytes(conns[0]!));
  t.equal(parsed.messages.length, 1);
  t.equal(parsed.messages[0]!.bodyRaw, body);
  t.equal(parsed.incomplete, 0);
});

t.test('a pipelined request goes on its own upstream connection, never appended to the first', async (t) => {
  const before = w.backend.conns.length;
  const second = SMUGGLED.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
  const r = await rawExchange(w.h.port, [`POST / HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc${second}`]);
  t.same(r.statuses, [200, 200], 'both answered, in order');
  await w.backend.settled();
  const conns = w.backend.conns.slice(before);
  t.equal(conns.length, 2, 'two upstream connections');
  for (const c of conns) {
    const parsed = parseRequests(connBytes(c));
    t.equal(parsed.messages.length, 1, 'one request per upstream connection');
    t.equal(parsed.incomplete, 0, 'nothing after it');
  }
  t.match(connBytes(conns[0]!).toString('latin1'), /^POST \/ HTTP\/1\.1\r\n/);
  t.match(connBytes(conns[1]!).toString('latin1'), /^GET \/smuggled HTTP\/1\.1\r\n/);
});
