/**
 * The admin listener for one proxy: metrics, health, readiness and status.
 *
 *   const admin = await startAdmin(proxy, '127.0.0.1:9100');
 *   // ... later: await admin.close();
 */
import type { AddressInfo } from 'node:net';
import type { WspliceProxy as Proxy } from '../server.js';
import { ProxyMetrics, type MetricsOptions } from './metrics.js';
import { AdminServer, type AdminSource, type AdminTarget } from './server.js';
import { proxyStatus } from './status.js';

export { AdminServer, parseAdminListen, type AdminSource, type AdminTarget } from './server.js';
export { ProxyMetrics, type MetricsOptions } from './metrics.js';
export { proxyStatus, upstreamStatus, type BackendStatus, type ProxyStatus } from './status.js';

export interface Admin {
  readonly metrics: ProxyMetrics;
  readonly server: AdminServer;
  readonly address: AddressInfo | string;
  close(): Promise<void>;
}

export function proxySource(proxy: Proxy, metrics: ProxyMetrics): AdminSource {
  return {
    metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.text() }),
    ready: () => proxy.ready,
    status: () => proxyStatus(proxy),
  };
}

/** Count `proxy`'s metrics and serve them on `target` (a bare port binds 127.0.0.1). */
export async function startAdmin(proxy: Proxy, target: AdminTarget | string, options: MetricsOptions = {}): Promise<Admin> {
  const metrics = new ProxyMetrics(proxy, options);
  const server = new AdminServer(proxySource(proxy, metrics));
  let address: AddressInfo | string;
  try {
    address = await server.listen(target);
  } catch (err) {
    metrics.detach();
    throw err;
  }
  return {
    metrics,
    server,
    address,
    close: async () => {
      metrics.detach();
      await server.close();
    },
  };
}
