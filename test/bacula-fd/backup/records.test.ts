/** The records every serve backup entry starts with (transfer/backup/records.ts) and the job's FileIndexes (job.ts). */
import { lstatSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM, decodeAttributes, decodeLStat } from '../../../src/bacula-fd/attributes/lstat.js';
import { defaultOptions } from '../../../src/bacula-fd/fileset/fileset.js';
import { dataStreamFor, deletedRecord, sendAttributesOnly } from '../../../src/bacula-fd/transfer/backup/records.js';
import { tempDir } from '../../helpers/native.js';
import { recordingJob } from './job.js';

describe('serve backup records', () => {
  it('names the data stream of the FileSet options in every LStat', () => {
    expect(dataStreamFor({ sparse: false, gzip: null })).toBe(STREAM.FILE_DATA);
    expect(dataStreamFor({ sparse: false, gzip: 6 })).toBe(STREAM.GZIP_DATA);
    expect(dataStreamFor({ sparse: true, gzip: null })).toBe(STREAM.SPARSE_DATA);
    expect(dataStreamFor({ sparse: true, gzip: 9 })).toBe(STREAM.SPARSE_GZIP_DATA);
    expect(dataStreamFor({ sparse: false, gzip: null, lzo: true })).toBe(29);
    expect(dataStreamFor({ sparse: true, gzip: null, lzo: true })).toBe(30);
  });

  it('sends an attributes-only entry under the next FileIndex, with its lstat and counted', async () => {
    const dir = tempDir('records');
    const file = path.join(dir, 'f');
    writeFileSync(file, 'x');
    const st = lstatSync(file, { bigint: true });
    const { job, sent } = recordingJob();
    const options = { ...defaultOptions(), gzip: 6 };
    expect(await sendAttributesOnly(job, FT.SPEC, file, file, st, '', options)).toBe(1);
    expect(await sendAttributesOnly(job, FT.LNK, `${file}-2`, file, st, 'target', options)).toBe(2);
    expect(sent.map((s) => [s.fileIndex, s.stream])).toEqual([[1, STREAM.UNIX_ATTRIBUTES], [2, STREAM.UNIX_ATTRIBUTES]]);
    const second = decodeAttributes(sent[1]!.frames[0]!);
    expect([second.fileIndex, second.type, second.fname, second.link]).toEqual([2, FT.LNK, `${file}-2`, 'target']);
    const stat = decodeLStat(second.lstat);
    expect([stat.ino, stat.size, stat.mtime, stat.dataStream]).toEqual([st.ino, 1n, st.mtimeMs / 1000n, STREAM.GZIP_DATA]);
    expect(job.totals.files).toBe(2);
  });

  it('keeps of a deleted file only its name and times', () => {
    const record = decodeAttributes(deletedRecord(7, '/gone/file', 1_700_000_000n, 1_700_000_100n));
    expect([record.fileIndex, record.type, record.fname, record.link]).toEqual([7, FT.DELETED, '/gone/file', '']);
    const stat = decodeLStat(record.lstat);
    expect([stat.mtime, stat.ctime, stat.atime, stat.size, stat.mode, stat.ino, stat.dev]).toEqual([1_700_000_000n, 1_700_000_100n, 0n, 0n, 0, 0n, 0n]);
  });

  it('reports a problem into the totals and the log', () => {
    const { job, logs } = recordingJob();
    job.problem('Cannot open "/x": EACCES');
    expect(job.totals.errors).toEqual(['Cannot open "/x": EACCES']);
    expect(logs).toEqual(['error: Cannot open "/x": EACCES']);
  });
});
