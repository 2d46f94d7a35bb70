/** Accurate mode's deleted files (transfer/backup/deleted-files.ts). */
import { describe, expect, it } from 'vitest';
import { FT, encodeLStat, type BaculaStat } from '../../../src/bacula-fd/attributes/lstat.js';
import { AccurateList } from '../../../src/bacula-fd/transfer/accurate.js';
import { sendDeletedFiles } from '../../../src/bacula-fd/transfer/backup/deleted-files.js';
import { recordingJob } from './job.js';

const STAT: BaculaStat = {
  dev: 1n, ino: 2n, mode: 0o100644, nlink: 1n, uid: 0, gid: 0, rdev: 0n, size: 9n, blksize: 4096n, blocks: 1n,
  atime: 5n, mtime: 1_700_000_000n, ctime: 1_700_000_001n, linkFI: 0, flags: 0, dataStream: 2,
};

function listOf(...names: string[]): AccurateList {
  const list = new AccurateList();
  for (const name of names) list.add(Buffer.from(`${name}\0${encodeLStat(STAT)}\0\0 0`));
  return list;
}

describe('serve backup: deleted files', () => {
  it('sends each listed file not met as FT_DELETED, with the times it had, and logs the count', async () => {
    const accurate = listOf('/a', '/b', '/c/');
    accurate.markSeen('/b');
    const { job, attributes, logs } = recordingJob({ accurate });
    job.nextIndex(); // an entry already sent
    await sendDeletedFiles(job);
    expect(attributes().map((r) => [r.fileIndex, r.type, r.fname, r.stat.mtime, r.stat.ctime, r.stat.size])).toEqual([
      [2, FT.DELETED, '/a', STAT.mtime, STAT.ctime, 0n],
      [3, FT.DELETED, '/c/', STAT.mtime, STAT.ctime, 0n],
    ]);
    expect(job.totals.files).toBe(2);
    expect(logs).toEqual(["info: accurate: 2 deleted of 3 files in the previous jobs' list"]);
  });

  it('sends nothing without accurate mode, or once the job is cancelled', async () => {
    const plain = recordingJob();
    await sendDeletedFiles(plain.job);
    const cancelled = recordingJob({ accurate: listOf('/a'), isCancelled: () => true });
    await sendDeletedFiles(cancelled.job);
    expect([plain.sent, plain.logs, cancelled.sent, cancelled.logs]).toEqual([[], [], [], []]);
  });
});
