/**
 * A real Bacula 9.6 Director and Storage Daemon (scripts/bacula/lab.sh) and `agentfd serve` as
 * their client, for the test:bacula lane. Each test file makes its own lab: a scratch directory and
 * its own three ports, so files can also be run side by side while developing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { ROOT, tempDir } from './native.js';
import { decodeName, fsPath, shownName } from '../../src/platform/byte-names.js';

export const LAB_SH = path.join(ROOT, 'scripts', 'bacula', 'lab.sh');

export interface LabOptions {
  /** Director, FD and SD ports (default 9101, 9102, 9103). */
  ports?: { dir: number; fd: number; sd: number };
  /** Appended to bacula-dir.conf (FileSets and Jobs of the test); written once the lab dir exists. */
  extraDirectorConf?: (lab: string) => string;
  /** Extra lab.sh settings (for example TLS=1). */
  env?: Record<string, string>;
  /** Extra lines for agentfd's [serve] table (for example heartbeat_interval = "200ms"). */
  serveSettings?: string[];
}

/**
 * Another program than Linux node as the serve (startServe's `command`): Windows node under Wine.
 * It runs in its own process group, which stopServe ends whole (a wrapper script's child would
 * outlive a signal to the wrapper alone).
 */
export interface ServeCommand {
  command: string;
  /** Its arguments, given the path of the TOML startServe wrote. */
  args: (configPath: string) => string[];
  /**
   * A file that receives its output while it runs, read for "listening on" and the log, for a
   * program whose output reaches its stdout only at its end (wine-node.sh keeps Windows node's).
   */
  outputFile?: string;
  /** TOML lines instead of the [bacula] table (plugin_dir = "/usr/lib/bacula": Linux plugins). */
  baculaTable?: string[];
}

export class BaculaLab {
  readonly dir: string;
  readonly ports: { dir: number; fd: number; sd: number };
  private serve: ChildProcess | null = null;
  private serveGroup = false;
  private serveOutputTimer: NodeJS.Timeout | null = null;
  serveLog = '';

  constructor(prefix: string, private readonly options: LabOptions = {}) {
    this.dir = tempDir(prefix);
    chmodSync(this.dir, 0o755); // the lab's daemons run as root here, but bconsole reads as the user
    this.ports = options.ports ?? { dir: 9101, fd: 9102, sd: 9103 };
  }

