/**
 * Accurate mode's decisions on real files: the list a Director sends (frames as bacula-dir 9.6
 * writes them), bacula-fd's default comparison (mtime, ctime, size), the other letters, checksums
 * in the catalog's base64, and the files left unseen for FT_DELETED.
 */
import { createHash } from 'node:crypto';
import { lstatSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AccurateList, DEFAULT_ACCURATE_OPTIONS } from '../../src/bacula-fd/transfer/accurate.js';
import { baculaBase64FromBytes } from '../../src/bacula-fd/wire/base64.js';
import { encodeLStat, statFromNode, STREAM } from '../../src/bacula-fd/attributes/lstat.js';
import { tempDir } from '../helpers/native.js';

/** A list frame for `file` as it is now: path, LStat, checksum, delta_seq. */
function frameFor(name: string, file: string, checksum = ''): Buffer {
  const lstat = encodeLStat(statFromNode(lstatSync(file, { bigint: true }), STREAM.FILE_DATA));
  return Buffer.from(`${name}\0${lstat}\0${checksum}\0${0}\0`);
}

const stat = (file: string) => lstatSync(file, { bigint: true });

describe('accurate mode', () => {
  it('saves files not in the list, skips unchanged ones, and saves those whose mtime, ctime or size changed', async () => {
    const dir = tempDir('accurate');
    const same = path.join(dir, 'same.txt');
    const touched = path.join(dir, 'touched.txt');
    const grown = path.join(dir, 'grown.txt');
    for (const f of [same, touched, grown]) writeFileSync(f, 'content\n');
    const list = new AccurateList();
    for (const f of [same, touched, grown]) list.add(frameFor(f, f));
    list.add(frameFor(`${dir}/`, dir));
    expect(list.size).toBe(4);
    utimesSync(touched, new Date('2001-01-01'), new Date('2001-01-01'));
    writeFileSync(grown, 'content, and more\n');

    const check = (f: string) => list.mustSave(f, stat(f), DEFAULT_ACCURATE_OPTIONS, null, true);
    expect(await check(same)).toBe(false);
    expect(await check(touched)).toBe(true);
    expect(await check(grown)).toBe(true);
    expect(await list.mustSave(path.join(dir, 'new.txt'), stat(same), DEFAULT_ACCURATE_OPTIONS, null, true)).toBe(true);
    // A directory is looked up with its trailing slash.
    expect(await list.mustSave(`${dir}/`, stat(dir), DEFAULT_ACCURATE_OPTIONS, null, false)).toBe(false);
    expect([...list.unseen()]).toEqual([]);
  });

  it('reports the listed files it did not meet, with their old times, for FT_DELETED', async () => {
    const dir = tempDir('accurate-deleted');
    const kept = path.join(dir, 'kept');
    const gone = path.join(dir, 'gone');
    writeFileSync(kept, 'k');
    writeFileSync(gone, 'g');
    utimesSync(gone, new Date('2010-10-10T10:10:10Z'), new Date('2010-10-10T10:10:10Z'));
    const list = new AccurateList();
    list.add(frameFor(kept, kept));
    list.add(frameFor(gone, gone));
    await list.mustSave(kept, stat(kept), DEFAULT_ACCURATE_OPTIONS, null, true);
    const unseen = [...list.unseen()];
    expect(unseen.map((u) => u.name)).toEqual([gone]);
    expect(unseen[0]!.stat.mtime).toBe(BigInt(Date.parse('2010-10-10T10:10:10Z') / 1000));
  });

  it('compares what the letters ask: size decrease only (d) and the checksum (5)', async () => {
    const dir = tempDir('accurate-letters');
    const f = path.join(dir, 'f');
    writeFileSync(f, '0123456789');
    const md5 = baculaBase64FromBytes(createHash('md5').update('0123456789').digest(), true);
    expect(md5).toBe(createHash('md5').update('0123456789').digest('base64').replace(/=+$/, '')); // the catalog's form

    const original = frameFor(f, f, md5); // the catalog's view: 10 bytes, that digest
    const fresh = () => {
      const list = new AccurateList();
      list.add(original);
      return list;
    };
    // Same size, other content, same times: only the checksum sees it.
    const { mtime } = lstatSync(f);
    writeFileSync(f, 'abcdefghij');
    utimesSync(f, mtime, mtime);
    expect(await fresh().mustSave(f, stat(f), 's', 'md5', true)).toBe(false);
    expect(await fresh().mustSave(f, stat(f), 's5', 'md5', true)).toBe(true);
    writeFileSync(f, '0123456789');
    utimesSync(f, mtime, mtime);
    expect(await fresh().mustSave(f, stat(f), 's5', 'md5', true)).toBe(false);
    // A file that shrank is saved with 'd'; one that grew is not.
    writeFileSync(f, '01234567890123');
    expect(await fresh().mustSave(f, stat(f), 'd', null, true)).toBe(false);
    truncateSync(f, 4);
    expect(await fresh().mustSave(f, stat(f), 'd', null, true)).toBe(true);
  });

  it('reads the list frames as bacula-dir sends them, including a frame without a checksum', () => {
    const list = new AccurateList();
    list.add(Buffer.from('/data/a.txt\0P4A IObE IGk B A A A N BAA I BrCBnR BrCBnR BrCBnR A A C\0O3kqri3ACCFp6Fbswey4eQ\x000\0'));
    list.add(Buffer.from('/data/b.txt\0P4A IObF IGk B A A A N BAA I BrCBnR BrCBnR BrCBnR A A C\0'));
    list.add(Buffer.from('\0\0')); // nothing to compare: ignored
    expect(list.size).toBe(2);
    expect([...list.unseen()].map((u) => [u.name, u.stat.size])).toEqual([['/data/a.txt', 13n], ['/data/b.txt', 13n]]);
  });
});
