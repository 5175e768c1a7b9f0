#!/usr/bin/env node
'use strict';
// Builds the optional native splice relay (src/native/build/Release/wsplice_relay.node).
// Run by `npm install` / `npm ci`. It NEVER fails the install: without the addon
// wsplice runs its JS relay. One line of outcome; the compiler output goes to
// src/native/build/build.log.
//
// Env: WSPLICE_NATIVE=0 skips the build.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const dir = __dirname;
const buildDir = path.join(dir, 'build');
const logFile = path.join(buildDir, 'build.log');
const prefix = 'wsplice: native splice relay';

function done(msg) {
  console.log(`${prefix} ${msg}`);
  process.exit(0);
}

function findNodeGyp() {
  const candidates = [];
  // npm sets this for lifecycle scripts: its bundled node-gyp.
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  // Next to the npm that runs us (npm_execpath = .../npm/bin/npm-cli.js).
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  // The npm installed beside this node binary.
  for (const lib of ['lib', path.join('lib64')]) {
    candidates.push(path.join(path.dirname(process.execPath), '..', lib, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [dir] }));
  } catch {
    /* not a local dependency */
  }
  return candidates.find((p) => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  });
}

function nodedirArgs() {
  // node-gyp must build against the headers on this machine; downloading them
  // fails here. npm passes its `nodedir` config as npm_config_nodedir; outside
  // npm, use the headers installed beside the running node if present.
  if (process.env.npm_config_nodedir) return [`--nodedir=${process.env.npm_config_nodedir}`];
  const guess = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(guess, 'include', 'node', 'common.gypi'))) return [`--nodedir=${guess}`];
  return [];
}

function writeLog(text) {
  try {
    fs.mkdirSync(buildDir, { recursive: true });
    fs.writeFileSync(logFile, text);
  } catch {
    /* the log is a courtesy */
  }
}

function main() {
  if (process.platform !== 'linux') done(`skipped (${process.platform}: splice(2) is Linux-only); the JS relay will be used`);
  if (process.env.WSPLICE_NATIVE === '0') done('skipped (WSPLICE_NATIVE=0); the JS relay will be used');
  const gyp = findNodeGyp();
  const args = gyp ? [gyp] : [];
  const cmd = gyp ? process.execPath : 'npx';
  if (!gyp) args.push('--no-install', 'node-gyp');
  args.push('rebuild', '--release', '--jobs=2', ...nodedirArgs());
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', timeout: 300_000, env: process.env });
  const log = `$ ${cmd} ${args.join(' ')}\n${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.error ? String(r.error) : ''}\n`;
  writeLog(log);
  const out = path.join(buildDir, 'Release', 'wsplice_relay.node');
  if (r.status === 0 && fs.existsSync(out)) {
    done(`built in ${((Date.now() - started) / 1000).toFixed(1)} s (${path.relative(process.cwd(), out) || out})`);
  }
  const why = r.error ? r.error.message : `node-gyp exited ${r.status ?? r.signal}`;
  done(`not built (${why}; see ${path.relative(process.cwd(), logFile)}); the JS relay will be used`);
}

try {
  main();
} catch (err) {
  done(`not built (${err && err.message ? err.message : String(err)}); the JS relay will be used`);
}
