/**
 * Hash keys (nginx `hash $var...`): a template of literal text and request
 * variables, compiled once at start into a list of parts. An unknown
 * variable is a configuration error, not an empty string at run time.
 */
import { argValue, cookieValue, headerValue, uriOf, type PickContext } from './context.js';

type Part = { kind: 'text'; text: string } | { kind: 'var'; read: (ctx: PickContext) => string };

export type HashKey = (ctx: PickContext) => string;

/** Variables by exact name; prefixes (`http_`, `cookie_`, `arg_`) below. */
const VARIABLES: Record<string, (ctx: PickContext) => string> = {
  remote_addr: (c) => c.remoteAddress,
  remote_port: (c) => (c.remotePort === undefined ? '' : String(c.remotePort)),
  request_uri: (c) => c.head?.target ?? '',
  uri: uriOf,
  args: (c) => {
    const t = c.head?.target ?? '';
    const q = t.indexOf('?');
    return q < 0 ? '' : t.slice(q + 1);
  },
  host: (c) => hostOf(headerValue(c, 'host')),
  request_method: (c) => c.head?.method ?? '',
};

const PREFIXES: Array<[string, (name: string) => (ctx: PickContext) => string]> = [
  // $http_x_session is the X-Session header: underscores stand for dashes, case ignored.
  ['http_', (n) => { const key = n.toLowerCase().replace(/_/g, '-'); return (c) => headerValue(c, key); }],
  ['cookie_', (n) => (c) => cookieValue(c, n)],
  ['arg_', (n) => (c) => argValue(c, n)],
];

export const KNOWN_VARIABLES = [...Object.keys(VARIABLES), ...PREFIXES.map(([p]) => `${p}NAME`)];

/** Throws an Error naming the variable when the template uses one that is not known. */
export function compileKey(template: string): HashKey {
  const parts: Part[] = [];
  const re = /\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g;
  let last = 0;
  for (let m = re.exec(template); m !== null; m = re.exec(template)) {
    if (m.index > last) parts.push({ kind: 'text', text: template.slice(last, m.index) });
    parts.push({ kind: 'var', read: variable(m[1] ?? m[2]!) });
    last = re.lastIndex;
  }
  if (last < template.length) parts.push({ kind: 'text', text: template.slice(last) });
  if (!parts.some((p) => p.kind === 'var')) throw new Error(`hash key "${template}" has no variable: every request would hash alike`);
  if (parts.length === 1) return (parts[0] as { read: HashKey }).read;
  return (ctx) => {
    let s = '';
    for (const p of parts) s += p.kind === 'text' ? p.text : p.read(ctx);
    return s;
  };
}

function variable(name: string): (ctx: PickContext) => string {
  const v = VARIABLES[name];
  if (v !== undefined) return v;
  for (const [prefix, make] of PREFIXES) {
    if (name.startsWith(prefix) && name.length > prefix.length) return make(name.slice(prefix.length));
  }
  throw new Error(`unknown variable "$${name}" in hash key (known: ${KNOWN_VARIABLES.map((k) => `$${k}`).join(', ')})`);
}

function hostOf(host: string): string {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}
