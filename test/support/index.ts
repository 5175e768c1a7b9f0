/**
 * Test support: peers on 127.0.0.1 port 0 and the small tools every test file needs.
 * Import from here: `import { startProxy, rawBackend, respond101 } from './support/index.js'`.
 */
export * from './backends.js';
export * from './fds.js';
export * from './net.js';
export * from './processes.js';
export * from './proxy.js';
export * from './upgrade.js';
export * from './wait.js';
export * from './ws.js';
