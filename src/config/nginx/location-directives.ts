/**
 * Handlers of the per-location directives other than proxy_pass and headers:
 * return, allow/deny, proxy_next_upstream, proxy_http_version, and the
 * redirect flags (wsplice builds its slash redirects with their defaults).
 */
import type { Build, Scope } from './build.js';
import { settingsOf } from './directives.js';
import type { Directive } from './parse.js';
import { parseTime } from './values.js';

export function proxyHttpVersion(d: Directive, _s: Scope, b: Build): void {
  if (d.args[0] !== '1.1' && d.args[0] !== '1.0') b.error(d, `invalid value "${d.args[0]!}" in "proxy_http_version" directive`);
  else if (d.args[0] === '1.0') b.warn(d, '"proxy_http_version 1.0" is ignored: wsplice speaks HTTP/1.1 upstream (upgrades need it)');
}

const NEXT = ['error', 'timeout', 'invalid_header', 'http_500', 'http_502', 'http_503', 'http_504', 'http_403', 'http_404', 'http_429', 'non_idempotent', 'off'];
const NEXT_SUPPORTED = ['error', 'timeout', 'http_502', 'http_503', 'http_504', 'non_idempotent', 'off'];

export function proxyNextUpstream(d: Directive, s: Scope, b: Build): void {
  const bad = d.args.find((a) => !NEXT.includes(a));
  if (bad !== undefined) return b.error(d, `invalid value "${bad}"`);
  const later = d.args.find((a) => !NEXT_SUPPORTED.includes(a));
  if (later !== undefined) return b.notYet(d, `"proxy_next_upstream ${later}"`);
  settingsOf(s).retry.on = { value: d.args.includes('off') ? [] : d.args, at: d };
}

/** proxy_next_upstream_tries N, proxy_next_upstream_timeout T. */
export function nextUpstreamBound(d: Directive, s: Scope, b: Build): void {
  const v = d.name.endsWith('_tries') ? (/^\d+$/.test(d.args[0]!) ? Number(d.args[0]) : null) : parseTime(d.args[0]!);
  if (v === null) return b.error(d, `invalid value "${d.args[0]!}" in "${d.name}" directive`);
  settingsOf(s).retry[d.name.endsWith('_tries') ? 'tries' : 'timeoutMs'] = { value: v, at: d };
}

/** `return CODE [TEXT|URL]` or `return URL` (302). */
export function returnDirective(d: Directive, s: Scope, b: Build): void {
  const st = settingsOf(s);
  const [first, text] = d.args as [string, string | undefined];
  if (/^\d{3}$/.test(first) && Number(first) <= 999) {
    st.ret = { status: Number(first), ...(text !== undefined ? { text } : {}), at: d };
  } else if (/^https?:\/\//.test(first) && text === undefined) {
    st.ret = { status: 302, text: first, at: d };
  } else {
    b.error(d, `invalid return code "${first}"`);
  }
}

const CIDR = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)(?:\/\d{1,3})?$/;

export function accessRule(d: Directive, s: Scope, b: Build): void {
  const v = d.args[0]!;
  if (v !== 'all' && !CIDR.test(v)) return b.error(d, `invalid parameter "${v}"`);
  (settingsOf(s).access ??= []).push({ allow: d.name === 'allow', from: v, at: d });
}

/** absolute_redirect, port_in_redirect, server_name_in_redirect: their nginx default is what wsplice does; the other value is refused. */
export function redirectFlag(def: 'on' | 'off') {
  return (d: Directive, _s: Scope, b: Build): void => {
    const v = d.args[0]!;
    if (v !== 'on' && v !== 'off') b.error(d, `invalid value "${v}" in "${d.name}" directive, it must be "on" or "off"`);
    else if (v !== def) b.notYet(d, `"${d.name} ${v}"`);
  };
}
