/**
 * Restores that cannot write: the real CLI in a child process, the compiled sample agents, real
 * volumes, and a real full disk (a small tmpfs as the restore target). An agent's write failure
 * must end the restore with an error that names the file and says why; no file cut short may be
 * left looking complete; the volumes and the catalog stay as they were, so the same job restores
 * whole into a roomy directory afterwards. Isolated agents (the default) get large writes through
 * shared-memory slots (RESTORE_WRITE_SLOT, answered by SLOT_DONE) and writes up to 64 KiB inside
 * pipe frames (RESTORE_WRITE, not answered): a failure is kept by the host and answers the file's
 * RESTORE_END_FILE. In-process agents (isolation = "none") must report the same way.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { loadPluginDir, type AgentRegistry } from '../../src/agents/registry.js';
import { compareTrees } from '../../src/cli/commands/demo.js';
import { parseConfig } from '../../src/config/load.js';
import { resolveAgent } from '../../src/jobs/agents.js';
import { runCliJson } from '../helpers/cli.js';
import { childPids } from '../helpers/processes.js';
import { ROOT, canMountTmpfs, makePluginDir, removeDir, tempDir } from '../helpers/native.js';

const KIB = 1024;
const MIB = 1024 * 1024;
/** Long enough that reaching it can only mean the daemon and the host got out of step. */
const CALL_TIMEOUT_S = 30;
/** FaultInjector's files: several times the 4 shared-memory slots of 1 MiB, plus a small tail (an inline write). */
const FAULTY_SIZE = 16 * MIB + 1000;


const TMPFS = canMountTmpfs();
const SKIPPED = TMPFS ? '' : ' [SKIPPED: a real full disk is a small tmpfs, and mounting one needs root on Linux]';

let ws: string;
let plugins: string;
const configs = { isolated: '', 'in-process': '' };
type Mode = keyof typeof configs;
const MODES: Mode[] = ['isolated', 'in-process'];
/** Source directories and the job ids of their backups. */
const src = { big: '', small: '' };
const jobs = { big: 0, small: 0, faulty: 0 };

function write(file: string, content: Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** Byte i of FaultInjector's file k is (i * 31 + k) & 0xff (see faulty.c). */
function faultyContent(k: number): Buffer {
  const b = Buffer.allocUnsafe(FAULTY_SIZE);
  for (let i = 0; i < FAULTY_SIZE; i++) b[i] = (i * 31 + k) & 0xff;
  return b;
}

function mountTmpfs(size: string): string {
  const dir = tempDir('restore-full');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  return dir;
}

/** Unmount even when a failed test left a process with a file open in it (then lazily). */
function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  }
  removeDir(dir);
}

/** A tmpfs of `size` (e.g. "2m") mounted on a new directory for the length of `fn`. */
function withTmpfs<T>(size: string, fn: (dir: string) => T): T {
  const dir = mountTmpfs(size);
  try {
    return fn(dir);
  } finally {
    unmount(dir);
  }
}

async function withTmpfsAsync<T>(size: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mountTmpfs(size);
  try {
    return await fn(dir);
  } finally {
    unmount(dir);
  }
}

