/**
 * The directive table: every directive wsplice reads, one row each, in the
 * manner of nginx's command tables (name, contexts, argument count, handler).
 * A block row's handler returns the scope its children are read in; `raw`
 * blocks (map, types) read their entries themselves.
 */
import type { Context } from './build.js';
import {
  flag, globalTime, listen, location, protocols, proxyPass, proxySetHeader, seconds, server, serverName, sslValue, timeout, type Handler,
} from './directives.js';
import {
  accessLog, balance, errorLog, ignore, keepalive, keepaliveTimeout, largeHeaderBuffers, mapBlock, realIpFrom, realIpHeader, sticky,
  pidFile, upstreamBlock, upstreamServer, workerConnections, workerProcesses,
} from './http-directives.js';
import { limitConnZone, limitReqZone, limitStatus, limitUse } from './limits.js';
import { accessRule, nextUpstreamBound, proxyHttpVersion, proxyNextUpstream, redirectFlag, returnDirective } from './location-directives.js';

export interface DirectiveRow {
  name: string;
  contexts: readonly Context[];
  /** Argument count: [min, max]. */
  args: readonly [number, number];
  block?: 'walk' | 'raw';
  handler: Handler;
  /** What it does in wsplice, for the README table and -T. */
  doc: string;
}

const HTTP: readonly Context[] = ['http', 'server', 'location'];
const ANY = Infinity;
const row = (name: string, contexts: readonly Context[], args: readonly [number, number], handler: Handler, doc: string, block?: 'walk' | 'raw'): DirectiveRow =>
  ({ name, contexts, args, handler, doc, ...(block !== undefined ? { block } : {}) });

const ssl = (name: string, key: string, parse?: (a: string[]) => unknown, args: readonly [number, number] = [1, 1]): DirectiveRow =>
  row(name, ['http', 'server'], args, sslValue('ssl', key, parse), `listener TLS: ${key}`);
const proxySsl = (name: string, key: string, parse?: (a: string[]) => unknown, args: readonly [number, number] = [1, 1]): DirectiveRow =>
  row(name, HTTP, args, sslValue('proxySsl', key, parse), `upstream TLS: ${key}`);

/** Directives that only matter to nginx itself: accepted, listed once as ignored. */
const NGINX_ONLY: Array<[readonly Context[], string[]]> = [
  [['main'], ['user', 'daemon', 'master_process', 'worker_rlimit_nofile', 'worker_cpu_affinity', 'worker_priority', 'load_module', 'env', 'lock_file', 'pcre_jit', 'thread_pool', 'timer_resolution', 'working_directory']],
  [['events'], ['multi_accept', 'use', 'accept_mutex', 'accept_mutex_delay', 'worker_aio_requests']],
  [HTTP, [
    'sendfile', 'tcp_nopush', 'tcp_nodelay', 'default_type', 'server_tokens', 'log_format', 'client_body_temp_path', 'proxy_temp_path',
    'fastcgi_temp_path', 'uwsgi_temp_path', 'scgi_temp_path', 'gzip', 'gzip_types', 'gzip_vary', 'gzip_proxied', 'gzip_comp_level',
    'types_hash_max_size', 'server_names_hash_bucket_size', 'server_names_hash_max_size', 'variables_hash_max_size', 'open_file_cache',
    'client_body_buffer_size', 'client_header_buffer_size', 'client_max_body_size', 'reset_timedout_connection', 'charset',
    'proxy_buffering', 'proxy_buffer_size', 'proxy_buffers', 'proxy_busy_buffers_size', 'proxy_request_buffering', 'proxy_redirect',
    'root', 'index', 'proxy_max_temp_file_size', 'proxy_intercept_errors', 'send_timeout', 'keepalive_requests', 'resolver_timeout', 'proxy_socket_keepalive',
    'ssl_prefer_server_ciphers', 'ssl_session_cache', 'ssl_dhparam', 'ssl_ecdh_curve', 'ssl_stapling', 'ssl_stapling_verify',
  ]],
];

