/**
 * Isolation, through the real CLI, with the FaultInjector sample: for each way an agent can crash,
 * hang or lie, the backup fails with a message naming the agent, the call and the signal or exit
 * code (or the lie); agentfd itself ends normally; the next backup with a healthy agent succeeds;
 * and verify and restore refuse the broken session instead of passing it off as good.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { childPids } from '../helpers/processes.js';
import { ROOT, makePluginDir, removeDir, tempDir } from '../helpers/native.js';

let ws: string;
let isolatedConfig: string;
let inProcessConfig: string;
/** Long call timeouts, so that only a cancel can end a hang. */
let cancelConfig: string;

/** A fault, the job status it leaves, and what the error must say. */
const CRASHES: [fault: string, message: RegExp][] = [
  ['crash-read', /agent "FaultInjector" \(.*faulty\.\w+\) crashed in backup_read\(\): its host process was killed by signal SIGSEGV/],
  ['abort-next', /agent "FaultInjector" \(.*\) crashed in backup_next_file\(\): its host process was killed by signal SIGABRT/],
  ['exit-read', /agent "FaultInjector" \(.*\) crashed in backup_read\(\): its host process exited with code 3/],
  ['throw-read', /crashed in backup_read\(\): its host process was killed by signal SIGABRT \(it printed: terminate called after throwing an instance of 'std::runtime_error'/],
  ['hang-read', /agent "FaultInjector" did not return from backup_read\(\) within 2 s \(call_timeout\); its host process was killed/],
];

/** A lie in an afd_file (a path, a stream) fails that file and so the job; the other files are saved (agent-contract.test.ts). */
const LIES: [fault: string, message: RegExp][] = [
  ['oversize-read', /failed in backup_read\(\): the agent claims \d+ bytes were read into a buffer of \d+; its data cannot be trusted/],
  ['negative-read', /failed in backup_read\(\): no message \(return code -100\)/],
  ['more-data', /broke the contract in backup_read\(\): stream 0 of \/@faulty\/file2\.bin delivered more than the 262144 bytes it announced/],
  ['bad-path-dotdot', /breaks the contract in backup_next_file\(\): the file path "\/@faulty\/\.\.\/\.\.\/etc\/passwd" is refused: it has a "\." or "\.\." component/],
  ['bad-path-relative', /breaks the contract in backup_next_file\(\): the file path "etc\/passwd" is refused: it is not absolute/],
  ['bad-utf8-path', /breaks the contract in backup_next_file\(\): the file path "\/@faulty\/bad\\xff\\xfe\.bin" is not valid UTF-8/],
  ['bad-stream-type', /breaks the contract in backup_next_file\(\): \/@faulty\/file2\.bin: stream 0 has unknown type 77/],
  ['bad-stream-count', /breaks the contract in backup_next_file\(\): \/@faulty\/file2\.bin: 5000 streams \(at most 1024\)/],
  ['null-path', /breaks the contract in backup_next_file\(\): the file path is NULL/],
];

function faultJobs(): string {
  return [...CRASHES, ...LIES, ['none', /./] as const]
    .map(([fault]) => `[jobs.${fault}]\nagent = "FaultInjector"\noptions = { fault = "${fault}" }`)
    .concat('[jobs.cancellable]\nagent = "FaultInjector"\noptions = { fault = "hang-cancellable" }')
    .join('\n\n');
}

beforeAll(() => {
  ws = tempDir('faults');
  const plugins = makePluginDir(['faulty', 'exchange']);
  const common = `plugin_dir = ${JSON.stringify(plugins)}\n[agents.FaultInjector]\ncall_timeout = "2s"\ncancel_grace = "1s"\n\n${faultJobs()}\n`;
  isolatedConfig = path.join(ws, 'isolated.toml');
  writeFileSync(isolatedConfig, `data_dir = "state-isolated"\n${common}`);
  inProcessConfig = path.join(ws, 'in-process.toml');
  writeFileSync(inProcessConfig, `data_dir = "state-in-process"\nisolation = "none"\n${common}`);
  cancelConfig = path.join(ws, 'cancel.toml');
  writeFileSync(cancelConfig, `data_dir = "state-cancel"\n${common.replace('call_timeout = "2s"', 'call_timeout = "60s"')}`);
  removeDir(path.join(ws, 'unused'));
  (globalThis as { pluginDirForCleanup?: string }).pluginDirForCleanup = plugins;
});
afterAll(() => {
  removeDir(ws);
  removeDir((globalThis as { pluginDirForCleanup?: string }).pluginDirForCleanup!);
});

/** The backup fails as described; the CLI ends normally; a healthy backup follows; the session is refused. */
function expectContained(config: string, fault: string, message: RegExp, status: 'aborted' | 'failed') {
  const cli = (args: string[]) => runCliJson([...args, '--config', config]);
  const backup = cli(['backup', '--job', fault]);
  expect(backup.signal, 'agentfd itself must not die').toBeNull();
  expect(backup.status).toBe(1);
  expect(backup.json.status).toBe('failed');
  const text = [backup.json.message, ...(backup.json.errors ?? [])].join('\n');
  expect(text).toMatch(message);
  const jobId = backup.json.jobId as number;
  expect(cli(['jobs']).json.jobs.find((j: { jobId: number }) => j.jobId === jobId)).toMatchObject({ status });

  const healthy = cli(['backup', '--job', 'none']);
  expect(healthy.status, healthy.stdout).toBe(0);
  expect(healthy.json).toMatchObject({ status: 'ok', files: 3 });

  const verify = cli(['verify', '--job-id', String(jobId)]);
  expect(verify.status).toBe(1);
  expect(verify.json.verify).toBe('bad');
  expect(verify.json.error).toMatch(new RegExp(`ended as ${status}|is ${status}`));
  const restore = cli(['restore', '--job-id', String(jobId), '--to', path.join(ws, 'restores', fault)]);
  expect(restore.json).toMatchObject({ code: 'E_JOB_NOT_RESTORABLE' });
  expect(restore.json.message).toContain(`is ${status}`);
}

describe('an isolated agent that crashes or hangs ends only its job', () => {
  for (const [fault, message] of CRASHES) {
    it(fault, () => expectContained(isolatedConfig, fault, message, 'aborted'));
  }
});

describe('an agent that lies is refused, isolated and in-process alike', () => {
  for (const [config, mode] of [[() => isolatedConfig, 'isolated'], [() => inProcessConfig, 'in-process']] as const) {
    for (const [fault, message] of LIES) {
      it(`${fault} (${mode})`, () => expectContained(config(), fault, message, 'failed'));
    }
  }
});

describe('cancelling a job (Ctrl-C)', () => {
  /**
   * Runs the backup in text mode, where the agent's log lines reach stderr as they happen, and
   * interrupts it once the agent says it has reached its fault in backup_read (a fixed delay raced
   * the agent host's start on a loaded machine). The job's status then comes from the catalog.
   */
  function backupThenInterrupt(
    job: string,
    interrupt: (cli: ReturnType<typeof spawn>) => void = (cli) => cli.kill('SIGINT'),
    spawnOptions: { detached?: boolean } = {},
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; jobStatus: string | undefined }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), 'backup', '--job', job, '--config', cancelConfig], {
        env: { ...process.env, AGENTFD_CONFIG: '' },
        ...spawnOptions,
      });
      let output = '';
      let interrupted = false;
      const onData = (c: Buffer) => {
        output += c;
        if (!interrupted && /injecting it in backup_read/.test(output)) {
          interrupted = true;
          interrupt(child);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      const deadline = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the agent never reached its fault in backup_read:\n${output}`));
      }, 45_000);
      child.on('close', (code, signal) => {
        clearTimeout(deadline);
        const jobs: { jobId: number; status: string }[] = runCliJson(['jobs', '--config', cancelConfig]).json.jobs;
        resolve({ code, signal, output, jobStatus: jobs.at(-1)?.status });
      });
    });
  }

  it('reaches a cooperative agent through is_cancelled', async () => {
    const result = await backupThenInterrupt('cancellable');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/the job was cancelled while \/@faulty\/file2\.bin was stalled/);
    expect(result.jobStatus).toBe('aborted');
  });

  it('reports a host killed from outside as a crash with its signal', async () => {
    const result = await backupThenInterrupt('cancellable', (cli) => {
      // The agent host is the CLI's child running host-main.js.
      const hosts = childPids(cli.pid!, 'host-main.js');
      expect(hosts, 'the agent host process').not.toEqual([]);
      for (const pid of hosts) process.kill(pid, 'SIGKILL');
    });
    expect(result.signal).toBeNull();
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/crashed in backup_read\(\): its host process was killed by signal SIGKILL/);
    expect(result.jobStatus).toBe('aborted');
  });

  it('treats a Ctrl-C at a terminal (SIGINT to the whole process group) as a cancel, not a crash of the agent', async () => {
    // detached: the CLI leads a process group of its own, as a shell's foreground job does, and
    // the signal goes to the group: the CLI and its agent host alike.
    const result = await backupThenInterrupt('cancellable', (cli) => process.kill(-cli.pid!, 'SIGINT'), { detached: true });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/the job was cancelled while \/@faulty\/file2\.bin was stalled/);
    expect(result.output).not.toMatch(/crashed/);
    expect(result.jobStatus).toBe('aborted');
  });

  it('cancels on SIGTERM too (a service stop)', async () => {
    const result = await backupThenInterrupt('cancellable', (cli) => cli.kill('SIGTERM'));
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/the job was cancelled/);
  });

  it('ends a hung agent after the grace period', async () => {
    const result = await backupThenInterrupt('hang-read');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/did not stop within 1 s of the cancel; its host process was killed/);
  });
});
