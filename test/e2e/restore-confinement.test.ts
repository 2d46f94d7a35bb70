/**
 * A restore writes beneath `--to` and nowhere else, whatever the volume recorded and whatever is
 * already in the target: the real CLI in child processes, the compiled sample agents, real
 * volumes and the real catalog.
 *
 * - Options recorded with a backup come back to the agent at restore, but never choose where it
 *   writes (SyntheticFiles once wrote below a recorded write_to=DIR).
 * - Native agents write their files through the gen 3 host function restore_open() (and
 *   restore_rename/restore_remove), which resolves every path beneath the target without following
 *   a link: a symlink planted in the target (`ln -s /outside T/SG1`) fails the restore with a clear
 *   error, and nothing appears outside. The host functions run in the agent host process by
 *   default and in the daemon with isolation = "none": both are tested. Agents of generations 1
 *   and 2 keep restoring.
 * - The filesystem agent creates every entry relative to the open target (Linux): a directory
 *   swapped for a symlink by someone else in the middle of a real restore refuses what follows
 *   below it, the restore reports it, and nothing lands where the link points.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOST_MAX_ABI } from '../../src/agents/types.js';
import { compareTrees } from '../../src/cli/commands/demo.js';
import { runCliJson } from '../helpers/cli.js';
import { ROOT, makePluginDir, tempDir } from '../helpers/native.js';

/** Every entry under `dir` (directories too), as '/'-separated relative paths, sorted. */
function listTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      out.push(child);
      if (entry.isDirectory()) walk(child);
    }
  };
  walk('');
  return out.sort();
}

/** A workspace with a config of the given jobs (TOML sections) and the named sample agents. */
function workspace(prefix: string, agents: string[], jobs: string[], extra: string[] = []): { ws: string; config: string } {
  const ws = tempDir(prefix);
  const plugins = makePluginDir(agents);
  const config = path.join(ws, 'agentfd.toml');
  writeFileSync(config, [`plugin_dir = ${JSON.stringify(plugins)}`, `data_dir = ${JSON.stringify(path.join(ws, 'state'))}`, ...extra, ...jobs].join('\n\n'));
  return { ws, config };
}

function backup(config: string, job: string): number {
  const result = runCliJson(['backup', '--job', job, '--config', config]);
  expect(result.status, result.stdout + result.stderr).toBe(0);
  expect(result.json).toMatchObject({ status: 'ok', jobStatus: 'committed' });
  return result.json.jobId as number;
}

function restore(config: string, jobId: number, to: string, extra: string[] = []) {
  return runCliJson(['restore', '--job-id', String(jobId), '--to', to, '--config', config, ...extra]);
}

describe('options recorded at backup do not choose where a restore writes', () => {
  it('SyntheticFiles ignores a recorded write_to and writes only below --to (with --option write=yes)', () => {
    const outside = tempDir('confine-outside');
    const { ws, config } = workspace('confine-options', ['synthetic'], [
      `[jobs.gen]\nagent = "SyntheticFiles"\noptions = { files = "5", size = "100", dirs = "2", write_to = ${JSON.stringify(outside)} }`,
    ]);
    const jobId = backup(config, 'gen');

    const verifyOnly = path.join(ws, 'verify-only');
    const first = restore(config, jobId, verifyOnly);
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(first.json).toMatchObject({ status: 'ok', files: 5 });
    expect(listTree(outside)).toEqual([]);

    const to = path.join(ws, 'restored');
    const second = restore(config, jobId, to, ['--option', 'write=yes']);
    expect(second.status, second.stdout + second.stderr).toBe(0);
    expect(second.json).toMatchObject({ status: 'ok', files: 5 });
    expect(listTree(to)).toEqual(['d000000', 'd000000/f000000000.dat', 'd000000/f000000001.dat', 'd000001', 'd000001/f000000002.dat', 'd000001/f000000003.dat', 'd000002', 'd000002/f000000004.dat']);
    expect(listTree(outside)).toEqual([]);
  });
});