export const DIRECTIVES: readonly DirectiveRow[] = [
  row('events', ['main'], [0, 0], () => ({ kind: 'events' }), 'block of worker settings', 'walk'),
  row('http', ['main'], [0, 0], (_d, _s, b) => ({ kind: 'http', settings: b.http }), 'the proxy configuration', 'walk'),
  row('worker_processes', ['main'], [1, 1], workerProcesses, 'workers'),
  row('pid', ['main'], [1, 1], pidFile, 'pid (the pid file)'),
  row('worker_connections', ['events'], [1, 1], workerConnections, 'limits.maxConnections'),
  row('worker_shutdown_timeout', ['main'], [1, 1], globalTime('timeouts.drainMs'), 'timeouts.drainMs'),
  row('error_log', ['main', ...HTTP], [1, 2], errorLog, 'errorLog (+ level: logLevel)'),
  row('access_log', HTTP, [1, ANY], accessLog, 'accessLog'),
  row('map', ['http'], [2, 2], mapBlock, '$http_upgrade -> $connection_upgrade; string and regex maps', 'raw'),
  row('upstream', ['http'], [1, 1], upstreamBlock, 'upstreams.NAME', 'walk'),
  row('server', ['upstream'], [1, ANY], upstreamServer, 'upstreams.NAME.servers'),
  ...['least_conn', 'ip_hash'].map((n) => row(n, ['upstream'], [0, 0], balance, 'upstreams.NAME.balance')),
  row('hash', ['upstream'], [1, 2], balance, 'upstreams.NAME.balance'),
  row('random', ['upstream'], [0, 2], balance, 'upstreams.NAME.balance'),
  row('keepalive', ['upstream'], [1, 1], keepalive, 'upstreams.NAME.keepalive'),
  row('sticky', ['upstream'], [2, ANY], sticky, 'upstreams.NAME.sticky'),
  row('server', ['http'], [0, 0], server, 'a virtual server', 'walk'),
  row('listen', ['server'], [1, ANY], listen, 'listen entries {address, tls, proxyProtocol}'),
  row('server_name', ['server'], [1, ANY], serverName, 'routes[].hosts'),
  row('location', ['server', 'location'], [1, 2], location, 'routes[]', 'walk'),
  row('proxy_pass', ['location'], [1, 1], proxyPass, 'routes[].upstream'),
  row('proxy_http_version', HTTP, [1, 1], proxyHttpVersion, 'accepted: always 1.1 upstream'),
  row('proxy_set_header', HTTP, [2, 2], proxySetHeader, 'forwarding'),
  row('proxy_connect_timeout', HTTP, [1, 1], timeout('connectMs'), 'timeouts.connectMs'),
  row('proxy_read_timeout', HTTP, [1, 1], timeout('responseMs', 'idleMs'), 'timeouts.responseMs and idleMs'),
  row('proxy_send_timeout', HTTP, [1, 1], timeout('sendMs'), 'timeouts.sendMs'),
  row('proxy_next_upstream', HTTP, [1, ANY], proxyNextUpstream, 'upstreams.NAME.nextUpstream.on'),
  row('proxy_next_upstream_tries', HTTP, [1, 1], nextUpstreamBound, 'upstreams.NAME.nextUpstream.tries'),
  row('proxy_next_upstream_timeout', HTTP, [1, 1], nextUpstreamBound, 'upstreams.NAME.nextUpstream.timeoutMs'),
  row('keepalive_requests', ['upstream'], [1, 1], keepalive, 'upstreams.NAME.keepalive.requests'),
  row('client_header_timeout', ['http', 'server'], [1, 1], globalTime('timeouts.headMs'), 'timeouts.headMs'),
  row('keepalive_timeout', [...HTTP, 'upstream'], [1, 2], keepaliveTimeout, 'timeouts.keepAliveMs'),
  row('large_client_header_buffers', ['http', 'server'], [2, 2], largeHeaderBuffers, 'limits.maxUriBytes, maxHeadBytes'),
  row('return', ['server', 'location'], [1, 2], returnDirective, 'routes[].return'),
  row('absolute_redirect', HTTP, [1, 1], redirectFlag('on'), 'on: the slash redirect Location is absolute'),
  row('port_in_redirect', HTTP, [1, 1], redirectFlag('on'), 'on: the local port in that Location'),
  row('server_name_in_redirect', HTTP, [1, 1], redirectFlag('off'), 'off: the request host in that Location'),
  row('allow', HTTP, [1, 1], accessRule, 'routes[].access'),
  row('deny', HTTP, [1, 1], accessRule, 'routes[].access'),
  row('set_real_ip_from', HTTP, [1, 1], realIpFrom, 'realIpFrom'),
  row('real_ip_header', HTTP, [1, 1], realIpHeader, 'proxy_protocol only'),
  row('limit_conn_zone', ['http'], [2, 2], limitConnZone, 'clientLimits (key, maxClients)'),
  row('limit_req_zone', ['http'], [3, 3], limitReqZone, 'clientLimits (key, rate, maxClients)'),
  row('limit_conn', HTTP, [2, 2], limitUse, 'clientLimits.maxConnections'),
  row('limit_req', HTTP, [1, 3], limitUse, 'clientLimits.requestRate'),
  row('limit_conn_status', HTTP, [1, 1], limitStatus, 'clientLimits.status'),
  row('limit_req_status', HTTP, [1, 1], limitStatus, 'clientLimits.status'),
  ssl('ssl_certificate', 'cert'),
  ssl('ssl_certificate_key', 'key'),
  ssl('ssl_protocols', 'protocols', protocols, [1, 4]),
  ssl('ssl_ciphers', 'ciphers'),
  ssl('ssl_session_timeout', 'sessionTimeoutSec', seconds),
  ssl('ssl_session_tickets', 'sessionTickets', flag),
  ssl('ssl_client_certificate', 'clientCa'),
  ssl('ssl_verify_client', 'verifyClient', (a) => (['on', 'off', 'optional'].includes(a[0]!) ? a[0] : null)),
  ssl('ssl_password_file', 'passphraseFile'),
  proxySsl('proxy_ssl_verify', 'verify', flag),
  proxySsl('proxy_ssl_trusted_certificate', 'ca'),
  proxySsl('proxy_ssl_server_name', 'sendName', flag),
  proxySsl('proxy_ssl_name', 'serverName'),
  proxySsl('proxy_ssl_certificate', 'cert'),
  proxySsl('proxy_ssl_certificate_key', 'key'),
  proxySsl('proxy_ssl_session_reuse', 'sessionReuse', flag),
  proxySsl('proxy_ssl_protocols', 'protocols', protocols, [1, 4]),
  proxySsl('proxy_ssl_ciphers', 'ciphers'),
  row('types', HTTP, [0, 0], ignore, 'ignored (nginx only)', 'raw'),
  ...NGINX_ONLY.flatMap(([contexts, names]) => names.map((n) => row(n, contexts, [0, ANY], ignore, 'ignored (nginx only)'))),
];
