/** Where the build puts the compiled agents, and temporary plugin directories made from them. */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * node-gyp's build of what ships (binding/binding.gyp, by npm install); on Windows without one,
 * the MinGW build of scripts/build-windows-dlls.sh (the Wine lane), which holds the test agents too.
 */
const GYP_DIR = path.join(ROOT, 'binding', 'build', 'Release');
const MINGW_DIR = path.join(ROOT, 'binding', 'build', 'windows');
const MINGW = process.platform === 'win32' && !existsSync(path.join(GYP_DIR, 'agents', 'exchange.dll')) && existsSync(MINGW_DIR);
export const RELEASE_DIR = MINGW ? MINGW_DIR : GYP_DIR;
export const SAMPLE_DIR = path.join(RELEASE_DIR, 'agents');
/** The agents only the tests use: node-gyp's build of test/fixtures/native/binding.gyp (when the tests start). */
export const TEST_AGENT_DIR = MINGW ? path.join(MINGW_DIR, 'test-agents') : path.join(ROOT, 'test', 'fixtures', 'native', 'build', 'Release');
export const LIB_EXT = process.platform === 'win32' ? '.dll' : process.platform === 'darwin' ? '.dylib' : '.so';

/**
 * The Name()s of the agents the build put in SAMPLE_DIR, sorted: the samples, and the shipped
 * PostgreSQL agent where libpq's header was there to build it (binding.gyp).
 */
export function builtAgentNames(): string[] {
  const samples = ['FaultInjector', 'LegacyFlatFiles', 'MSSQL', 'MicrosoftExchange', 'SyntheticFiles'];
  return [...samples, ...(existsSync(path.join(SAMPLE_DIR, `postgresql${LIB_EXT}`)) ? ['PostgreSQL'] : [])].sort();
}

/** The built library `name` (e.g. "exchange" or "bad_null_name"); fails loudly when the build is missing. */
export function builtAgent(name: string): string {
  for (const dir of [SAMPLE_DIR, TEST_AGENT_DIR]) {
    const file = path.join(dir, name + LIB_EXT);
    if (existsSync(file)) return file;
  }
  throw new Error(`${name}${LIB_EXT} is not built; run npm install (the samples) and npm run build:test-agents (the test agents)`);
}

const madeDirs: string[] = [];

/**
 * A fresh directory under the system's temp directory, removed after the test file's tests
 * (AGENTFD_KEEP_TEMP=1 keeps them, to look at what a failing test left).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `agentfd-${prefix}-`));
  if (!process.env.AGENTFD_KEEP_TEMP) madeDirs.push(dir);
  return dir;
}

/** Removes the directories tempDir made (test/helpers/cleanup.ts calls it after each test file). */
export function removeTempDirs(): void {
  for (const dir of madeDirs.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a mount or a busy file: the OS cleans its temp directory eventually; never fail a test run for it
    }
  }
}

/**
 * A fresh plugin directory holding copies of the named built agents (under their own names, or
 * `as` names), plus extra files given as name -> content.
 */
export function makePluginDir(
  agents: (string | { name: string; as: string })[],
  extra: Record<string, string | Buffer> = {},
): string {
  const dir = tempDir('plugins');
  chmodSync(dir, 0o755);
  for (const agent of agents) {
    const { name, as } = typeof agent === 'string' ? { name: agent, as: agent + LIB_EXT } : agent;
    const target = path.join(dir, as);
    copyFileSync(builtAgent(name), target);
    chmodSync(target, 0o755);
  }
  for (const [name, content] of Object.entries(extra)) {
    writeFileSync(path.join(dir, name), content, { mode: 0o644 });
  }
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Whether this process may mount a small tmpfs (root on Linux): how tests make a real full disk. */
export function canMountTmpfs(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = tempDir('mount-probe');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    removeDir(probe);
  }
}
