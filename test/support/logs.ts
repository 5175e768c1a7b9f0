/** A proxy in this process writing its access and error logs to a fresh directory, removed at teardown. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProxy, type ProxyOptions } from '../../src/index.js';
import { AccessLog } from '../../src/logging/access.js';
import { ErrorLog } from '../../src/logging/errors.js';
import type { TestProxy } from './proxy.js';

export interface LoggedProxy {
  proxy: TestProxy;
  /** The directory holding access.log and error.log. */
  dir: string;
  access: AccessLog;
  errors: ErrorLog;
  /** What the logs reported about themselves (write failures); empty when all went well. */
  problems: string[];
}

/** Listening on 127.0.0.1:0, error log at `info`; the proxy closes and the directory goes at teardown. */
export async function loggedProxy(t: { teardown(fn: () => unknown): void }, opts: ProxyOptions, prefix = 'wsplice-logs-'): Promise<LoggedProxy> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const proxy = createProxy(opts);
  const problems: string[] = [];
  const access = new AccessLog(proxy, join(dir, 'access.log'), (m) => problems.push(m));
  const errors = new ErrorLog(join(dir, 'error.log'), 'info', (m) => problems.push(m));
  errors.watch(proxy);
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { proxy, dir, access, errors, problems };
}
