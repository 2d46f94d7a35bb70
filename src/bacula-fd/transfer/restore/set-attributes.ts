/**
 * An entry's owner, mode and times, set last (findlib/attribs.c set_attributes), and the
 * directories', set at the very end, deepest first: writing their contents changed their times.
 * Every call goes through the restore's root (restore-root.ts): under a where, the entry is
 * reached without following anything, so a swapped entry or parent is refused, not set.
 */
import { chmodSync, chownSync, fchmodSync, fchownSync, futimesSync, lchownSync, lutimesSync, utimesSync } from 'node:fs';
import { chmod, utimes } from 'node:fs/promises';
import { messageOf } from '../../../errors.js';
import { writeWinAttributes } from '../../../agents/filesystem/win-attributes.js';
import { IS_WINDOWS } from '../../../platform/os.js';
import type { BaculaStat } from '../../attributes/lstat.js';
import { FILE_ATTRIBUTE_DIRECTORY, decodeWindowsAttribs } from '../../attributes/windows.js';
import { RUNS_AS_ROOT, ignoreError, type RestoreRoot } from './restore-root.js';
import { pathText, type FsPath } from '../../../platform/byte-names.js';

/** Set what the backup saved of `target`; `link`: a symlink's own owner and times (never followed). */
export async function setAttributes(root: RestoreRoot, target: string, stat: BaculaStat, link: boolean, attribsEx = ''): Promise<void> {
  if (link) await root.at(target, (p) => setLinkAttributes(p, stat));
  else await root.self(target, (p) => setEntryAttributes(p, stat, attribsEx));
}

/**
 * Set what the backup saved of a regular file through its open descriptor, before it is closed:
 * bacula-fd's set_mod_own_time (fchown, fchmod, futimes on the file it restored). The descriptor is
 * the file the data went into, so no path is resolved again (Unix only: Windows sets its own by path).
 */
export function setDescriptorAttributes(fd: number, stat: BaculaStat): void {
  if (RUNS_AS_ROOT) ignoreError(() => fchownSync(fd, stat.uid, stat.gid));
  fchmodSync(fd, stat.mode & 0o7777);
  futimesSync(fd, Number(stat.atime), Number(stat.mtime));
}

// Synchronous calls: each takes microseconds, where a promise's thread-pool round trip would cost
// far more (restore-root.ts lstatOrNullSync).
function setLinkAttributes(p: FsPath, stat: BaculaStat): void {
  if (RUNS_AS_ROOT) ignoreError(() => lchownSync(p, stat.uid, stat.gid));
  ignoreError(() => lutimesSync(p, Number(stat.atime), Number(stat.mtime)));
}

function setEntryAttributes(p: FsPath, stat: BaculaStat, attribsEx: string): void | Promise<void> {
  if (RUNS_AS_ROOT) ignoreError(() => chownSync(p, stat.uid, stat.gid));
  if (IS_WINDOWS) return setWindowsAttributes(pathText(p), stat, attribsEx);
  chmodSync(p, stat.mode & 0o7777);
  utimesSync(p, Number(stat.atime), Number(stat.mtime));
}

/**
 * On Windows, as a Windows bacula-fd (findlib/attribs.c set_attributes): owners do not exist there
 * (chown is not called: process.getuid is undefined), and of the mode only the write bit means
 * something (chmod sets or clears read-only), so a chmod Windows refuses is not the file's failure.
 * A Windows FD's record (stream 5, attribsEx: windows.ts) gives the times to 100 ns and the
 * attributes (hidden, system, read-only, ...), set last, since read-only would forbid setting times;
 * without it (a record from Unix) the LStat's whole seconds, as set_mod_own_time.
 */
async function setWindowsAttributes(target: string, stat: BaculaStat, attribsEx: string): Promise<void> {
  const windows = decodeWindowsAttribs(attribsEx);
  if (!windows) await chmod(target, stat.mode & 0o7777).catch(() => undefined);
  else await chmod(target, 0o666).catch(() => undefined); // writable until the attributes are set
  const seconds = (ns: bigint) => Number(ns / 1000n) / 1_000_000;
  if (windows) await utimes(target, seconds(windows.atimeNs), seconds(windows.mtimeNs));
  else await utimes(target, Number(stat.atime), Number(stat.mtime));
  // Not on directories, as set_win32_attributes (read-only means nothing on a directory there).
  if (windows && (windows.attributes & FILE_ATTRIBUTE_DIRECTORY) === 0) writeWinAttributes(target, windows.attributes);
}

/** The directories a restore made or kept, whose attributes wait for the end of the restore. */
export class DeferredDirectories {
  private readonly directories: { target: string; stat: BaculaStat; attribsEx: string }[] = [];

  add(target: string, stat: BaculaStat, attribsEx: string): void {
    this.directories.push({ target, stat, attribsEx });
  }

  /** Deepest first: setting a parent's times before its children are done would be undone. Returns how many were set. */
  async apply(root: RestoreRoot, problem: (message: string) => void): Promise<number> {
    let set = 0;
    for (const dir of this.directories.sort((a, b) => b.target.length - a.target.length)) {
      try {
        await setAttributes(root, dir.target, dir.stat, false, dir.attribsEx);
        set++;
      } catch (error) {
        problem(`Unable to set the attributes of "${dir.target}": ${messageOf(error)}`);
      }
    }
    return set;
  }
}
