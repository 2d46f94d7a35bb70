/**
 * The Director's replace= letter (REPLACE_* in bacula's jcr.h) and what it decides for an entry
 * that is already there, as bacula-fd's create_file decides it.
 */
import type { Stats } from 'node:fs';
import type { BaculaStat } from '../../attributes/lstat.js';

/** a: always replace, w (ifnewer): only when the backup's mtime is newer, o (ifolder): only when older, n: never. */
export type ReplaceMode = 'a' | 'w' | 'o' | 'n';

export function parseReplace(letter: string): ReplaceMode {
  return letter === 'w' || letter === 'o' || letter === 'n' ? letter : 'a';
}

/**
 * Why the existing entry is kept under `replace`, as create_file words it, or null to replace it.
 * `madeHere`: a directory this restore made for the files in it, which replace=never still sets
 * the attributes of (bacula-fd's path_list).
 */
export function keptBecause(replace: ReplaceMode, stat: BaculaStat, existing: Stats, isDir: boolean, madeHere: boolean): string | null {
  const existingMtime = BigInt(Math.floor(existing.mtimeMs / 1000));
  switch (replace) {
    case 'w':
      return stat.mtime <= existingMtime ? 'Not newer' : null;
    case 'o':
      return stat.mtime >= existingMtime ? 'Not older' : null;
    case 'n':
      return isDir && madeHere ? null : 'Already exists';
    default:
      return null;
  }
}
