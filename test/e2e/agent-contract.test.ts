/**
 * The rules of binding/include/agentfd_agent.h, one test per rule, through the real CLI with the
 * Contract test agent (test/fixtures/native/contract_agent.c), which breaks the rule its job
 * options name. Each test checks what the header's table of rules says breaking it does: fail the
 * file (the job goes on, the agent's backup_end_file is called), fail the job, or only log.
 * The agent appends every entry point it enters to a trace file, so the call sequence it saw is
 * checked too.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { canMountTmpfs, makePluginDir, removeDir, tempDir } from '../helpers/native.js';

let plugins: string;
beforeAll(() => {
  plugins = makePluginDir(['contract_agent', 'exchange', 'synthetic']);
});
afterAll(() => removeDir(plugins));

type Mode = 'isolated' | 'in-process';
const MODES: Mode[] = ['isolated', 'in-process'];

/** A fresh workspace with one job "c" of the Contract agent with these options. */
function contractJob(options: Record<string, string>, mode: Mode = 'isolated', extra = '') {
  const ws = tempDir('contract');
  const trace = path.join(ws, 'trace');
  const opts = Object.entries({ ...options, trace }).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ');
  const config = path.join(ws, 'agentfd.toml');
  writeFileSync(
    config,
    `data_dir = "state"\nplugin_dir = ${JSON.stringify(plugins)}\n${mode === 'in-process' ? 'isolation = "none"\n' : ''}${extra}\n[jobs.c]\nagent = "Contract"\noptions = { ${opts} }\n`,
  );
  return {
    ws,
    config,
    cli: (args: string[]) => runCliJson([...args, '--config', config]),
    /** The entry points the agent saw, in order. */
    trace: () => (existsSync(trace) ? readFileSync(trace, 'utf8').trim().split('\n') : []),
  };
}

/** The job ran every file, failed the one at `index` (1-based) with `message`, and saved the others. */
function expectOneFileFailed(options: Record<string, string>, mode: Mode, message: RegExp, failedPath?: string) {
  const job = contractJob(options, mode);
  const backup = job.cli(['backup', '--job', 'c']);
  expect(backup.status, backup.stdout).toBe(1);
  expect(backup.json).toMatchObject({ status: 'failed', jobStatus: 'failed', files: 3, failedFiles: 1 });
  expect(backup.json.errors.join('\n')).toMatch(message);
  const files = job.cli(['files', String(backup.json.jobId)]).json.files as { path: string; status: string; error: string | null }[];
  expect(files.map((f) => f.status)).toEqual(['ok', 'failed', 'ok']);
  expect(files[1]!.error).toMatch(message);
  if (failedPath !== undefined) expect(files[1]!.path).toBe(failedPath);
  // The refused file was ended with the agent, the next file was asked for, and the agent heard
  // that the job failed before close().
  const trace = job.trace();
  expect(trace).toContain('backup_end_file 2');
  expect(trace).toContain('backup_next_file 3');
  expect(trace).toContain('backup_end_file 3');
  expect(trace.slice(-2)).toEqual(['backup_finish 1', 'close']);
  expect(job.cli(['jobs']).json.jobs.find((j: { jobId: number }) => j.jobId === backup.json.jobId)).toMatchObject({ status: 'failed' });
}

