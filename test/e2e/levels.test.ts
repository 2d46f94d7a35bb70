/**
 * Backup levels through the real CLI: full, change, incremental, change, differential, change,
 * incremental; every restore point matches the source as it was when its backup ran, byte for
 * byte, deletions and a rename included, for the filesystem agent and the Exchange sample.
 * Also: the level policy, and the Exchange sample's checkpoint surviving a catalog rebuilt by scan.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees } from '../../src/cli/commands/demo.js';
import { runCliJson } from '../helpers/cli.js';
import { makePluginDir, removeDir, tempDir } from '../helpers/native.js';

let ws: string;
let config: string;
let tree: string;
let store: string;
const cleanup: string[] = [];

const logName = (n: number) => `E${n.toString(16).toUpperCase().padStart(8, '0')}.log`;
const cli = (args: string[]) => runCliJson([...args, '--config', config]);

function write(file: string, content: string | Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** A copy of `dir` as it is now, to compare a restore of this moment with. */
function snapshot(dir: string, name: string): string {
  const copy = path.join(ws, 'snapshots', name);
  cpSync(dir, copy, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  return copy;
}

function backup(job: string, level: string) {
  const result = cli(['backup', '--job', job, '--level', level]);
  expect(result.status, result.stdout + result.stderr).toBe(0);
  expect(result.json.status).toBe('ok');
  return result.json;
}

function restoreAndCompare(jobId: number, expected: string, inside: (to: string) => string) {
  const to = path.join(ws, 'restores', `job-${jobId}`);
  const result = cli(['restore', '--job-id', String(jobId), '--to', to]);
  expect(result.status, result.stdout + result.stderr).toBe(0);
  expect(compareTrees(expected, inside(to))).toEqual([]);
  return result.json;
}

/** Paths of a job that carry data (sent, not seen), and those it recorded as deleted. */
function jobFiles(jobId: number) {
  const files = cli(['files', String(jobId)]).json.files as { path: string; seen: boolean; status: string; renamedFrom: string | null; streams: unknown[] }[];
  return {
    sent: files.filter((f) => f.status === 'ok' && !f.seen && f.streams.length > 0).map((f) => f.path).sort(),
    deleted: files.filter((f) => f.status === 'deleted').map((f) => f.path).sort(),
    renamed: files.filter((f) => f.renamedFrom).map((f) => [f.renamedFrom, f.path]),
  };
}

beforeAll(() => {
  ws = tempDir('levels');
  cleanup.push(ws);
  tree = path.join(ws, 'tree');
  store = path.join(ws, 'store');
  const plugins = makePluginDir(['exchange', 'legacy']);
  cleanup.push(plugins);
  config = path.join(ws, 'agentfd.toml');
  writeFileSync(
    config,
    [
      `plugin_dir = ${JSON.stringify(plugins)}`,
      'data_dir = "state"',
      `[jobs.files]\nagent = "filesystem"\npaths = [${JSON.stringify(tree)}]`,
      `[jobs.exchange]\nagent = "MicrosoftExchange"\noptions = { store = ${JSON.stringify(store)} }`,
      `[jobs.flat]\nagent = "LegacyFlatFiles"\noptions = { dir = ${JSON.stringify(tree)} }`,
      `[jobs.flat-strict]\nagent = "LegacyFlatFiles"\nlevel_policy = "refuse"\noptions = { dir = ${JSON.stringify(tree)} }`,
    ].join('\n\n'),
  );
});
afterAll(() => cleanup.forEach(removeDir));

describe('the filesystem agent', () => {
  it('restores every point of full, incremental, differential, incremental, deletions and a rename included', () => {
    write(path.join(tree, 'dir', 'a.txt'), 'alpha 1\n');
    write(path.join(tree, 'dir', 'b.txt'), 'bravo\n');
    write(path.join(tree, 'dir', 'sub', 'c.bin'), randomBytes(300_000));
    write(path.join(tree, 'keep.txt'), 'kept\n');
    const full = backup('files', 'full');
    const points: [number, string][] = [[full.jobId, snapshot(tree, 'files-1')]];

    appendFileSync(path.join(tree, 'dir', 'a.txt'), 'alpha 2\n');
    write(path.join(tree, 'new.txt'), 'new\n');
    rmSync(path.join(tree, 'dir', 'b.txt'));
    renameSync(path.join(tree, 'dir', 'sub', 'c.bin'), path.join(tree, 'dir', 'sub', 'c2.bin'));
    const incr = backup('files', 'incremental');
    expect(incr).toMatchObject({ level: 'incremental', referenceJob: full.jobId, deleted: 2 });
    expect(incr.renamed).toEqual([{ from: path.join(tree, 'dir', 'sub', 'c.bin'), to: path.join(tree, 'dir', 'sub', 'c2.bin') }]);
    const incrFiles = jobFiles(incr.jobId);
    expect(incrFiles.sent).toEqual([path.join(tree, 'dir', 'a.txt'), path.join(tree, 'dir', 'sub', 'c2.bin'), path.join(tree, 'new.txt')].sort());
    expect(incrFiles.deleted).toEqual([path.join(tree, 'dir', 'b.txt'), path.join(tree, 'dir', 'sub', 'c.bin')].sort());
    expect(incrFiles.renamed).toEqual([[path.join(tree, 'dir', 'sub', 'c.bin'), path.join(tree, 'dir', 'sub', 'c2.bin')]]);
    points.push([incr.jobId, snapshot(tree, 'files-2')]);

    write(path.join(tree, 'keep.txt'), 'kept, then changed\n');
    rmSync(path.join(tree, 'new.txt'));
    const diff = backup('files', 'differential');
    expect(diff).toMatchObject({ level: 'differential', referenceJob: full.jobId });
    // Everything changed since the full, not only since the incremental.
    expect(jobFiles(diff.jobId).sent).toEqual([path.join(tree, 'dir', 'a.txt'), path.join(tree, 'dir', 'sub', 'c2.bin'), path.join(tree, 'keep.txt')].sort());
    points.push([diff.jobId, snapshot(tree, 'files-3')]);

    write(path.join(tree, 'dir', 'z.txt'), 'zulu\n');
    const incr2 = backup('files', 'incremental');
    expect(incr2).toMatchObject({ level: 'incremental', referenceJob: diff.jobId });
    expect(jobFiles(incr2.jobId).sent).toEqual([path.join(tree, 'dir', 'z.txt')]);
    points.push([incr2.jobId, snapshot(tree, 'files-4')]);

    const dry = cli(['restore', '--job-id', String(incr2.jobId), '--to', path.join(ws, 'unused'), '--dry-run']);
    expect(dry.json.chain.map((c: { jobId: number; level: string }) => [c.jobId, c.level])).toEqual([
      [full.jobId, 'full'],
      [diff.jobId, 'differential'],
      [incr2.jobId, 'incremental'],
    ]);
    for (const [jobId, expected] of points) {
      const restored = restoreAndCompare(jobId, expected, (to) => path.join(to, ...tree.split(path.sep).filter(Boolean)));
      expect(restored.chain[0].level).toBe('full');
    }

    // --job NAME --at TIME picks the newest backup at or before that time: a moment between the
    // differential and the last incremental restores the differential's point.
    const jobs = cli(['jobs']).json.jobs as { jobId: number; started: string }[];
    const between = new Date(Date.parse(jobs.find((j) => j.jobId === incr2.jobId)!.started) - 1).toISOString();
    const to = path.join(ws, 'restores', 'at');
    const at = cli(['restore', '--job', 'files', '--at', between, '--to', to]);
    expect(at.status, at.stderr).toBe(0);
    expect(at.json.jobId).toBe(diff.jobId);
    expect(compareTrees(points[2]![1], path.join(to, ...tree.split(path.sep).filter(Boolean)))).toEqual([]);
    const early = cli(['restore', '--job', 'files', '--at', '2001-01-01T00:00:00Z', '--to', to]);
    expect(early.json).toMatchObject({ status: 'error', code: 'E_UNKNOWN_JOB' });
  });
});

describe('the Exchange sample', () => {
  let chainMade = false;

  /** Full, incremental, differential, incremental of the store, each restored and checked (once). */
  function exchangeChain(): void {
    chainMade = true;
    write(path.join(store, 'SG1', 'DB1.edb'), randomBytes(400_000));
    for (let n = 1; n <= 3; n++) write(path.join(store, 'SG1', 'logs', logName(n)), randomBytes(5000 + n));
    const before1 = snapshot(store, 'exchange-1');
    const full = backup('exchange', 'full');
    // Logs are truncated once the full is committed; the newest one stays.
    expect(readdirSync(path.join(store, 'SG1', 'logs'))).toEqual([logName(3)]);

    for (const n of [4, 5]) write(path.join(store, 'SG1', 'logs', logName(n)), randomBytes(6000 + n));
    const before2 = snapshot(store, 'exchange-2');
    const incr = backup('exchange', 'incremental');
    expect(incr).toMatchObject({ level: 'incremental', referenceJob: full.jobId });
    const incrFiles = jobFiles(incr.jobId);
    expect(incrFiles.sent).toEqual([`/@exchange/SG1/logs/${logName(4)}`, `/@exchange/SG1/logs/${logName(5)}`]);
    expect(incrFiles.deleted).toEqual([`/@exchange/SG1/logs/${logName(1)}`, `/@exchange/SG1/logs/${logName(2)}`]);

    write(path.join(store, 'SG1', 'logs', logName(6)), randomBytes(7000));
    const before3 = snapshot(store, 'exchange-3');
    const diff = backup('exchange', 'differential');
    expect(diff).toMatchObject({ level: 'differential', referenceJob: full.jobId });
    expect(jobFiles(diff.jobId).sent).toEqual([`/@exchange/SG1/logs/${logName(5)}`, `/@exchange/SG1/logs/${logName(6)}`]);

    write(path.join(store, 'SG1', 'logs', logName(7)), randomBytes(8000));
    const before4 = snapshot(store, 'exchange-4');
    const incr2 = backup('exchange', 'incremental');
    expect(jobFiles(incr2.jobId).sent).toEqual([`/@exchange/SG1/logs/${logName(7)}`]);

    for (const [jobId, expected] of [[full.jobId, before1], [incr.jobId, before2], [diff.jobId, before3], [incr2.jobId, before4]] as const) {
      restoreAndCompare(jobId, expected, (to) => to);
    }
  }

  it('saves only new logs in incrementals, truncates after commit, and restores every point from a full plus its logs', () => {
    exchangeChain();
  });

  it("keeps its checkpoint through a catalog rebuilt from the volumes by scan", () => {
    // Run alone (-t), the chain above is made here first.
    if (!chainMade) exchangeChain();
    const state = path.join(ws, 'state');
    for (const f of readdirSync(state).filter((f) => f.startsWith('catalog.sqlite'))) rmSync(path.join(state, f));
    const volumes = readdirSync(path.join(state, 'volumes')).filter((f) => f.endsWith('.afv')).map((f) => path.join(state, 'volumes', f));
    const scan = runCliJson(['scan', ...volumes, '--config', config]);
    expect(scan.json.errors).toEqual([]);
    write(path.join(store, 'SG1', 'logs', logName(8)), randomBytes(9000));
    const incr = backup('exchange', 'incremental');
    expect(jobFiles(incr.jobId).sent).toEqual([`/@exchange/SG1/logs/${logName(8)}`]);
    // And the restore chain, rebuilt from the volumes, still gives the store as it is.
    restoreAndCompare(incr.jobId, snapshot(store, 'exchange-5'), (to) => to);
  });
});

describe('the level policy', () => {
  it('upgrades an incremental the agent cannot make to a full, and says so', () => {
    write(path.join(tree, 'flat.txt'), 'flat\n');
    const result = cli(['backup', '--job', 'flat', '--level', 'incremental']);
    expect(result.status).toBe(0);
    expect(result.json).toMatchObject({ status: 'ok', requestedLevel: 'incremental', level: 'full' });
    expect(result.json.levelNote).toContain('cannot make incremental backups; a full backup was made instead (level_policy = "upgrade")');
    expect(result.json.warnings.join('\n')).toContain('cannot make incremental backups');
  });

  it('refuses it when the job says level_policy = "refuse"', () => {
    write(path.join(tree, 'flat.txt'), 'flat\n');
    backup('flat-strict', 'full');
    const result = cli(['backup', '--job', 'flat-strict', '--level', 'incremental']);
    expect(result.status).toBe(1);
    expect(result.json).toMatchObject({ status: 'error', code: 'E_LEVEL_UNSUPPORTED' });
    expect(result.json.message).toContain('agent "LegacyFlatFiles" cannot make incremental backups (it declares full)');
  });
});
