/**
 * `agentfd serve` as a second client of the bench's Bacula lab (bench/baselines/bacula.mjs): the
 * daemon this tree builds (bin/agentfd.js, which loads dist/), on a port of its own beside the real
 * bacula-fd, answering the same Director with the same password. Its output goes to
 * $LAB/logs/serve.log (a file, not a pipe the bench would have to drain during a job).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive } from './fd-io.mjs';

const START_TIMEOUT_MS = 20_000;
/**
 * Extra Node flags for the serve daemon, space-separated, to profile it where NODE_OPTIONS may
 * not (e.g. BENCH_SERVE_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR": the profile is written when
 * the bench stops it).
 */
const NODE_FLAGS = (process.env.BENCH_SERVE_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== '');

/** The last `lines` lines of a file, or "(empty)". */
export function tail(file, lines = 20) {
  const text = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  return text ? text.split('\n').slice(-lines).join('\n') : '(empty)';
}

/**
 * Starts `agentfd serve` named `name` on 127.0.0.1:`port` for the Director `director` (its name
 * and password), with its configuration and data under `dir`. Resolves { pid, log } once it says
 * it is listening; rejects with the reason and its output when it exits or stays silent.
 */
export async function startServe({ root, dir, logs, name, port, director }) {
  const bin = path.join(root, 'bin', 'agentfd.js');
  if (!existsSync(path.join(root, 'dist'))) throw new Error(`agentfd is not built (no ${path.join(root, 'dist')}): npm run build`);
  mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'agentfd.toml');
  const toml = JSON.stringify;
  writeFileSync(config, [
    `data_dir = ${toml(path.join(dir, 'state'))}`,
    '[serve]',
    `name = ${toml(name)}`,
    'address = "127.0.0.1"',
    `port = ${port}`,
    '[[serve.directors]]',
    `name = ${toml(director.name)}`,
    `password = ${toml(director.password)}`,
    '',
  ].join('\n'));
  const log = path.join(logs, 'serve.log');
  const out = openSync(log, 'a');
  let child;
  try {
    // Its own session, as the lab's daemons: Ctrl-C on the bench must not end it mid-job (the
    // bench finishes the current case first, then stops it). AGENTFD_CONFIG from the user's shell
    // must not pick its configuration.
    child = spawn(process.execPath, [...NODE_FLAGS, bin, 'serve', '--config', config], { stdio: ['ignore', out, out], detached: true, env: { ...process.env, AGENTFD_CONFIG: '' } });
  } finally {
    closeSync(out);
  }
  child.unref();
  const spawnError = new Promise((resolve) => child.once('error', resolve));
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const failed = await Promise.race([spawnError, sleep(100, null)]);
    if (failed) throw new Error(`agentfd serve could not be started: ${failed.message}`);
    if (readFileSync(log, 'utf8').includes('listening on')) return { pid: child.pid, log };
    if (!alive(child.pid)) throw new Error(`agentfd serve exited at start-up (${log}):\n${tail(log)}`);
    if (Date.now() > deadline) {
      stopServe(child.pid);
      throw new Error(`agentfd serve did not say "listening on" within ${START_TIMEOUT_MS / 1000} s (${log}):\n${tail(log)}`);
    }
  }
}

/** Guards against signalling a recycled PID: is `pid` an agentfd process? */
export function isServe(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('agentfd.js');
  } catch {
    return false;
  }
}

/** Sends `signal` to the serve `pid` if it is still one. */
export function stopServe(pid, signal = 'SIGTERM') {
  if (!pid || !isServe(pid)) return;
  try {
    process.kill(pid, signal);
  } catch (error) {
    if (error.code !== 'ESRCH') throw error;
  }
}
