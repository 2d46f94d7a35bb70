/**
 * Where a serve restore may write: one guard for every entry it creates, reads or sets.
 *
 * Under a `where` on Linux every call goes through the confined primitive the agents use
 * (platform/confined-target.ts): the where is opened once, and each entry is reached from it
 * component by component, never through a symbolic link; the call itself then names the entry
 * through its parent, held open (`at`), or through the entry, held open (`self`). So a directory
 * checked here and swapped for a link by someone else before the write is refused at the write,
 * never followed: nothing is written outside where, whatever happens to the tree meanwhile.
 *
 * In place (where '' or '/') the tree is the system's own, and bacula-fd follows its symlinked
 * directories (/lib -> usr/lib, /var/run -> /run): restoring /lib/x must write into usr/lib/x,
 * not refuse. So in place the calls take the path as it is, as bacula-fd's do.
 *
 * On Windows under a where the same holds through the Windows twin (platform/pinned-target.ts):
 * every directory from the where down to the entry's parent is opened as itself, refused if it
 * is a junction or link, and held without FILE_SHARE_DELETE while the call runs, so nobody can
 * swap it meanwhile; `self` pins the entry too. A name Windows would read as something else (a
 * ':' that would make an alternate data stream, a trailing dot, a device name) is refused there
 * rather than written somewhere else.
 */
import { chmodSync, chownSync, constants, lstatSync, mkdirSync, openSync, statSync, type Stats } from 'node:fs';
import { lstat, mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { AgentfdError } from '../../../errors.js';
import { ConfinedError, ConfinedTarget } from '../../../platform/confined-target.js';
import { IS_LINUX, IS_WINDOWS } from '../../../platform/os.js';
import { PinnedTarget } from '../../../platform/pinned-target.js';
import { decodeName, fsPath, type FsPath } from '../../../platform/byte-names.js';
import { restoreTarget } from '../../attributes/windows.js';

/**
 * Whether this process may give files away (chown), asked once: bacula-fd sets owners as root
 * only, and process.getuid() is a native call that per entry showed in a restore's profile.
 * Windows has neither (undefined: false).
 */
export const RUNS_AS_ROOT = process.getuid?.() === 0;

export function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? (error instanceof Error ? error.message : String(error));
}

export async function lstatOrNull(p: FsPath): Promise<Stats | null> {
  try {
    return await lstat(p);
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return null;
    throw error;
  }
}

/**
 * lstatOrNull as one synchronous call. A restore's per-entry metadata calls (lstat, mkdir, chmod,
 * chown, utimes...) take microseconds on a local disk, while each promise-based call waits a
 * round trip through libuv's thread pool (well over 100 us on a busy machine): with several per
 * file, that wait was most of a small-file restore. bacula-fd makes the same calls blocking.
 */
export function lstatOrNullSync(p: FsPath): Stats | null {
  // Not thrown: most entries of a restore are new, and an error built per entry costs more than the call.
  return lstatSync(p, { throwIfNoEntry: false }) ?? null;
}

/**
 * The path `fname` (absolute, from the backup) under `where`; refuses what would leave it. On
 * Windows as a Windows bacula-fd builds it: "C:/x" under where is <where>\C\x (windows.ts).
 */
export function restorePath(where: string, fname: string, windows = IS_WINDOWS): string {
  return restoreTarget(where, fname, windows);
}

/** A regular file is created as bacula-fd creates it: new (the old one was removed), never through a symlink. */
export const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/** How a confined root reaches an entry: through its parent (`at`) or as itself (`self`). */
interface Fence {
  at<T>(parts: string[], body: (p: string) => T): T;
  self<T>(parts: string[], body: (p: string) => T): T;
  /** A new regular file's descriptor (CREATE_FLAGS), made in one confined call where the system can. */
  create?(parts: string[], mode: number): number;
  close(): void;
}

/** Linux: every call aimed through /proc/self/fd at what openat2 reached from the where. */
function linuxFence(root: string): Fence {
  const confined = ConfinedTarget.open(root);
  return {
    at: (parts, body) => confined.atEntry(parts, body),
    self: (parts, body) => confined.withEntry(parts, (p) => body(p)),
    create: (parts, mode) => confined.createFile(parts, mode),
    close: () => confined.close(),
  };
}

/** Windows: every call by the entry's path, with the directories on the way pinned meanwhile. */
function windowsFence(root: string): Fence {
  const pinned = PinnedTarget.open(root);
  return {
    at: (parts, body) =>
      parts.length === 0 ? pinned.withDir([], false, body) : pinned.withDir(parts.slice(0, -1), false, () => body(pinned.osPath(parts))),
    self: (parts, body) => pinned.withEntry(parts, body),
    close: () => pinned.close(),
  };
}

