/**
 * output-names.ts through a restore of real records (restore.ts): with a RegexWhere, each entry is
 * made at its rewritten name in place, a hard link to its rewritten first name, a symlink's target
 * rewritten only under prelinks; a result that is relative or has ".." is refused with a job error
 * and nothing is written for it.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { parseRegexWhere, receiveRestore } from '../../../src/bacula-fd/transfer/restore.js';
import type { SdRecord } from '../../../src/bacula-fd/transfer/storage-daemon.js';
import { tempDir } from '../../helpers/native.js';
import { attrRecord } from '../records.js';

async function restore(records: SdRecord[], regexWhere: string, prefixLinks = false) {
  const logs: string[] = [];
  async function* feed() {
    yield* records;
  }
  const totals = await receiveRestore({ records: feed(), where: '', regexWhere: parseRegexWhere(regexWhere), prefixLinks, log: (_l, m) => logs.push(m) });
  return { totals, logs };
}

const file = (index: number, fname: string, content: string): SdRecord[] => [
  attrRecord(index, FT.REG, fname, { mode: 0o100644, size: BigInt(content.length) }),
  { fileIndex: index, stream: STREAM.FILE_DATA, data: Buffer.from(content) },
];

describe.skipIf(process.platform !== 'linux')('names rewritten by a RegexWhere (restore/output-names.ts)', () => {
  it('makes each entry at its rewritten name, a hard link to the rewritten first name, a symlink target only under prelinks', async () => {
    const base = tempDir('regexwhere');
    const rx = `!^/data/!${base}/out/!`;
    const records = [
      ...file(1, '/data/d/f.txt', 'f'),
      attrRecord(2, FT.LNKSAVED, '/data/d/hard.txt', { mode: 0o100644 }, '/data/d/f.txt'),
      attrRecord(3, FT.LNK, '/data/d/abs', { mode: 0o120777 }, '/data/d/f.txt'),
      attrRecord(4, FT.DIREND, '/data/d/', { mode: 0o040750 }),
    ];
    const { totals } = await restore(records, rx);
    expect(totals.errors).toEqual([]);
    const out = path.join(base, 'out', 'd');
    expect(readFileSync(path.join(out, 'f.txt'), 'utf8')).toBe('f');
    expect(lstatSync(path.join(out, 'hard.txt')).ino).toBe(lstatSync(path.join(out, 'f.txt')).ino);
    expect(readlinkSync(path.join(out, 'abs'))).toBe('/data/d/f.txt');
    expect((lstatSync(out).mode & 0o7777).toString(8)).toBe('750');

    const prelinks = tempDir('regexwhere-prelinks');
    await restore([attrRecord(1, FT.LNK, '/data/l', { mode: 0o120777 }, '/data/d/f.txt')], `!^/data/!${prelinks}/!`, true);
    expect(readlinkSync(path.join(prelinks, 'l'))).toBe(`${prelinks}/d/f.txt`);
  });

  it('refuses a relative or dotted result with a job error saying why, writes nothing for it, and restores the rest', async () => {
    const base = tempDir('regexwhere-refused');
    const records = [...file(1, '/data/rel.txt', 'r'), ...file(2, '/data/up.txt', 'u'), ...file(3, '/data/ok.txt', 'o')];
    const { totals } = await restore(records, `!^/data/rel!rel!,!^/data/up!${base}/../up!,!^/data/!${base}/!`);
    expect(totals.errors).toEqual([
      '"/data/rel.txt" is not restored: the RegexWhere made its name "rel.txt", a relative path (bacula-fd would write it under its own working directory); change the expressions so that every name they make is an absolute path',
      `"/data/up.txt" is not restored: the RegexWhere made its name "${base}/../up.txt", which has a "." or ".." component; change the expressions so that every name they make is an absolute path`,
    ]);
    expect(totals.files).toBe(1);
    expect(readdirSync(base)).toEqual(['ok.txt']);
    expect(existsSync(path.join(process.cwd(), 'rel.txt'))).toBe(false);
  });
});
