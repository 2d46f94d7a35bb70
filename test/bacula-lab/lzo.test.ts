/**
 * `compression = LZO` through agentfd serve and the real Bacula 9.6 Director and Storage Daemon
 * (scripts/bacula/lab.sh), with the real bacula-fd as the other client for the cross-checks: an LZO
 * FileSet backed up by agentfd ends "Backup OK" with a Software Compression ratio in the
 * Director's report, the very figures bacula-fd's backup of the same files gives; agentfd and the
 * real bacula-fd each restore the other's LZO backups byte for byte, sparse file (stream 30, its
 * holes kept) included.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statSync, writeSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab, describeTree, restoredPath } from '../helpers/bacula-lab.js';

let data: string;
const SPARSE_SIZE = 40_000_000;

const bacula = new BaculaLab('bacula-lzo', {
  ports: { dir: 9211, fd: 9212, sd: 9213 },
  extraDirectorConf: (lab) =>
    [
      'FileSet {', '  Name = "LzoSet"', '  Include {', '    Options { signature = MD5; compression = LZO }',
      `    File = "${path.join(lab, 'lzo-data')}"`, '  }', '}',
      'FileSet {', '  Name = "LzoSparseSet"', '  Include {', '    Options { signature = MD5; compression = LZO; sparse = yes }',
      `    File = "${path.join(lab, 'lzo-data')}"`, '  }', '}',
      'Job { Name = "LzoBackup"; JobDefs = "LabJobDefs"; FileSet = "LzoSet" }',
      'Job { Name = "LzoSparseBackup"; JobDefs = "LabJobDefs"; FileSet = "LzoSparseSet" }',
    ].join('\n'),
});

/** The figures of a backup report the FD decides: files, bytes and the compression they show. */
function figures(report: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of ['FD Files Written', 'SD Files Written', 'FD Bytes Written', 'SD Bytes Written', 'Software Compression']) {
    out[field] = new RegExp(`${field}:\\s+(.*)`).exec(report)?.[1]?.trim() ?? 'missing';
  }
  return out;
}

/** Runs `body` with the real bacula-fd as the lab's client in place of agentfd serve. */
async function withRealFd<T>(body: () => T): Promise<T> {
  await bacula.stopServe();
  bacula.sh(['start-real-fd']);
  try {
    return body();
  } finally {
    bacula.sh(['stop-real-fd'], true);
    await bacula.startServe();
  }
}

function restoreTo(jobId: number, name: string): string {
  const where = path.join(bacula.dir, name);
  bacula.restore(jobId, where);
  return restoredPath(where, data);
}

beforeAll(async () => {
  data = path.join(bacula.dir, 'lzo-data');
  mkdirSync(path.join(data, 'sub'), { recursive: true });
  writeFileSync(path.join(data, 'log.txt'), Array.from({ length: 60_000 }, (_, i) => `2026-12-07 line ${i} of a log that compresses well\n`).join(''));
  writeFileSync(path.join(data, 'random.bin'), randomBytes(300_000)); // grows under LZO, as bacula-fd sends it too
  writeFileSync(path.join(data, 'sub', 'small.txt'), 'hello lzo\n');
  writeFileSync(path.join(data, 'empty'), '');
  // Data at the start, in the middle and at the end, holes between: stream 30 leaves them out.
  const fd = openSync(path.join(data, 'sparse.img'), 'w');
  writeSync(fd, Buffer.alloc(10_000, 'head '), 0, 10_000, 0);
  writeSync(fd, randomBytes(100_000), 0, 100_000, 20_000_000);
  writeSync(fd, Buffer.from('tail\n'), 0, 5, SPARSE_SIZE - 5);
  closeSync(fd);
  bacula.start();
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

describe('compression = LZO through agentfd serve', () => {
  it('backs up an LZO FileSet (Backup OK, with a compression ratio) and restores it byte for byte (Restore OK)', () => {
    const before = describeTree(data);
    const { report, jobId } = bacula.runJob('LzoBackup');
    expect(report).toMatch(/Software Compression:\s+\d+\.\d+% [\d.]+:1/);
    expect(report).not.toMatch(/Software Compression:\s+None/);
    expect(describeTree(restoreTo(jobId, 'restore-ours'))).toEqual(before);
  });

  it('reports the very figures the real bacula-fd reports for the same files: files, bytes, compression', async () => {
    const ours = figures(bacula.runJob('LzoSparseBackup').report);
    const theirs = await withRealFd(() => figures(bacula.runJob('LzoSparseBackup').report));
    expect(theirs['Software Compression']).toMatch(/^\d+\.\d+% [\d.]+:1$/);
    expect(ours).toEqual(theirs);
  });

  it("the real bacula-fd restores agentfd's LZO backups byte for byte, the sparse one too", async () => {
    const before = describeTree(data);
    const [plain, sparse] = ['LzoBackup', 'LzoSparseBackup'].map((job) => {
      const { report, jobId } = bacula.runJob(job);
      expect(report).toMatch(/Software Compression:\s+\d+\.\d+% [\d.]+:1/); // LZO records, not plain ones
      return jobId;
    });
    const [a, b] = await withRealFd(() => [restoreTo(plain!, 'restore-real-plain'), restoreTo(sparse!, 'restore-real-sparse')]);
    expect(describeTree(a!)).toEqual(before);
    expect(describeTree(b!)).toEqual(before);
  });

  it("agentfd restores the real bacula-fd's LZO backups byte for byte, the sparse file with its holes", async () => {
    const before = describeTree(data);
    const [plain, sparse] = await withRealFd(() => [bacula.runJob('LzoBackup').jobId, bacula.runJob('LzoSparseBackup').jobId]);
    expect(describeTree(restoreTo(plain!, 'restore-ours-plain'))).toEqual(before);
    const restored = restoreTo(sparse!, 'restore-ours-sparse');
    expect(describeTree(restored)).toEqual(before);
    const image = statSync(path.join(restored, 'sparse.img'));
    expect(image.size).toBe(SPARSE_SIZE);
    expect(image.blocks * 512).toBeLessThan(1_000_000); // the holes stayed holes
  });
});