/** The entry whose missing parents are being made: its mode and owner, and whether it is a directory. */
export interface ParentsFor {
  mode: number;
  uid: number;
  gid: number;
  directory: boolean;
}

export class RestoreRoot {
  private readonly verified = new Set<string>();
  /** Directories this restore made: replace=never still sets their attributes (bacula-fd's path_list). */
  readonly made = new Set<string>();

  private constructor(
    readonly root: string,
    /** Under a where (not in place): no symlink on the way is followed. */
    readonly confined: boolean,
    private readonly fenced: Fence | null,
    /** The where and those of its parents that open made, outermost first (parents() takes them). */
    private readonly madeAtOpen: string[] = [],
  ) {
    this.verified.add(root);
  }

  static async open(where: string): Promise<RestoreRoot> {
    if (where === '' || where === '/') return new RestoreRoot('/', false, null);
    try {
      const first = await mkdir(fsPath(where), { recursive: true, mode: 0o777 });
      const root = decodeName(await realpath(fsPath(where), { encoding: 'buffer' }));
      // mkdir names the outermost directory it made (by components: its name may be a lossy
      // string of a name's bytes); the root's path may differ above it (symlinks).
      const count = first === undefined ? 0 : path.resolve(where).split(path.sep).length - path.dirname(first).split(path.sep).length;
      const madeAtOpen: string[] = [];
      for (let dir = root; madeAtOpen.length < count; dir = path.dirname(dir)) madeAtOpen.unshift(dir);
      return new RestoreRoot(root, true, IS_LINUX ? linuxFence(root) : IS_WINDOWS ? windowsFence(root) : null, madeAtOpen);
    } catch (error) {
      throw new AgentfdError('E_RESTORE_PATH', `the restore's where "${where}" cannot be used as a directory (${codeOf(error)}); give a directory agentfd may create or write`);
    }
  }

  /** Where the backup's `fname` goes; refuses "." and ".." components. */
  target(fname: string): string {
    return restorePath(this.root, fname);
  }

  /**
   * Run `body` with a path for `target` that the calls not following a last symlink (lstat, mkdir,
   * mknod, symlink, link, unlink, lchown, lutimes, lsetxattr, open with O_NOFOLLOW) may use: under
   * a where it reaches the entry only through its parent, reached from the where (pinned on Windows).
   */
  at<T>(target: string, body: (p: FsPath) => T | Promise<T>): Promise<T> {
    return this.fence(target, body, (fenced, parts, aimed) => fenced.at(parts, aimed));
  }

  /**
   * Run `body` with a path for `target` itself, for the calls that follow a last symlink (chmod,
   * chown, utimes, open): under a where the entry, opened (pinned) without following it, and
   * refused when it is a symlink or junction.
   */
  self<T>(target: string, body: (p: FsPath) => T | Promise<T>): Promise<T> {
    return this.fence(target, body, (fenced, parts, aimed) => fenced.self(parts, aimed));
  }

  /**
   * Create the regular file `target`, new (EEXIST when anything is there: replace= decides then),
   * and open it for writing; its descriptor. Under a where on Linux in one confined call
   * (ConfinedTarget.createFile), never through a link; elsewhere as `at` would open it. Not for
   * Windows, which writes through a FileHandle (create-entry.ts).
   */
  createFile(target: string, mode: number): Promise<number> {
    return this.fence(
      target,
      (p) => openSync(p, CREATE_FLAGS, mode),
      (fenced, parts, aimed) => (fenced.create ? fenced.create(parts, mode) : fenced.at(parts, aimed)),
    );
  }

  /**
   * The directories above `target`, made when missing as bacula-fd's makepath (findlib/mkpath.c)
   * makes them for create_file: each 0777 less the umask; then, for a file, the nearest one, if
   * made now, gets the file's owner and its mode plus u+wx; for a directory, every one made now
   * gets the directory's owner and its mode plus u+wx. A directory whose own record comes later
   * in the restore gets its own attributes at the end (set-attributes.ts). The where's own
   * directories, made at open, count as made for the first entry, as makepath made them there.
   */
  async parents(target: string, entry: ParentsFor): Promise<void> {
    // The usual case, an entry beside the last one: its parent was checked (and so were the
    // parent's own parents, checked before it), and nothing was made at open.
    if (this.madeAtOpen.length === 0 && this.verified.has(path.dirname(target))) return;
    const made = this.madeAtOpen.splice(0).filter((dir) => dir !== target);
    // The root's own record ("/") has no parents of ours. In place the walk starts at the target's
    // own root: '/' on Linux, its drive (C:\) on Windows.
    let current = this.confined ? this.root : path.parse(target).root;
    const parts = target === this.root ? [] : path.relative(current, path.dirname(target)).split(path.sep);
    for (const part of parts.filter((p) => p.length > 0)) {
      current = path.join(current, part);
      if (!this.verified.has(current) && (await this.directory(current, 0o777))) made.push(current);
    }
    const owned = entry.directory ? made : made.filter((dir) => dir === path.dirname(target));
    for (const dir of owned) await this.own(dir, entry);
  }

