/**
 * Accurate mode with a real Bacula 9.6 Director: a Job with `Accurate = yes` sends agentfd the
 * previous jobs' file list; agentfd saves by comparing with it (not by the since-time) and reports
 * the files that are gone, so a restore of the full and its incremental leaves them out. The real
 * bacula-fd restores the same chain identically.
 */
import { mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab, describeTree, restoredPath } from '../helpers/bacula-lab.js';

const bacula = new BaculaLab('bacula-accurate', {
  ports: { dir: 9151, fd: 9152, sd: 9153 },
  extraDirectorConf: (lab) =>
    [
      'FileSet {', '  Name = "AccurateSet"', '  Include {', '    Options { signature = MD5; accurate = mcs5 }', `    File = "${lab}/data"`, '  }', '}',
      'Job { Name = "AccurateBackup"; JobDefs = "LabJobDefs"; FileSet = "AccurateSet"; Accurate = yes }',
    ].join('\n'),
});
const data = path.join(bacula.dir, 'data');
const old = new Date('2015-05-05T05:05:05Z');

beforeAll(async () => {
  bacula.start();
  mkdirSync(path.join(data, 'sub'), { recursive: true });
  writeFileSync(path.join(data, 'stays.txt'), 'unchanged\n');
  writeFileSync(path.join(data, 'goes.txt'), 'deleted before the incremental\n');
  writeFileSync(path.join(data, 'sub', 'moves.txt'), 'renamed before the incremental\n');
  writeFileSync(path.join(data, 'same-size.txt'), 'version 1\n');
  utimesSync(path.join(data, 'same-size.txt'), old, old);
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

describe('accurate mode with a real Bacula 9.6 Director', () => {
  it('records deletions and renames, compares by the list (checksum included), and restores the latest state without the deleted files', async () => {
    const full = bacula.runJob('AccurateBackup').jobId;
    rmSync(path.join(data, 'goes.txt'));
    renameSync(path.join(data, 'sub', 'moves.txt'), path.join(data, 'moved.txt'));
    // Same size and mtime as before: only the MD5 comparison (accurate = ...5) can see this change.
    writeFileSync(path.join(data, 'same-size.txt'), 'version 2\n');
    utimesSync(path.join(data, 'same-size.txt'), old, old);
    const { report, jobId: incremental } = bacula.runJob('AccurateBackup', 'level=Incremental');
    expect(report).toMatch(/Accurate:\s+yes/);
    await bacula.waitForServeLog(/accurate: 2 deleted/);
    // The catalog knows which files the incremental saved, and which it recorded as deleted.
    const listed = bacula.console(`list files jobid=${incremental}`);
    expect(listed).toContain(`${data}/moved.txt`);
    expect(listed).toContain(`${data}/same-size.txt`);
    expect(listed).not.toContain(`${data}/stays.txt`);

    const where = path.join(bacula.dir, 'restore-latest');
    bacula.restore(`${full},${incremental}`, where);
    expect(describeTree(restoredPath(where, data))).toEqual(describeTree(data));
  });

  it('the real bacula-fd restores the same chain identically', async () => {
    const jobs = bacula.console('list jobs').match(/\|\s+(\d+)\s+\|\s+AccurateBackup/g)?.map((row) => /(\d+)/.exec(row)![1]) ?? [];
    expect(jobs.length).toBe(2);
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    try {
      const where = path.join(bacula.dir, 'restore-real-fd');
      bacula.restore(jobs.join(','), where);
      expect(describeTree(restoredPath(where, data))).toEqual(describeTree(data));
    } finally {
      bacula.sh(['stop-real-fd'], true);
    }
  });
});
