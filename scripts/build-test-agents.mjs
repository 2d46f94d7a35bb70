#!/usr/bin/env node
/**
 * Builds the agents only the tests use (test/fixtures/native/binding.gyp: the broken agents, the
 * Contract agent, the Bacula test plugins) into test/fixtures/native/build/, when they are
 * missing or older than their sources. `npm install` builds only what ships (binding/binding.gyp);
 * this runs when the tests start (vitest's globalSetup, see setup() below) and by hand:
 *
 *   npm run build:test-agents            build when missing or stale
 *   npm run build:test-agents -- --force build again
 *
 * node-gyp is the package's own (node_modules), run under npm so that npm's configuration
 * (nodedir, proxy) applies as it does to `npm install`'s build.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'native');
const BUILD = path.join(FIXTURES, 'build');
/** Written after a successful build; the build is stale when an input is newer. */
const STAMP = path.join(BUILD, 'test-agents.stamp');

/** The files a test agent is built from: the fixtures' sources and gyp file, the header, the shared settings. */
function inputs() {
  const files = [path.join(ROOT, 'binding', 'agent.gypi')];
  for (const dir of [FIXTURES, path.join(ROOT, 'binding', 'include')]) {
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isFile()) files.push(path.join(dir, entry.name));
  }
  return files;
}

/** Why the test agents must be built, or null when they are up to date. */
export function staleReason() {
  if (!existsSync(STAMP)) return 'not built yet';
  const built = statSync(STAMP).mtimeMs;
  const newer = inputs().find((file) => statSync(file).mtimeMs > built);
  return newer ? `${path.relative(ROOT, newer)} changed` : null;
}

function build() {
  const nodeGyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', '--loglevel=warn', `--directory=${FIXTURES}`], { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('build-test-agents: node-gyp failed (see above); it needs what `npm install` needs: a C compiler, make and python3');
    process.exit(1);
  }
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}

/** vitest globalSetup (vitest.config.ts): build the test agents first when they are missing or stale. */
export function setup() {
  const why = staleReason();
  if (why === null) return;
  console.log(`agentfd tests: building the test agents (${why}): npm run build:test-agents`);
  // Under npm (npm test, npx vitest) npm_execpath is npm's own script: no PATH or npm.cmd needed.
  const npmCli = process.env.npm_execpath;
  const win = process.platform === 'win32';
  const args = ['run', '--silent', 'build:test-agents'];
  const result =
    npmCli && /\.[cm]?js$/.test(npmCli)
      ? spawnSync(process.execPath, [npmCli, ...args], { cwd: ROOT, stdio: 'inherit' })
      : spawnSync(win ? 'npm.cmd' : 'npm', args, { cwd: ROOT, stdio: 'inherit', shell: win });
  if (result.status !== 0) throw new Error('the test agents could not be built: npm run build:test-agents failed (see its output above)');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const why = process.argv.includes('--force') ? 'asked with --force' : staleReason();
  if (why === null) console.log('build-test-agents: up to date');
  else build();
}
