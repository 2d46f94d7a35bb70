/**
 * A restore writes beneath `--to` and nowhere else, whatever the volume recorded and whatever is
 * already in the target: the real CLI in child processes, the compiled sample agents, real
 * volumes and the real catalog.
 *
 * - Options recorded with a backup come back to the agent at restore, but never choose where it
 *   writes (SyntheticFiles once wrote below a recorded write_to=DIR).
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { makePluginDir, tempDir } from '../helpers/native.js';

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