  /** A parent made for `entry` gets its owner and mode | u+wx (set_own_mod: chmod is not subject to the umask). */
  private async own(dir: string, entry: ParentsFor): Promise<void> {
    if (IS_WINDOWS) return; // no owners, and no mode but read-only, there
    await this.self(dir, (p) => {
      if (RUNS_AS_ROOT) ignoreError(() => chownSync(p, entry.uid, entry.gid));
      chmodSync(p, (entry.mode & 0o7777) | 0o300);
    });
  }

  /**
   * `dir` as a directory: made when missing (true), refused when it is something else (or, under
   * a where, a symlink).
   */
  async directory(dir: string, mode: number): Promise<boolean> {
    let madeNow = false;
    await this.at(dir, (p) => {
      let st = lstatOrNullSync(p);
      if (st === null) {
        try {
          mkdirSync(p, mode);
          this.made.add(dir);
          madeNow = true;
        } catch (error) {
          if (codeOf(error) !== 'EEXIST') throw error;
        }
        st = lstatOrNullSync(p);
      }
      if (st?.isSymbolicLink() && !this.confined) st = statSync(p);
      if (st === null || !st.isDirectory()) {
        const what = st === null ? 'vanished' : st.isSymbolicLink() ? 'is a symlink' : 'is not a directory';
        throw new AgentfdError('E_RESTORE_PATH', `${dir} ${what}, and a restore under where never writes through or over it; restore into an empty directory, or remove that entry first`);
      }
    });
    this.verified.add(dir);
    return madeNow;
  }

  /**
   * The restored first name a hard link (FT_LNKSAVED) is linked to: `link` under the root, and
   * under a where it must resolve (symlinks followed) to a file inside it. (The link itself is
   * then made through `at` on both names: this check words the refusal, the fence enforces it.)
   */
  async linkSource(link: string): Promise<string> {
    const source = this.target(link);
    if (!this.confined) return source;
    let real: string;
    try {
      real = decodeName(await realpath(fsPath(source), { encoding: 'buffer' }));
    } catch (error) {
      throw new AgentfdError('E_RESTORE_LINK', `its first name "${link}" was not restored at ${source} (${codeOf(error)}); restore the file's other names with it`);
    }
    const inside = this.root.endsWith(path.sep) ? this.root : `${this.root}${path.sep}`; // path.sep: '\\' on Windows
    if (real !== this.root && !real.startsWith(inside)) {
      throw new AgentfdError('E_RESTORE_PATH', `its first name "${link}" resolves to ${real}, outside where ${this.root}; nothing is linked to a file outside where`);
    }
    return source;
  }

  close(): void {
    this.fenced?.close();
  }

  /**
   * `body` on `target` itself, or, when this root is confined, `confine`d: a refusal becomes
   * E_RESTORE_PATH, and an error of a call made through /proc/self/fd names `target`, as the same
   * call in place would.
   */
  private async fence<T>(
    target: string,
    body: (p: FsPath) => T | Promise<T>,
    confine: (fenced: Fence, parts: string[], aimed: (p: string) => T | Promise<T>) => T | Promise<T>,
  ): Promise<T> {
    // Node's calls get a name that is not UTF-8 as its bytes (platform/byte-names.ts).
    if (!this.fenced) return await body(fsPath(target));
    const parts = path.relative(this.root, target).split(path.sep).filter((p) => p.length > 0);
    let via: string | null = null;
    try {
      return await confine(this.fenced, parts, (p) => {
        via = p;
        return body(fsPath(p));
      });
    } catch (error) {
      if (error instanceof ConfinedError) {
        if (error.kind === 'refused') throw new AgentfdError('E_RESTORE_PATH', `${target}: ${error.message}`);
        throw Object.assign(new Error(error.message), { code: error.code });
      }
      throw via === null ? error : named(error, via, target);
    }
  }
}

/** Run `call`, ignoring its failure (a chown that is not allowed, as bacula-fd ignores it). */
export function ignoreError(call: () => void): void {
  try {
    call();
  } catch {
    // not the entry's failure
  }
}

/** An error whose message names `via` (a /proc/self/fd path): the same error naming `target`. */
function named(error: unknown, via: string, target: string): unknown {
  if (!(error instanceof Error)) return error;
  error.message = error.message.split(via).join(target);
  const errno = error as NodeJS.ErrnoException;
  if (errno.path === via) errno.path = target;
  if ((errno as { dest?: string }).dest === via) (errno as { dest?: string }).dest = target;
  return error;
}
