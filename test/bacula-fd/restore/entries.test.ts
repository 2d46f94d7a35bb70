/** entries.ts and job.ts: the entry in progress (its data, its end with attributes, a record it cannot decode). */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { FileEntry, noEntry } from '../../../src/bacula-fd/transfer/restore/entries.js';
import { readEntryRecord } from '../../../src/bacula-fd/transfer/restore/entry-record.js';
import { RestoreJob } from '../../../src/bacula-fd/transfer/restore/job.js';
import { tempDir } from '../../helpers/native.js';
import { attrRecord } from '../records.js';

function job() {
  const where = path.join(tempDir('entries'), 'where');
  const logs: string[] = [];
  return { where, logs, job: new RestoreJob({ records: (async function* () {})(), where, log: (level, m) => logs.push(`${level}: ${m}`) }) };
}

const record = (type: number, fname: string, stat = {}) => readEntryRecord(STREAM.UNIX_ATTRIBUTES, attrRecord(1, type, fname, stat).data);

describe.skipIf(process.platform !== 'linux')('the entry in progress (restore/entries.ts)', () => {
  it('takes a file\'s data, then at its end sets its mode and counts it', async () => {
    const { where, job: j } = job();
    const entry = await FileEntry.begin(j, record(FT.REG, '/f', { mode: 0o100600, size: 3n }));
    expect(entry.skipping).toBe(false);
    await entry.data(STREAM.FILE_DATA, Buffer.from('abc'));
    await entry.end();
    const file = path.join(where, 'f');
    expect(readFileSync(file, 'utf8')).toBe('abc');
    expect((statSync(file).mode & 0o7777).toString(8)).toBe('600');
    expect(j.totals).toEqual({ files: 1, bytes: 3, errors: [] });
    j.close();
  });

  it('reports a file whose data came out shorter than its size, as bacula-fd does; one that got none is not compared', async () => {
    const { where, job: j } = job();
    const short = await FileEntry.begin(j, record(FT.REG, '/short', { size: 10n }));
    await short.data(STREAM.FILE_DATA, Buffer.from('abc'));
    await short.end();
    const empty = await FileEntry.begin(j, record(FT.REG, '/empty', { size: 10n }));
    await empty.end();
    const whole = await FileEntry.begin(j, record(FT.REG, '/whole', { size: 3n }));
    await whole.data(STREAM.FILE_DATA, Buffer.from('abc'));
    await whole.end();
    expect(j.totals.errors).toEqual([`File size of restored file ${path.join(where, 'short')} not correct. Original 10, restored 3.`]);
    j.close();
  });

  it('removes a file whose data it cannot decode, and says so', async () => {
    const { where, job: j } = job();
    const entry = await FileEntry.begin(j, record(FT.REG, '/g'));
    await entry.data(STREAM.FILE_DATA, Buffer.from('part'));
    await entry.undecodable('stream 29 (LZO)');
    await entry.end();
    expect(existsSync(path.join(where, 'g'))).toBe(false);
    expect(entry.skipping).toBe(true);
    expect(j.totals.files).toBe(0);
    expect(j.totals.errors).toEqual([`"/g" is not restored: its data is in stream 29 (LZO); ${path.join(where, 'g')} was removed; restore it with a bacula-fd that can`]);
    j.close();
  });

  it('with no file open, data is an error of order, and an undecodable record names the last entry', async () => {
    const { job: j } = job();
    const none = noEntry(j, '/last');
    await none.data(STREAM.FILE_DATA, Buffer.from('x'));
    await none.undecodable('stream 4242');
    expect(j.totals.errors).toEqual([
      `data (stream ${STREAM.FILE_DATA}) arrived with no file open; the volume's records are out of order`,
      '"/last": a record of stream 4242 was ignored; restore it with a bacula-fd that can',
    ]);
  });

  it('a name that would leave where is the entry\'s error, and its records are skipped', async () => {
    const { job: j } = job();
    const entry = await FileEntry.begin(j, record(FT.REG, '/a/../../x'));
    expect(entry.skipping).toBe(true);
    expect(j.totals.errors).toHaveLength(1);
    j.close();
  });
});