function write(file: string, content: Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

const MODES = { isolated: [], 'in-process': ['isolation = "none"'] } as const;

/** Each sample agent with its source, the job options, and the directory a planted link replaces. */
const SAMPLES = {
  MicrosoftExchange: {
    library: 'exchange',
    option: 'store',
    fill: (dir: string) => {
      write(path.join(dir, 'SG1', 'Mailbox1.edb'), randomBytes(300_000));
      write(path.join(dir, 'SG1', 'logs', 'E00000001.log'), randomBytes(5000));
    },
    planted: 'SG1',
  },
  MSSQL: {
    library: 'mssql',
    option: 'data_dir',
    fill: (dir: string) => {
      write(path.join(dir, 'sales', 'sales.mdf'), randomBytes(200_000));
      write(path.join(dir, 'sales', 'sales_log.ldf'), randomBytes(3000));
    },
    planted: 'sales',
  },
} as const;

describe.skipIf(HOST_MAX_ABI < 3)('native agents write only beneath --to (gen 3 restore_open)', () => {
  for (const [agent, sample] of Object.entries(SAMPLES)) {
    for (const [mode, extra] of Object.entries(MODES)) {
      it(`${agent} (${mode}): a symlink planted in the target fails the restore, nothing is written outside, and a normal restore is byte-identical`, () => {
        const { ws, config } = workspace(`confine-${sample.library}`, [sample.library], [], [...extra]);
        const source = path.join(ws, 'source');
        sample.fill(source);
        writeFileSync(config, `${readFileSync(config, 'utf8')}\n\n[jobs.app]\nagent = "${agent}"\noptions = { ${sample.option} = ${JSON.stringify(source)}${agent === 'MicrosoftExchange' ? ', truncate_logs = "no"' : ''} }\n`);
        const jobId = backup(config, 'app');

        const plain = path.join(ws, 'plain');
        const ok = restore(config, jobId, plain);
        expect(ok.status, ok.stdout + ok.stderr).toBe(0);
        expect(ok.json).toMatchObject({ status: 'ok', errors: [] });
        expect(compareTrees(source, plain)).toEqual([]);

        const outside = tempDir('confine-outside');
        const target = path.join(ws, 'attacked');
        mkdirSync(target);
        symlinkSync(outside, path.join(target, sample.planted));
        const attacked = restore(config, jobId, target);
        expect(attacked.status, attacked.stdout + attacked.stderr).toBe(1);
        expect(attacked.json).toMatchObject({ status: 'failed', code: 'E_AGENT_CALL' });
        expect(attacked.json.message).toContain(`${target}/${sample.planted}/`);
        expect(attacked.json.message).toMatch(/agentfd refused it, the path leads through a symbolic link or a non-directory, and a restore never writes outside its target; restore into an empty target \(AFD_E_REFUSED\)/);
        expect(listTree(outside)).toEqual([]);
        expect(listTree(target)).toEqual([sample.planted]);
      });
    }
  }

  it('agents of generation 1 (LegacyFlatFiles) and 2 (FaultInjector) still restore', () => {
    const flat = tempDir('confine-flat');
    write(path.join(flat, 'export1.csv'), randomBytes(70_000));
    const { ws, config } = workspace('confine-old', ['legacy', 'faulty'], [
      `[jobs.legacy]\nagent = "LegacyFlatFiles"\noptions = { dir = ${JSON.stringify(flat)} }`,
      `[jobs.faulty]\nagent = "FaultInjector"\noptions = { size = "1000" }`,
    ]);
    const plugins = runCliJson(['plugins', 'list', '--config', config]);
    const byName = Object.fromEntries(plugins.json.agents.map((a: { name: string }) => [a.name, a]));
    expect(byName.LegacyFlatFiles).toMatchObject({ abi: 1 });
    expect(byName.FaultInjector).toMatchObject({ abi: 2 });

    const legacyTo = path.join(ws, 'legacy');
    const legacy = restore(config, backup(config, 'legacy'), legacyTo);
    expect(legacy.status, legacy.stdout + legacy.stderr).toBe(0);
    expect(readFileSync(path.join(legacyTo, 'export1.csv')).equals(readFileSync(path.join(flat, 'export1.csv')))).toBe(true);

    const faultyTo = path.join(ws, 'faulty');
    const faulty = restore(config, backup(config, 'faulty'), faultyTo);
    expect(faulty.status, faulty.stdout + faulty.stderr).toBe(0);
    const expected = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31 + 2) & 0xff));
    expect(readFileSync(path.join(faultyTo, '@faulty', 'file2.bin')).equals(expected)).toBe(true);
  });
});

/** `agentfd restore` as a child process that runs while the test acts on the target. */
function restoreInBackground(config: string, jobId: number, to: string) {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), 'restore', '--job-id', String(jobId), '--to', to, '--config', config, '--json'], {
    env: { ...process.env, AGENTFD_CONFIG: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ status: number | null; json: Record<string, any>; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      try {
        resolve({ status, json: JSON.parse(stdout), stderr });
      } catch {
        reject(new Error(`agentfd restore printed no JSON object:\nstdout: ${stdout}\nstderr: ${stderr}`));
      }
    });
  });
  return { child, done };
}

/** Wait (busy, so that nothing else runs in between) until `dir` holds an entry; false after `ms`. */
function waitForEntry(dir: string, ms: number): boolean {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      if (readdirSync(dir).length > 0) return true;
    } catch {
      // not created yet
    }
  }
  return false;
}

describe.skipIf(process.platform !== 'linux')('the filesystem agent against a directory swapped for a symlink during the restore', () => {
  it('refuses what follows below the swapped directory, reports the failure, and writes nothing where the link points', async () => {
    // More files each time the restore was over before the swap could happen (a fast machine).
    for (const files of [3000, 12000, 40000]) {
      const src = tempDir('confine-fs-src');
      for (let i = 0; i < files; i++) write(path.join(src, 'A', `f${String(i).padStart(6, '0')}`), Buffer.from(`file ${i}\n`));
      for (let i = 0; i < 20; i++) symlinkSync(`f${String(i).padStart(6, '0')}`, path.join(src, 'A', `link${i}`));
      const { ws, config } = workspace('confine-fs', [], [`[jobs.fs]\nagent = "filesystem"\ncompression = "none"\npaths = [${JSON.stringify(src)}]`]);
      const jobId = backup(config, 'fs');
      const outside = tempDir('confine-outside');
      const to = path.join(ws, 'restored');
      const restoredA = path.join(to, src, 'A');

      const run = restoreInBackground(config, jobId, to);
      const swapped = waitForEntry(restoredA, 60_000);
      if (swapped) {
        renameSync(restoredA, path.join(to, src, 'A.moved'));
        symlinkSync(outside, restoredA);
      }
      const result = await run.done;
      expect(listTree(outside)).toEqual([]);
      const moved = listTree(path.join(to, src, 'A.moved'));
      if (!swapped || moved.filter((f) => f.startsWith('f')).length >= files) continue; // the restore was done with A before the swap
      expect(result.status, result.stderr).not.toBe(0);
      expect(result.json.status).toBe('failed');
      expect(result.json.errors.length).toBeGreaterThan(0);
      expect(result.json.errors[0]).toMatch(/refused: refused to \w+ .*\/A\b.*is a symbolic link or not a directory, and a restore never writes through or over one/);
      return;
    }
    throw new Error('the restore was always done with directory A before the test could swap it; give it more files');
  }, 600_000);
});