  env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      LAB: this.dir,
      FD_NAME: 'agentfd-fd',
      FD_PORT: String(this.ports.fd),
      DIR_PORT: String(this.ports.dir),
      SD_PORT: String(this.ports.sd),
      FD_PASSWORD: 'lab-fd-pass',
      DIR_NAME: 'lab-dir',
      JOB_TIMEOUT: '120',
      EXTRA_DIR_CONF: path.join(this.dir, 'extra-dir.conf'),
      ...this.options.env,
    };
  }

  /** lab.sh setup with the test's Director configuration, then start the Director and the SD. */
  start(): void {
    writeFileSync(path.join(this.dir, 'extra-dir.conf'), this.options.extraDirectorConf?.(this.dir) ?? '');
    this.sh(['setup']);
    this.sh(['start']);
  }

  /** lab.sh COMMAND...; its output, and it must succeed unless `mayFail`. */
  sh(args: string[], mayFail = false): { status: number | null; out: string } {
    const result = spawnSync('bash', [LAB_SH, ...args], { env: this.env(), encoding: 'utf8', timeout: 300_000 });
    const out = `${result.stdout}${result.stderr}`;
    if (!mayFail && result.status !== 0) throw new Error(`lab.sh ${args.join(' ')} failed (${result.status}):\n${out}\n--- agentfd serve:\n${this.serveLog}`);
    return { status: result.status, out };
  }

  console(...commands: string[]): string {
    return this.sh(['console', ...commands]).out;
  }

  /** Run a job through the Director; it must end "Backup OK". Its report and JobId. */
  runJob(job: string, ...options: string[]): { report: string; jobId: number } {
    const { out } = this.sh(['run-job', job, ...options]);
    expect(out).toMatch(/Termination:\s+Backup OK/);
    return { report: out, jobId: Number(/jobid=(\d+)/.exec(out)![1]) };
  }

  /** Run a job that is expected to fail or end otherwise; its report. */
  runJobAnyEnd(job: string, ...options: string[]): string {
    return this.sh(['run-job', job, ...options], true).out;
  }

  /**
   * Restore every file of a job (or of "full,incremental,...": the latest state) to `where`; it
   * must end "Restore OK". `args`: lab.sh restore's ARGs (mark=PATH, regexwhere=..., ...; where
   * '' for none).
   */
  restore(jobIds: number | string, where: string, ...args: string[]): string {
    const { out } = this.sh(['restore', String(jobIds), where, ...args]);
    expect(out).toMatch(/Termination:\s+Restore OK/);
    return out;
  }

  /**
   * Start `agentfd serve` as the lab's client. `configExtra` is appended to its TOML (after
   * [[serve.directors]], so it may add keys to that table or start new tables);
   * `withoutAgents`: an empty plugin directory; `serveSettings`: more [serve] lines for this start
   * (besides the lab's own).
   */
  async startServe(configExtra = '', withoutAgents = false, command?: ServeCommand, serveSettings: string[] = []): Promise<void> {
    const config = path.join(this.dir, 'agentfd.toml');
    const noAgents = path.join(this.dir, 'no-agents');
    if (withoutAgents) mkdirSync(noAgents, { recursive: true, mode: 0o755 });
    writeFileSync(
      config,
      [
        withoutAgents ? `plugin_dir = ${JSON.stringify(noAgents)}` : '',
        'data_dir = "agentfd-state"',
        ...(command?.baculaTable ?? ['[bacula]', 'plugin_dir = "/usr/lib/bacula"']),
        '[serve]',
        'name = "agentfd-fd"',
        `port = ${this.ports.fd}`,
        ...(this.options.serveSettings ?? []),
        ...serveSettings,
        '[[serve.directors]]',
        'name = "lab-dir"',
        'password = "lab-fd-pass"',
        configExtra,
      ].join('\n'),
    );
    const child = command
      ? spawn(command.command, command.args(config), { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, detached: true })
      : spawn(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.serve = child;
    this.serveGroup = command !== undefined;
    const outputFile = command?.outputFile;
    if (outputFile) {
      // Read as it grows; what the program prints at its end still comes through stdout.
      let seen = 0;
      this.serveOutputTimer = setInterval(() => {
        let text = '';
        try {
          text = readFileSync(outputFile, 'utf8');
        } catch {
          return;
        }
        if (text.length > seen) {
          child.stdout!.emit('data', Buffer.from(text.slice(seen)));
          seen = text.length;
        }
      }, 100);
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agentfd serve did not start:\n${this.serveLog}`)), 20_000);
      const take = (chunk: Buffer) => {
        this.serveLog += chunk.toString();
        if (this.serveLog.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', take);
      child.stderr!.on('data', take);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agentfd serve exited (${code}):\n${this.serveLog}`));
      });
    });
  }

  /** Waits until agentfd serve's output matches `pattern` (its output is read between test steps only). */
  async waitForServeLog(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.serveLog)) {
      if (Date.now() > deadline) throw new Error(`agentfd serve did not log ${pattern} within ${timeoutMs / 1000} s:\n${this.serveLog}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stopServe(): Promise<void> {
    if (!this.serve) return;
    const child = this.serve;
    this.serve = null;
    if (this.serveOutputTimer) clearInterval(this.serveOutputTimer);
    this.serveOutputTimer = null;
    if (this.serveGroup) return stopGroup(child.pid!);
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }

  /** Stop everything and remove the lab. */
  async destroy(): Promise<void> {
    await this.stopServe();
    this.sh(['stop-real-fd'], true);
    this.sh(['stop'], true);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** SIGTERM to the process group `pid` leads (ours: spawned detached), SIGKILL after 10 s; waits until it is gone. */
async function stopGroup(pid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-pid, name);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  for (let waited = 0; alive() && waited < 10_000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
  if (!alive()) return;
  signal('SIGKILL');
  for (let waited = 0; alive() && waited < 10_000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
  if (alive()) throw new Error(`the serve's process group ${pid} is still there after SIGKILL`);
}

/** Every entry under `root`: type, mode, content digest or link target, and mtime for files. */
export function describeTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  // Names as bytes (src/platform/byte-names.ts): a Latin-1 name is read, and shown, as it is.
  const walk = (rel: string) => {
    const full = fsPath(path.join(root, rel));
    const key = shownName(rel);
    const st = lstatSync(full);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[key] = `link -> ${shownName(decodeName(readlinkSync(full, { encoding: 'buffer' })))}`;
    else if (st.isDirectory()) {
      out[key] = `dir ${mode}`;
      for (const name of readdirSync(full, { encoding: 'buffer' }).map(decodeName).sort()) walk(path.join(rel, name));
    } else if (st.isFIFO()) out[key] = `fifo ${mode}`;
    else out[key] = `file ${mode} ${Math.floor(st.mtimeMs / 1000)} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
  };
  walk('.');
  return out;
}

/** Where a restore to `where` puts the absolute path `original` (Bacula prefixes it with where). */
export function restoredPath(where: string, original: string): string {
  return path.join(where, ...original.split(path.sep).filter(Boolean));
}
