/** Whether an entry goes into the job (transfer/backup/must-save.ts): since-time or accurate list. */
import { lstatSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeLStat, statFromNode } from '../../../src/bacula-fd/attributes/lstat.js';
import { defaultOptions, parseFileSet } from '../../../src/bacula-fd/fileset/fileset.js';
import { AccurateList } from '../../../src/bacula-fd/transfer/accurate.js';
import { changedSince, mustSave } from '../../../src/bacula-fd/transfer/backup/must-save.js';
import { tempDir } from '../../helpers/native.js';

describe('serve backup: must an entry be saved', () => {
  it('saves on mtime or ctime at or after the since-time, on mtime alone with mtimeonly', () => {
    const file = path.join(tempDir('must-save'), 'f');
    writeFileSync(file, 'x');
    utimesSync(file, 1_000_000, 1_000_000); // old mtime; the ctime is now
    const st = lstatSync(file, { bigint: true });
    const now = BigInt(Math.floor(Date.now() / 1000)) - 5n;
    expect(changedSince(null, st, { mtimeOnly: true })).toBe(true);
    expect(changedSince(now, st, { mtimeOnly: false })).toBe(true);
    expect(changedSince(now, st, { mtimeOnly: true })).toBe(false);
    expect(changedSince(1_000_000n, st, { mtimeOnly: true })).toBe(true);
  });

  it('asks the accurate list with a directory named with its trailing slash, and marks it met', async () => {
    const dir = path.join(tempDir('must-save-accurate'), 'd');
    mkdirSync(dir);
    const st = lstatSync(dir, { bigint: true });
    const list = new AccurateList();
    list.add(Buffer.from(`${dir}/\0${encodeLStat(statFromNode(st, 0, 0))}\0\0 0`));
    const block = parseFileSet(['I', 'O ', 'N', `F ${dir}`, 'N']).includes[0]!;
    expect(await mustSave({ since: 0n, accurate: list }, dir, st, defaultOptions(), block)).toBe(false);
    expect([...list.unseen()]).toEqual([]);
    // Not listed: saved, whatever the since-time says.
    const other = path.join(path.dirname(dir), 'new');
    writeFileSync(other, '');
    expect(await mustSave({ since: 0n, accurate: list }, other, lstatSync(other, { bigint: true }), defaultOptions(), block)).toBe(true);
  });
});