describe('a file the agent describes wrongly fails that file; the job goes on', () => {
  const refusals: [name: string, options: Record<string, string>, message: RegExp, failedPath?: string][] = [
    ['a ".." component', { bad_path_at: '2', bad_path: '/@contract/a/../b' }, /the file path "\/@contract\/a\/\.\.\/b" is refused: it has a "\." or "\.\." component/, '/@contract/a/../b'],
    ['an empty component', { bad_path_at: '2', bad_path: '/@contract//b' }, /the file path "\/@contract\/\/b" is refused: it has an empty component/],
    ['a relative path', { bad_path_at: '2', bad_path: 'contract/b' }, /the file path "contract\/b" is refused: it is not absolute/],
    ['an empty path', { bad_path_at: '2', bad_path: '' }, /the file path "" is refused: it is not absolute/],
    ['a NULL path', { bad_path_at: '2', bad_path: 'NULL' }, /the file path is NULL/, '(NULL)'],
    ['a path that is not UTF-8', { bad_path_at: '2', bad_path: '/@contract/bad\\xff.bin' }, /the file path "\/@contract\/bad\\xff\.bin" is not valid UTF-8/, '/@contract/bad\\xff.bin'],
    ['an unknown kind', { bad_kind_at: '2' }, /\/@contract\/file2\.bin: unknown file kind 99/],
    ['a bad stream name', { bad_stream_name_at: '2', bad_stream_name: 'no spaces' }, /\/@contract\/file2\.bin: stream 0 has an invalid name/],
    ['two streams of one name', { dup_stream_at: '2' }, /\/@contract\/file2\.bin: two streams are named data/],
    ['too many streams', { many_streams_at: '2' }, /\/@contract\/file2\.bin: 5000 streams \(at most 1024\)/],
    ['a NULL stream array', { null_streams_at: '2' }, /\/@contract\/file2\.bin: 1 streams announced but the array is NULL/],
    ['a "seen" file with streams', { seen_streams_at: '2' }, /\/@contract\/file2\.bin: a "seen" file cannot have streams/],
    // Found while reading: the stream and the file are ended with the agent, the next file follows.
    ['a stream that delivers more than its size_hint', { lie_at: '2' }, /stream 0 of \/@contract\/file2\.bin delivered more than the 100 bytes it announced/],
    ['a large stream that delivers more than its size_hint', { lie_at: '2', file_bytes: '300000' }, /stream 0 of \/@contract\/file2\.bin delivered more than the 300000 bytes it announced/],
  ];
  for (const mode of MODES) {
    for (const [name, options, message, failedPath] of refusals) {
      it(`${name} (${mode})`, () => expectOneFileFailed(options, mode, message, failedPath));
    }
  }
});

describe('a backslash is an ordinary character of a name', () => {
  for (const mode of MODES) {
    it(`is accepted in an agent path (${mode})`, () => {
      const job = contractJob({ bad_path_at: '2', bad_path: '/@contract/a\\b.bin' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status, backup.stdout).toBe(0);
      const files = job.cli(['files', String(backup.json.jobId)]).json.files as { path: string; status: string }[];
      expect(files.map((f) => [f.path, f.status])).toContainEqual(['/@contract/a\\b.bin', 'ok']);
    });
  }
});

describe.skipIf(process.platform === 'win32')('a backslash in a file name (the filesystem agent)', () => {
  it('is backed up and restored byte for byte, never skipped', () => {
    const ws = tempDir('backslash');
    const data = path.join(ws, 'data');
    mkdirSync(data);
    writeFileSync(path.join(data, 'a\\b.txt'), 'back\\slash\n');
    writeFileSync(path.join(data, 'plain.txt'), 'plain\n');
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, `data_dir = "state"\nplugin_dir = ${JSON.stringify(plugins)}\n[jobs.fs]\nagent = "filesystem"\npaths = [${JSON.stringify(data)}]\n`);
    const backup = runCliJson(['backup', '--job', 'fs', '--config', config]);
    expect(backup.status, backup.stdout).toBe(0);
    expect(backup.json.warnings.join('\n')).not.toMatch(/skipped/);
    const files = runCliJson(['files', String(backup.json.jobId), '--config', config]).json.files as { path: string }[];
    expect(files.map((f) => f.path)).toContain(`${data}/a\\b.txt`);
    const to = path.join(ws, 'restored');
    const restore = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', to, '--config', config]);
    expect(restore.status, restore.stdout).toBe(0);
    expect(readFileSync(path.join(to, data, 'a\\b.txt'), 'utf8')).toBe('back\\slash\n');
  });
});