/** `work`, or a rejection once it has taken `seconds` (so that a hang still reaches the cleanup). */
function within<T>(seconds: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${seconds} s: the daemon and the agent host are out of step`)), seconds * 1000);
  });
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

/** `agentfd restore` in a child process: its exit, its one JSON object, how long it took and its pid. */
function restore(mode: Mode, jobId: number, to: string) {
  const started = Date.now();
  const result = spawnSync(
    process.execPath,
    [path.join(ROOT, 'bin', 'agentfd.js'), 'restore', '--job-id', String(jobId), '--to', to, '--config', configs[mode], '--json'],
    { cwd: ws, env: { ...process.env, AGENTFD_CONFIG: '' }, encoding: 'utf8', timeout: 2 * CALL_TIMEOUT_S * 1000 },
  );
  const seconds = (Date.now() - started) / 1000;
  let json: Record<string, any>;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    throw new Error(`agentfd restore (${mode}) printed no JSON object after ${seconds} s (signal ${result.signal}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return { status: result.status, signal: result.signal, stderr: result.stderr, json, seconds, pid: result.pid };
}

/** Every non-directory entry under `dir`, as '/'-separated relative paths, sorted. */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const child = rel ? `${rel}/${name}` : name;
      if (lstatSync(path.join(dir, child)).isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk('');
  return out;
}

/** The volumes (SHA-256 of each) and what the catalog says of the jobs and of job `jobId`'s files. */
function stateSnapshot(jobId: number) {
  const dir = path.join(ws, 'state', 'volumes');
  const volumes = Object.fromEntries(listFiles(dir).map((f) => [f, createHash('sha256').update(readFileSync(path.join(dir, f))).digest('hex')]));
  const jobList = runCliJson(['jobs', '--config', configs.isolated]);
  const files = runCliJson(['files', String(jobId), '--config', configs.isolated]);
  expect(jobList.status, jobList.stdout).toBe(0);
  expect(files.status, files.stdout).toBe(0);
  return { volumes, jobs: jobList.json.jobs, files: files.json.files };
}

/** The failure is the agent's write error, nothing the two processes made up between them. */
function expectWriteFailure(result: ReturnType<typeof restore>, jobId: number): void {
  expect(result.signal, 'agentfd itself must end normally').toBeNull();
  expect(result.status, JSON.stringify(result.json)).toBe(1);
  expect(result.json).toMatchObject({ status: 'failed', jobId, code: 'E_AGENT_CALL' });
  // Not a call timeout, a crash, a host protocol error or an answer to another request.
  expect(result.json.message).not.toMatch(/call_timeout|did not return|crashed|protocol|expected|E_HOST/i);
}

/** Nothing of the failed file, nor any other partial file, is left under the target. */
function expectNoPartialFiles(target: string): string[] {
  const files = listFiles(target);
  expect(files.filter((f) => f.endsWith('.part'))).toEqual([]);
  return files;
}

/** A restore of `jobId` into a roomy directory gives `source` back exactly, and nothing more. */
function expectWholeRestore(mode: Mode, jobId: number, source: string, to: string): void {
  const ok = restore(mode, jobId, to);
  expect(ok.status, JSON.stringify(ok.json) + ok.stderr).toBe(0);
  expect(ok.json).toMatchObject({ status: 'ok', jobId, errors: [] });
  expect(compareTrees(source, to)).toEqual([]);
  expect(listFiles(to)).toEqual(listFiles(source));
}

describe.skipIf(!TMPFS)(`restoring onto a full disk${SKIPPED}`, () => {
  beforeAll(() => {
    ws = tempDir('restore-failures');
    // Case 1: one 8 MiB database (1 MiB chunks: shared-memory slots) and a few small logs.
    src.big = path.join(ws, 'src', 'big');
    write(path.join(src.big, 'SG1', 'DB1.edb'), randomBytes(8 * MIB));
    for (let n = 1; n <= 3; n++) write(path.join(src.big, 'SG1', 'logs', `E0000000${n}.log`), randomBytes(5000 * n));
    // Case 2: only small files (inline RESTORE_WRITE frames). Whole pages, so that stdio writes
    // them straight through and the disk fills inside restore_write, not at a later flush.
    src.small = path.join(ws, 'src', 'small');
    write(path.join(src.small, 'SG1', 'DB1.edb'), randomBytes(40 * KIB));
    for (let n = 1; n <= 50; n++) write(path.join(src.small, 'SG1', 'logs', `E${n.toString(16).toUpperCase().padStart(8, '0')}.log`), randomBytes(28 * KIB));

    plugins = makePluginDir(['exchange', 'faulty']);
    const common = [
      `plugin_dir = ${JSON.stringify(plugins)}`,
      'data_dir = "state"',
      `[agents.MicrosoftExchange]\ncall_timeout = "${CALL_TIMEOUT_S}s"`,
      `[agents.FaultInjector]\ncall_timeout = "${CALL_TIMEOUT_S}s"`,
      `[jobs.big]\nagent = "MicrosoftExchange"\ncompression = "none"\noptions = { store = ${JSON.stringify(src.big)}, truncate_logs = "no" }`,
      `[jobs.small]\nagent = "MicrosoftExchange"\ncompression = "zstd:3"\noptions = { store = ${JSON.stringify(src.small)}, truncate_logs = "no" }`,
      `[jobs.faulty]\nagent = "FaultInjector"\ncompression = "none"\noptions = { size = "${FAULTY_SIZE}" }`,
    ];
    // Both configurations share the data directory: the same backups are restored in both modes.
    configs.isolated = path.join(ws, 'isolated.toml');
    writeFileSync(configs.isolated, common.join('\n\n'));
    configs['in-process'] = path.join(ws, 'in-process.toml');
    writeFileSync(configs['in-process'], [common[0], common[1], 'isolation = "none"', ...common.slice(2)].join('\n\n'));

    for (const name of ['big', 'small', 'faulty'] as const) {
      const backup = runCliJson(['backup', '--job', name, '--config', configs.isolated]);
      expect(backup.status, backup.stdout + backup.stderr).toBe(0);
      expect(backup.json).toMatchObject({ status: 'ok', jobStatus: 'committed', failedFiles: 0 });
      jobs[name] = backup.json.jobId as number;
    }
  }, 120_000);
  afterAll(() => {
    if (ws) removeDir(ws);
    if (plugins) removeDir(plugins);
  });

  /** Case 1's failure in each mode, its message with the target replaced, for the comparison. */
  const bigFailures = new Map<Mode, { code: string; message: string }>();

  /** Case 1 in `mode`, checked; its failure is kept for the comparison. */
  function largeDatabaseOntoFullDisk(mode: Mode): void {
    const before = stateSnapshot(jobs.big);
    withTmpfs('2m', (disk) => {
      const target = path.join(disk, 'r');
      const result = restore(mode, jobs.big, target);
      expectWriteFailure(result, jobs.big);
      // The database comes first, and is the file the agent could not write: it says where and why.
      expect(result.json.message).toMatch(/failed in restore_write\(\): cannot write \S*\/SG1\/DB1\.edb(\.part)?: No space left on device/);
      expect(result.json.message).toContain(target);
      // The restore stopped at the database: no file is in the target, complete-looking or partial.
      expect(expectNoPartialFiles(target)).toEqual([]);
      bigFailures.set(mode, { code: result.json.code, message: (result.json.message as string).split(target).join('<target>') });
    });
    expect(stateSnapshot(jobs.big), 'the failed restore changed the catalog or a volume').toEqual(before);
    expectWholeRestore(mode, jobs.big, src.big, path.join(ws, 'roomy', `big-${mode}-${randomUUID()}`));
  }

  for (const mode of MODES) {
    it(`a large database that does not fit (${mode}): the write error names it, nothing cut short is left, and the job restores whole afterwards`, () => {
      largeDatabaseOntoFullDisk(mode);
    }, 120_000);
  }

  it('isolated and in-process agents report the full disk the same way', () => {
    // Run alone (-t), the two cases above have not run: run them here.
    for (const mode of MODES) if (!bigFailures.has(mode)) largeDatabaseOntoFullDisk(mode);
    expect(bigFailures.size).toBe(2);
    expect(bigFailures.get('isolated')).toEqual(bigFailures.get('in-process'));
  }, 240_000);

  for (const mode of MODES) {
    it(`small files only (${mode}): the files before the full disk are whole, the one it hit is named and gone`, () => {
      const before = stateSnapshot(jobs.small);
      withTmpfs('256k', (disk) => {
        const target = path.join(disk, 'r');
        const result = restore(mode, jobs.small, target);
        expectWriteFailure(result, jobs.small);
        const named = /failed in restore_write\(\): cannot write (\S+?\/SG1\/logs\/(E[0-9A-F]{8}\.log))(\.part)?: No space left on device/.exec(result.json.message);
        expect(named, result.json.message).not.toBeNull();
        expect(named![1]).toBe(path.join(target, 'SG1', 'logs', named![2]!));

        // What is there is complete and exact: the database and the logs up to the full disk, in order.
        const files = expectNoPartialFiles(target);
        for (const f of files) expect(readFileSync(path.join(target, f)).equals(readFileSync(path.join(src.small, f))), f).toBe(true);
        const logs = files.filter((f) => f.startsWith('SG1/logs/'));
        expect(files).toEqual(['SG1/DB1.edb', ...logs]);
        expect(logs.length).toBeGreaterThan(0); // the disk held some files whole: the check above compared something
        expect(logs.length).toBeLessThan(50);
        const expected = Array.from({ length: logs.length }, (_, i) => `SG1/logs/E${(i + 1).toString(16).toUpperCase().padStart(8, '0')}.log`);
        expect(logs).toEqual(expected);
        // The file named is the one after the last whole log, and it is not there under its name.
        expect(named![2]).toBe(`E${(logs.length + 1).toString(16).toUpperCase().padStart(8, '0')}.log`);
        expect(existsSync(named![1]!)).toBe(false);
      });
      expect(stateSnapshot(jobs.small), 'the failed restore changed the catalog or a volume').toEqual(before);
      expectWholeRestore(mode, jobs.small, src.small, path.join(ws, 'roomy', `small-${mode}`));
    }, 120_000);
  }

  // After the agent's first failed write, the daemon goes on sending the file's remaining writes
  // (12 of them through 4 shared-memory slots, then an inline one for the tail): every slot must
  // come back (SLOT_DONE) although its write was dropped, and the file's end must be answered with
  // the write error, not with a timeout, a protocol error, or an answer meant for another request.
  const faultyMessages = new Map<Mode, string>();

  /** Case 3 in `mode`, checked; its message is kept for the comparison. */
  function laterFileFailsMidStream(mode: Mode): void {
    const before = stateSnapshot(jobs.faulty);
    withTmpfs('20m', (disk) => {
      const target = path.join(disk, 'r');
      const result = restore(mode, jobs.faulty, target);
      expectWriteFailure(result, jobs.faulty);
      expect(result.seconds, 'a dropped write left the daemon waiting').toBeLessThan(CALL_TIMEOUT_S / 3);
      expect(result.json.message).toMatch(/agent "FaultInjector" failed in restore_write\(\): cannot write \S+\/@faulty\/file2\.bin: No space left on device/);
      faultyMessages.set(mode, (result.json.message as string).split(target).join('<target>'));
      // file1 was answered OK and is whole; file2 (written under its own name by this agent)
      // was discarded, not left cut short; file3 was never started.
      expect(expectNoPartialFiles(target)).toEqual(['@faulty/file1.bin']);
      expect(readFileSync(path.join(target, '@faulty', 'file1.bin')).equals(faultyContent(1))).toBe(true);
      // The shared memory of the restore was released with its host.
      expect(readdirSync('/dev/shm').filter((f) => f.startsWith(`agentfd-${result.pid}-`))).toEqual([]);
    });
    expect(stateSnapshot(jobs.faulty), 'the failed restore changed the catalog or a volume').toEqual(before);
    const to = path.join(ws, 'roomy', `faulty-${mode}-${randomUUID()}`);
    const ok = restore(mode, jobs.faulty, to);
    expect(ok.status, JSON.stringify(ok.json) + ok.stderr).toBe(0);
    expect(ok.json).toMatchObject({ status: 'ok', files: 3, bytes: 3 * FAULTY_SIZE });
    expect(listFiles(to)).toEqual(['@faulty/file1.bin', '@faulty/file2.bin', '@faulty/file3.bin']);
    for (const k of [1, 2, 3]) expect(readFileSync(path.join(to, '@faulty', `file${k}.bin`)).equals(faultyContent(k)), `file${k}`).toBe(true);
  }

  for (const mode of MODES) {
    it(`a later file fails mid-stream (${mode}): the daemon and the agent stay in step, and it ends promptly with the write error`, () => {
      laterFileFailsMidStream(mode);
    }, 120_000);
  }

  it('isolated and in-process agents report the mid-stream failure the same way', () => {
    // Run alone (-t), the two cases above have not run: run them here.
    for (const mode of MODES) if (!faultyMessages.has(mode)) laterFileFailsMidStream(mode);
    expect(faultyMessages.size).toBe(2);
    expect(faultyMessages.get('isolated')).toBe(faultyMessages.get('in-process'));
  }, 240_000);

  // The restore job stops at the first failed file, so through the CLI nothing is asked of the
  // host after it but a second end of that file (whose answer is ignored) and CLOSE: an answer
  // left over from the failed file would go unseen there. Here the real agent (in its host
  // process, or in-process) is driven as a restore that goes on would drive it: the failed file
  // ends as the job ends it (endFile(false) after the error), then a second file is restored,
  // which only succeeds if every request gets its own answer and the failure did not outlive its
  // file. The failed file's .part is removed when it is discarded, which makes room for the next.
  describe('after a failed file, the next file gets its own answers', () => {
    let registry: AgentRegistry;
    beforeAll(async () => {
      registry = await loadPluginDir(plugins);
    });

    const log = { path: '/@exchange/SG1/logs/E00000001.log', data: randomBytes(20_000) };
    const cases = [
      // 8 chunks of 1 MiB: shared-memory slots (RESTORE_WRITE_SLOT), twice as many as there are slots.
      { via: 'shared-memory slots', disk: '2m', size: 8 * MIB, chunk: MIB },
      // 40 chunks of 28 KiB: inline pipe frames (RESTORE_WRITE).
      { via: 'pipe frames', disk: '256k', size: 40 * 28 * KIB, chunk: 28 * KIB },
    ];
    for (const mode of MODES) {
      for (const c of cases) {
        it(`${c.via} (${mode})`, async () => {
          const config = parseConfig(readFileSync(configs[mode], 'utf8'), configs[mode]);
          const agent = resolveAgent('MicrosoftExchange', registry, config);
          expect(agent.constructor.name).toBe(mode === 'isolated' ? 'IsolatedAgent' : 'NativeAgent');
          const data = randomBytes(c.size);
          const db = { path: '/@exchange/SG1/DB1.edb', data };
          const info = (f: { path: string; data: Buffer }) => ({
            path: f.path, kind: 'virtual' as const, linkTarget: null, mode: 0o644, seen: false, mtimeNs: 0n, size: f.data.length, winAttributes: 0,
            streams: [{ index: 0, type: 'data' as const, name: 'data', sizeHint: f.data.length, rawRestorable: false }],
          });
          await withTmpfsAsync(c.disk, async (disk) => {
            const target = path.join(disk, 'r');
            const started = Date.now();
            const run = await agent.restore({
              jobName: 'in-step', jobId: 1, options: {}, filesetCheck: () => true, log: () => undefined, isCancelled: () => false,
              target, sourceAbi: 2, sourceAgentVersion: '1.2.0',
            });
            const steps = async () => {
              // The file that does not fit, as the restore job sends it.
              await run.startFile(info(db));
              let failedAt: 'write' | 'endFile' | null = null;
              let failure: unknown = null;
              try {
                for (let at = 0; at < data.length; at += c.chunk) {
                  failedAt = 'write';
                  await run.write(0, data.subarray(at, at + c.chunk));
                }
                failedAt = 'endFile';
                await run.endFile(true);
                failedAt = null;
              } catch (error) {
                failure = error;
                await run.endFile(false).catch(() => undefined); // as runRestore does with the open file
              }
              // In-process the write itself fails; isolated writes are not answered, and the
              // failure comes back as the answer to the file's end.
              expect(failedAt).toBe(mode === 'isolated' ? 'endFile' : 'write');
              expect(String((failure as Error).message)).toMatch(/failed in restore_write\(\): cannot write \S*\/SG1\/DB1\.edb\.part: No space left on device/);

              // The next file: each request must get its own answer, and the old failure must be gone.
              await run.startFile(info(log));
              await run.write(0, log.data);
              await run.endFile(true);
              await run.finish();
            };
            try {
              await within(CALL_TIMEOUT_S, steps());
            } finally {
              await run.close();
            }
            expect((Date.now() - started) / 1000).toBeLessThan(CALL_TIMEOUT_S / 3);
            expect(listFiles(target)).toEqual(['SG1/logs/E00000001.log']);
            expect(readFileSync(path.join(target, 'SG1', 'logs', 'E00000001.log')).equals(log.data)).toBe(true);
          });
        }, 120_000);
      }
    }
  });
});

describe('a restore whose agent stops answering while it writes', () => {
  // Writes are streamed (not answered one by one), so the call timeout must also run while the
  // daemon waits for a shared-memory slot or for the pipe to drain: a hung agent ends the restore.
  it('ends at call_timeout with E_AGENT_TIMEOUT naming restore_write', async () => {
    const dir = tempDir('restore-hang');
    try {
      const store = path.join(dir, 'store');
      write(path.join(store, 'SG1', 'DB1.edb'), randomBytes(256 * MIB));
      mkdirSync(path.join(store, 'SG1', 'logs'), { recursive: true });
      const config = path.join(dir, 'agentfd.toml');
      writeFileSync(
        config,
        [
          `plugin_dir = ${JSON.stringify(makePluginDir(['exchange']))}`,
          `data_dir = ${JSON.stringify(path.join(dir, 'state'))}`,
          '[agents.MicrosoftExchange]\ncall_timeout = "2s"',
          `[jobs.big]\nagent = "MicrosoftExchange"\ncompression = "none"\noptions = { store = ${JSON.stringify(store)}, truncate_logs = "no" }`,
        ].join('\n'),
      );
      const backup = runCliJson(['backup', '--config', config, '--job', 'big']);
      expect(backup.json.jobStatus).toBe('committed');
      const target = path.join(dir, 'target');
      const started = Date.now();
      const cli = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), 'restore', '--job-id', String(backup.json.jobId), '--to', target, '--config', config, '--json'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      cli.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => cli.on('close', (code) => resolve(code)));
      // Once the database is being written, stop the agent host in the middle of it.
      const part = path.join(target, 'SG1', 'DB1.edb.part');
      let stopped = false;
      while (!stopped && Date.now() - started < 30_000) {
        if (existsSync(part) && lstatSync(part).size > 4 * MIB) {
          const hosts = childPids(cli.pid!, 'host-main.js');
          expect(hosts, 'the agent host process').not.toEqual([]);
          for (const pid of hosts) process.kill(pid, 'SIGSTOP');
          stopped = true;
        } else await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(stopped).toBe(true);
      const stoppedAt = Date.now();
      const code = await within(30, exited);
      expect(code).toBe(1);
      const json = JSON.parse(stdout);
      expect(json).toMatchObject({ status: 'failed', code: 'E_AGENT_TIMEOUT' });
      expect(json.message).toMatch(/did not return from restore_write\(\) within 2 s \(call_timeout\)/);
      // The timeout, not something later, ended it (2 s of silence, plus the kill and the cleanup).
      expect((Date.now() - stoppedAt) / 1000).toBeLessThan(15);
      expect(existsSync(path.join(target, 'SG1', 'DB1.edb'))).toBe(false);
    } finally {
      removeDir(dir);
    }
  }, 120_000);
});
