/** replace.ts: the Director's replace= letter, and what it decides for an entry already there. */
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeLStat } from '../../../src/bacula-fd/attributes/lstat.js';
import { keptBecause, parseReplace } from '../../../src/bacula-fd/transfer/restore/replace.js';
import { decodeAttributes } from '../../../src/bacula-fd/attributes/lstat.js';
import { tempDir } from '../../helpers/native.js';
import { attrRecord } from '../records.js';

function existingWithMtime(seconds: number) {
  const file = path.join(tempDir('replace'), 'there');
  writeFileSync(file, 'x');
  utimesSync(file, seconds, seconds);
  return statSync(file);
}

const savedAt = (mtime: bigint) => decodeLStat(decodeAttributes(attrRecord(1, 3, '/x', { mtime }).data).lstat);

describe('replace= (restore/replace.ts)', () => {
  it('reads the letters w, o and n, and anything else as a (always)', () => {
    expect(['w', 'o', 'n', 'a', '', 'x'].map(parseReplace)).toEqual(['w', 'o', 'n', 'a', 'a', 'a']);
  });

  it('keeps what is there by the saved mtime (ifnewer, ifolder), always for never, and replaces for always', () => {
    const existing = existingWithMtime(1_000_000);
    expect(keptBecause('w', savedAt(1_000_000n), existing, false, false)).toBe('Not newer');
    expect(keptBecause('w', savedAt(1_000_001n), existing, false, false)).toBeNull();
    expect(keptBecause('o', savedAt(1_000_000n), existing, false, false)).toBe('Not older');
    expect(keptBecause('o', savedAt(999_999n), existing, false, false)).toBeNull();
    expect(keptBecause('n', savedAt(1n), existing, false, false)).toBe('Already exists');
    expect(keptBecause('a', savedAt(1n), existing, false, false)).toBeNull();
  });

  it('replace=never still takes a directory this restore made (for its attributes), not one that was there', () => {
    const existing = existingWithMtime(1_000_000);
    expect(keptBecause('n', savedAt(1n), existing, true, true)).toBeNull();
    expect(keptBecause('n', savedAt(1n), existing, true, false)).toBe('Already exists');
  });
});