describe('what fails the job', () => {
  for (const mode of MODES) {
    it(`backup_next_file returning AFD_OK without a file (${mode})`, () => {
      const job = contractJob({ null_file_at: '2' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status).toBe(1);
      expect(backup.json.errors.join('\n')).toMatch(/failed in backup_next_file\(\): backup_next_file returned AFD_OK without a file/);
      expect(job.trace()).not.toContain('backup_next_file 3');
      expect(job.trace().slice(-2)).toEqual(['backup_finish 1', 'close']);
    });

    it(`a read error (${mode})`, () => {
      const job = contractJob({ fail_read_at: '2' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status).toBe(1);
      expect(backup.json.errors.join('\n')).toMatch(/failed in backup_read\(\): cannot read the file: the test asked for a read error \(AFD_E_IO\)/);
      expect(job.trace().slice(-2)).toEqual(['backup_finish 1', 'close']);
    });

    it(`a delivered_level that is no level, after backup_prepare succeeded: backup_finish(FAILED) is still called (${mode})`, () => {
      const job = contractJob({ delivered_level: '9' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status).toBe(1);
      expect(backup.json.message).toMatch(/the agent set delivered_level to 9, which is no level/);
      expect(job.trace()).toEqual(['open', 'backup_prepare', 'backup_finish 1', 'close']);
    });
  }
});

describe('what is only logged', () => {
  for (const mode of MODES) {
    it(`a state_set over 1 MiB is an error return; the last blob accepted is the job's state (${mode})`, () => {
      const job = contractJob({ state_sizes: '10,2000000', log_state: '1' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status, backup.stdout).toBe(0);
      const warnings = backup.json.warnings.join('\n');
      expect(warnings).toMatch(/state_set\(10 bytes\) returned 0/);
      expect(warnings).toMatch(/state_set\(2000000 bytes\) returned -3/);
      expect(warnings).toMatch(/tried to store 2000000 bytes of state; the limit is 1048576/);
      expect(job.trace().slice(-2)).toEqual(['backup_finish 0', 'close']);
      // The next incremental gets the 10-byte blob (of bytes 1) back.
      const incremental = job.cli(['backup', '--job', 'c', '--level', 'incremental']);
      expect(incremental.status, incremental.stdout).toBe(0);
      expect(incremental.json.warnings).toContain('reference state: 10 bytes, first byte 1');
    });

    it(`a log message over 64 KiB is cut with a marker (${mode})`, () => {
      const job = contractJob({ log_bytes: '70000' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status, backup.stdout).toBe(0);
      const line = (backup.json.warnings as string[]).find((w) => w.startsWith('LLL'))!;
      expect(line).toBe(`${'L'.repeat(65536)}… [truncated: ${70000 - 65536} bytes]`);
    });

    it(`a log message that is not UTF-8 is shown escaped (${mode})`, () => {
      const job = contractJob({ log_invalid: '1' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status, backup.stdout).toBe(0);
      expect(backup.json.warnings).toContain('a byte \\xff that is not UTF-8');
    });

    it(`an option name or fileset path over 64 KiB is an error return (${mode})`, () => {
      const job = contractJob({ key_bytes: '70000' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status, backup.stdout).toBe(0);
      const warnings = backup.json.warnings.join('\n');
      expect(warnings).toMatch(/get_option with a long key returned -1, fileset_check returned -1/);
      expect(warnings).toMatch(/an option name that is longer than 64 KiB to get_option\(\)/);
    });
  }
});

describe('the call order of the host functions', () => {
  for (const mode of MODES) {
    it(`restore_open, restore_rename and restore_remove before restore_prepare (in a backup) touch nothing, return AFD_E_UNSUPPORTED and fail the job (${mode})`, () => {
      const job = contractJob({ restore_calls: '1' }, mode);
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status, backup.stdout).toBe(1);
      expect(backup.json).toMatchObject({ status: 'failed', jobStatus: 'failed', files: 3, failedFiles: 0 });
      // The agent got generation 3's table (its restore functions are there) and an error code from each.
      expect(backup.json.warnings).toContain('in a backup restore_open returned -5, restore_rename -5, restore_remove -5');
      const errors = backup.json.errors.join('\n');
      expect(errors).toMatch(/restore_open\(restored\.bin\)/);
      expect(errors).toMatch(/restore_rename\(restored\.bin -> renamed\.bin\)/);
      expect(errors).toMatch(/restore_remove\(renamed\.bin\)/);
      for (const name of ['restored.bin', 'renamed.bin']) {
        expect(existsSync(path.join(job.ws, name)), name).toBe(false);
        expect(existsSync(path.join(process.cwd(), name)), name).toBe(false);
      }
      expect(job.cli(['jobs']).json.jobs.find((j: { jobId: number }) => j.jobId === backup.json.jobId)).toMatchObject({ status: 'failed' });
      expect(job.trace().slice(-2)).toEqual(['backup_finish 1', 'close']);
    });
  }
});

// A real full disk needs a small filesystem: a tmpfs, which only root can mount (CI runs as root).
describe.runIf(canMountTmpfs())('a write error ends the job at once, whatever the agent is doing', () => {
  for (const mode of MODES) {
    it(`a full disk with a native agent fails the job within seconds and releases the lock (${mode})`, () => {
      // 8 files of 4 MiB do not fit a 2 MiB volume directory; the call timeout is the default 10 min.
      const job = contractJob({ files: '8', file_bytes: String(4 << 20) }, mode, 'storage_dir = "volumes"');
      const storage = path.join(job.ws, 'volumes');
      mkdirSync(storage);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', storage]);
      try {
        writeFileSync(job.config, readFileSync(job.config, 'utf8').replace('[jobs.c]', '[jobs.c]\ncompression = "none"'));
        const started = Date.now();
        const backup = job.cli(['backup', '--job', 'c']);
        expect(Date.now() - started).toBeLessThan(15_000);
        expect(backup.status).toBe(1);
        expect(backup.json).toMatchObject({ status: 'failed', code: 'E_VOLUME_WRITE' });
        expect(backup.json.message).toMatch(/disk full \(ENOSPC\)/);
        expect(job.cli(['jobs']).json.jobs).toMatchObject([{ jobId: backup.json.jobId, status: 'failed' }]);
        // The agent was told the job failed and closed (isolated: unless it had to be killed).
        expect(job.trace().slice(-2)).toEqual(['backup_finish 1', 'close']);
        // The storage lock is free: a job that fits runs.
        writeFileSync(job.config, readFileSync(job.config, 'utf8').replace('files = "8"', 'files = "1"').replace(`file_bytes = "${4 << 20}"`, 'file_bytes = "1000"'));
        const next = job.cli(['backup', '--job', 'c']);
        expect(next.status, next.stdout).toBe(0);
      } finally {
        execFileSync('umount', [storage]);
      }
    });
  }
});

describe.runIf(canMountTmpfs())('a disk that holds both the catalog and the volumes fills up', () => {
  it('the job is marked failed in the catalog at once (the space reserve kept for that is freed)', () => {
    const job = contractJob({ files: '8', file_bytes: String(4 << 20) }, 'isolated', 'storage_dir = "disk/volumes"');
    const disk = path.join(job.ws, 'disk');
    mkdirSync(disk);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', disk]);
    try {
      writeFileSync(
        job.config,
        readFileSync(job.config, 'utf8').replace('data_dir = "state"', 'data_dir = "disk/state"').replace('[jobs.c]', '[jobs.c]\ncompression = "none"'),
      );
      const backup = job.cli(['backup', '--job', 'c']);
      expect(backup.status).toBe(1);
      expect(backup.json).toMatchObject({ status: 'failed', code: 'E_VOLUME_WRITE' });
      expect(backup.json.message).not.toMatch(/the catalog could not mark the job failed/);
      // Read before any other backup could mark a "running" job aborted.
      expect(job.cli(['jobs']).json.jobs).toMatchObject([{ jobId: backup.json.jobId, status: 'failed' }]);
    } finally {
      execFileSync('umount', [disk]);
    }
  });
});

describe('agentfd estimate', () => {
  for (const mode of MODES) {
    it(`asks an agent that declares AFD_CAP_ESTIMATE, writes nothing, and ends the session properly (${mode})`, () => {
      const job = contractJob({ files: '5', file_bytes: '1000' }, mode);
      const estimate = job.cli(['estimate', '--job', 'c']);
      expect(estimate.status, estimate.stdout).toBe(0);
      expect(estimate.json).toMatchObject({ status: 'ok', job: 'c', agent: 'Contract', level: 'full', method: 'agent', files: 5, bytes: 5000 });
      expect(job.trace()).toEqual(['open', 'backup_prepare', 'estimate', 'backup_finish 1', 'close']);
      expect(existsSync(path.join(job.ws, 'state')), 'no catalog, no volume').toBe(false);
    });
  }

  it('asks the Exchange sample, and counts its store', () => {
    const ws = tempDir('estimate-exchange');
    const store = path.join(ws, 'store');
    mkdirSync(path.join(store, 'SG1', 'logs'), { recursive: true });
    writeFileSync(path.join(store, 'SG1', 'DB1.edb'), Buffer.alloc(3000, 1));
    writeFileSync(path.join(store, 'SG1', 'logs', 'E00000001.log'), Buffer.alloc(500, 2));
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, `data_dir = "state"\nplugin_dir = ${JSON.stringify(plugins)}\n[jobs.ex]\nagent = "MicrosoftExchange"\noptions = { store = ${JSON.stringify(store)} }\n`);
    const estimate = runCliJson(['estimate', '--job', 'ex', '--config', config]);
    expect(estimate.status, estimate.stdout).toBe(0);
    expect(estimate.json).toMatchObject({ agent: 'MicrosoftExchange', method: 'agent' });
    expect(estimate.json.bytes).toBeGreaterThanOrEqual(3500);
    expect(existsSync(path.join(ws, 'state'))).toBe(false);
  });

  it('counts the filesystem agent by walking, reading nothing', () => {
    const ws = tempDir('estimate-fs');
    const data = path.join(ws, 'data');
    mkdirSync(data);
    writeFileSync(path.join(data, 'a'), Buffer.alloc(1234));
    writeFileSync(path.join(data, 'b'), Buffer.alloc(766));
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, `data_dir = "state"\nplugin_dir = ${JSON.stringify(plugins)}\n[jobs.fs]\nagent = "filesystem"\npaths = [${JSON.stringify(data)}]\n`);
    const estimate = runCliJson(['estimate', '--job', 'fs', '--config', config]);
    expect(estimate.status, estimate.stdout).toBe(0);
    expect(estimate.json).toMatchObject({ method: 'walk', files: 3, bytes: 2000 }); // the root directory and two files
  });

  it('says so when the agent cannot estimate', () => {
    const ws = tempDir('estimate-none');
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, `data_dir = "state"\nplugin_dir = ${JSON.stringify(plugins)}\n[jobs.s]\nagent = "SyntheticFiles"\n`);
    const estimate = runCliJson(['estimate', '--job', 's', '--config', config]);
    expect(estimate.status).toBe(1);
    expect(estimate.json).toMatchObject({ code: 'E_NO_ESTIMATE' });
    expect(estimate.json.message).toMatch(/cannot estimate a backup \(it does not declare AFD_CAP_ESTIMATE\)/);
  });
});
