// Config files the runner writes for the native peers. Loopback only.

/** fds a proxy may use: 2 per tunnel plus slack, within the hard limit the children get. */
/** The run's certificate (self-signed for localhost, made by the runner): every TLS listener serves it. */
export interface BenchCert {
  cert: string;
  key: string;
  /** cert then key in one file, as HAProxy's `crt` takes it. */
  pem: string;
}

export function nginxConfig(o: { dir: string; port: number; backendPort: number; workers: '1' | 'auto'; maxFds: number; tls?: { port: number; cert: BenchCert }; keepalive?: number }): string {
  // The http{} part is the usual WebSocket proxy block, with `location /` so plain
  // GETs go through the same block; access_log off because no other peer logs each request.
  // `keepalive`: upstream connections pooled (`keepalive N;`), plain requests sent with
  // `Connection ""` (the map's '' entry) so the backend keeps them open; upgrades unchanged.
  return `daemon off;
master_process on;
worker_processes ${o.workers};
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/error.log warn;
worker_rlimit_nofile ${o.maxFds};
events {
    worker_connections ${o.maxFds - 64};
}
http {
    access_log off;
    client_body_temp_path ${o.dir}/client_body;
    proxy_temp_path ${o.dir}/proxy;
    fastcgi_temp_path ${o.dir}/fastcgi;
    uwsgi_temp_path ${o.dir}/uwsgi;
    scgi_temp_path ${o.dir}/scgi;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        '' ${o.keepalive !== undefined ? "''" : 'close'};
    }

    upstream backend {
        server 127.0.0.1:${o.backendPort};
${o.keepalive !== undefined ? `        keepalive ${o.keepalive};
` : ''}    }

    server {
        listen 127.0.0.1:${o.port};
${o.tls ? `        listen 127.0.0.1:${o.tls.port} ssl;
        ssl_certificate ${o.tls.cert.cert};
        ssl_certificate_key ${o.tls.cert.key};
` : ''}
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
    }
}
`;
}

export function haproxyConfig(o: { port: number; backendPort: number; maxFds: number; tls?: { port: number; cert: BenchCert } }): string {
  // maxconn counts client-side connections; each tunnel also holds a server-side one.
  return `global
    nbthread 1
    maxconn ${Math.floor((o.maxFds - 64) / 2)}

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:${o.port}
${o.tls ? `    bind 127.0.0.1:${o.tls.port} ssl crt ${o.tls.cert.pem} alpn http/1.1
` : ''}    default_backend be

backend be
    server s1 127.0.0.1:${o.backendPort}
`;
}
