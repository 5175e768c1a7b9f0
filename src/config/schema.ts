/**
 * The JSON Schema of a configuration file, generated from the option rows
 * (the same tables that check a file), plus the keys only a file has: listen
 * entries with their TLS/PROXY options, and the service settings. Printed by
 * `wsplice --schema`, so the schema a user has is the one their version checks.
 */
import { OPTIONS } from '../options.js';
import type { JsonSchema } from './check.js';

/** Defaults that are not plain JSON (a TrustList, a Map) say nothing to an editor: dropped. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'default' && typeof x === 'object' && x !== null && !Array.isArray(x) && Object.getPrototypeOf(x) !== Object.prototype) continue;
    out[k] = plain(x);
  }
  return out;
}

const LISTEN_ENTRY: JsonSchema = {
  anyOf: [
    { type: 'string', description: 'HOST:PORT, [v6]:PORT, PORT or unix:/path' },
    {
      type: 'object', additionalProperties: false, required: ['address'],
      properties: {
        address: { type: 'string', description: 'as --listen takes it' },
        tls: { type: 'object', description: 'TLS termination: certificates [{cert, key, serverNames?}], protocols, ciphers, sessionTimeoutSec, sessionTickets, clientCa, verifyClient (nginx listen ... ssl, ssl_*)' },
        proxyProtocol: { type: 'boolean', description: 'expect a PROXY protocol header (nginx listen ... proxy_protocol)' },
      },
    },
  ],
};

const SERVICE: Record<string, JsonSchema> = {
  $schema: { type: 'string', description: 'this schema, for editors' },
  admin: { type: 'object', additionalProperties: false, properties: { listen: { type: ['string', 'integer'], description: 'HOST:PORT of the admin listener (a bare port binds 127.0.0.1)' } } },
  accessLog: { type: 'string', description: '"stdout", "stderr", "off" or a file (nginx access_log)' },
  errorLog: { type: 'string', description: '"stdout", "stderr", "off" or a file (nginx error_log)' },
  logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], description: 'error log level' },
};

export function configSchema(): JsonSchema {
  const base = plain(OPTIONS.schema) as JsonSchema & { properties: Record<string, JsonSchema> };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'wsplice configuration file',
    ...base,
    properties: { ...base.properties, listen: { type: 'array', items: LISTEN_ENTRY, description: 'listen addresses, or objects with TLS and PROXY options (nginx listen)' }, ...SERVICE },
  };
}
