/**
 * Writing beneath a restore target without ever leaving it, whatever others do to the target
 * while the restore runs (Linux). The target is opened once, by path; every later entry is
 * reached from that open directory one component at a time, never through a symbolic link or
 * "..": openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the kernel has it (5.6+), else
 * openat(O_NOFOLLOW | O_DIRECTORY) per component; files are created with openat(O_NOFOLLOW), and
 * directories, symlinks, renames and removals with mkdirat/symlinkat/renameat/unlinkat in the open
 * parent. So checking a parent and writing into it are one step, and every call resolves its path
 * again from the open target: a directory swapped for a link between two calls is refused by the
 * next call that passes through it (ELOOP), never followed.
 *
 * Used by the gen 3 host functions restore_open/restore_rename/restore_remove (native agents), by
 * the filesystem agent's restore, and by serve's restores under a where (atEntry/withEntry: Node's
 * own path calls, aimed through /proc/self/fd at a directory or entry opened here). Linux only (the flag values below are Linux's); Windows has
 * its twin in pinned-target.ts (os.ts's CONFINED_WRITES says whether this system has one).
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, type Stats } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { cPath } from './byte-names.js';
import { callError, lastErrno, libcBinding } from './libc.js';


const O_CLOEXEC = 0o2000000;
/** O_PATH (the same on x86-64 and arm64): an entry opened as a place, for fstat and /proc/self/fd only. */
const O_PATH = 0o10000000;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | (constants.O_NOFOLLOW ?? 0) | O_CLOEXEC;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_NO_SYMLINKS = 0x04;
const RESOLVE_BENEATH = 0x08;
const SYS_OPENAT2 = 437; // the same on every Linux architecture agentfd runs on (x86-64, arm64)
const E = osConstants.errno;

interface Libc {
  openat: (dirfd: number, path: string, flags: number, mode: number) => number;
  mkdirat: (dirfd: number, path: string, mode: number) => number;
  symlinkat: (target: string, dirfd: number, path: string) => number;
  renameat: (olddirfd: number, oldpath: string, newdirfd: number, newpath: string) => number;
  unlinkat: (dirfd: number, path: string, flags: number) => number;
  utimensat: (dirfd: number, path: string, times: Buffer, flags: number) => number;
  syscall: (...args: unknown[]) => number | bigint;
}

// Every name goes to C as its bytes (cPath): a name that is not UTF-8 is restored as it was saved.
const bind = libcBinding<Libc>((self) => {
  const openat = self.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)');
  const mkdirat = self.func('int mkdirat(int dirfd, const char *path, uint32_t mode)');
  const symlinkat = self.func('int symlinkat(const char *target, int dirfd, const char *path)');
  const renameat = self.func('int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)');
  const unlinkat = self.func('int unlinkat(int dirfd, const char *path, int flags)');
  const utimensat = self.func('int utimensat(int dirfd, const char *path, void *times, int flags)');
  return {
    openat: (dirfd, path, flags, mode) => openat(dirfd, cPath(path), flags, mode) as number,
    mkdirat: (dirfd, path, mode) => mkdirat(dirfd, cPath(path), mode) as number,
    symlinkat: (target, dirfd, path) => symlinkat(cPath(target), dirfd, cPath(path)) as number,
    renameat: (olddirfd, oldpath, newdirfd, newpath) => renameat(olddirfd, cPath(oldpath), newdirfd, cPath(newpath)) as number,
    unlinkat: (dirfd, path, flags) => unlinkat(dirfd, cPath(path), flags) as number,
    utimensat: (dirfd, path, times, flags) => utimensat(dirfd, cPath(path), times, flags) as number,
    syscall: self.func('long syscall(long number, ...)') as Libc['syscall'],
  };
});

/** Why a confined call failed: `refused` when the path would leave the target. */
export class ConfinedError extends Error {
  constructor(
    readonly kind: 'refused' | 'invalid' | 'io',
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Split a relative '/'-separated path into components, refusing what could leave the target. */
export function splitRelative(relative: string): string[] {
  const parts = relative.split('/');
  for (const part of parts) {
    // A backslash is an ordinary character of a name (the header's rule), and this primitive only
    // runs where the kernel agrees (Linux).
    if (part === '' || part === '.' || part === '..' || part.includes('\0')) {
      throw new ConfinedError('invalid', `"${relative}" is not a relative path below the target (no leading "/", no empty, "." or ".." components, no NUL)`);
    }
  }
  return parts;
}

let openat2Works = true;

/**
 * Resolve with openat2 (true, the default, while the kernel has it) or only by the per-component
 * openat walk that older kernels get (false): the tests run both ways on any kernel.
 */
export function useOpenat2(enabled: boolean): void {
  openat2Works = enabled;
}

const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;

/**
 * A restore target, open. Every call resolves its path again from the open target, confined, and
 * closes what it opened: nothing below the target is kept open between calls, so a directory
 * swapped for a link is noticed (refused) by the very next call that passes through it, rather than
 * written into wherever it was moved.
 */
export class ConfinedTarget {
  private closed = false;

  private constructor(
    readonly target: string,
    private readonly rootFd: number,
  ) {}

  /** Create `target` if needed and open it: the one path ever resolved as given. */
  static open(target: string, mode = 0o700): ConfinedTarget {
    mkdirSync(target, { recursive: true, mode });
    return new ConfinedTarget(target, openSync(target, constants.O_RDONLY | constants.O_DIRECTORY | O_CLOEXEC));
  }

  /**
   * Run `body` with the directory `parts` below the target open (the target itself for []),
   * created (with `mode`, less the umask) where missing when `create`. The directory stays open
   * until `body` ends, also when it returns a promise.
   */
  withDir<T>(parts: readonly string[], create: boolean, body: (fd: number) => T, mode = 0o755): T {
    if (this.closed) throw new ConfinedError('invalid', `the restore target ${this.target} is closed`);
    if (parts.length === 0) return body(this.rootFd);
    let fd = openat2Works ? this.openBeneath(parts.join('/')) : -1;
    if (fd < 0) fd = this.walk(parts, create, mode);
    return holding(fd, () => body(fd));
  }

  /**
   * Run `body` with a path naming the entry `parts` through its parent, opened here (confined):
   * `/proc/self/fd/<parent>/<name>`. The kernel goes straight to that open directory (whatever
   * was renamed or swapped above it meanwhile) and looks up the last name in it; so the calls that
   * do not follow a last symlink (lstat, mkdir, mknod, symlink, link, unlink, lchown, lutimes,
   * lsetxattr, open with O_NOFOLLOW) reach only the entry itself, never anything outside. The
   * parent must exist; the path is good until `body` ends (also when it returns a promise).
   */
  atEntry<T>(parts: readonly string[], body: (path: string) => T): T {
    if (parts.length === 0) return this.withDir([], false, (fd) => body(`${fdPath(fd)}/.`));
    return this.withDir(parts.slice(0, -1), false, (fd) => body(`${fdPath(fd)}/${parts[parts.length - 1]!}`));
  }

  /**
   * Run `body` with a path of the entry `parts` itself (`/proc/self/fd/<entry>`, opened O_PATH |
   * O_NOFOLLOW) and its stat, for the calls that follow a last symlink (chmod, chown, utimes, open):
   * they reach exactly that entry. Refused when the entry is a symbolic link.
   */
  withEntry<T>(parts: readonly string[], body: (path: string, stats: Stats) => T): T {
    const name = parts.length === 0 ? '.' : parts[parts.length - 1]!;
    return this.withDir(parts.slice(0, -1), false, (parent) => {
      const fd = bind('openat').openat(parent, name, O_PATH | (constants.O_NOFOLLOW ?? 0) | O_CLOEXEC, 0);
      if (fd < 0) throw this.failure('open', parts);
      return holding(fd, () => {
        const stats = fstatSync(fd);
        if (stats.isSymbolicLink()) {
          throw new ConfinedError('refused', `refused to follow ${this.target}/${parts.join('/')}: it is a symbolic link, and a restore never writes through one (it could lead outside the target)`, 'ELOOP');
        }
        return body(fdPath(fd), stats);
      });
    });
  }

  /** Open (create) the file `parts` for writing: O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | extra. */
  openFile(parts: readonly string[], extraFlags: number, mode: number, createParents = true, dirMode = 0o755): number {
    const flags = constants.O_WRONLY | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0) | O_CLOEXEC | extraFlags;
    return this.withDir(parts.slice(0, -1), createParents, (parent) => {
      const fd = bind('openat').openat(parent, parts[parts.length - 1]!, flags, mode);
      if (fd < 0) throw this.failure('open', parts);
      return fd;
    }, dirMode);
  }

  /**
   * Create the new file `parts` and open it for writing (O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW:
   * EEXIST when anything, a link included, is there) in one call: openat2 resolves the whole path
   * from the target as withDir does (no link, nothing outside) and creates the last component in
   * the directory it reached. A restore of small files makes one of these per file, where a
   * confined parent, closed again, and an open through /proc/self/fd cost three calls and a
   * lookup of the magic link. Without openat2 (old kernels), the parent by the walk, then openat
   * in it. The parent must exist.
   */
  createFile(parts: readonly string[], mode: number): number {
    if (this.closed) throw new ConfinedError('invalid', `the restore target ${this.target} is closed`);
    if (parts.length === 0) throw new ConfinedError('invalid', `the restore target ${this.target} itself is not a file`);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0) | O_CLOEXEC;
    if (openat2Works) {
      const fd = this.resolveBeneath(parts.join('/'), flags, mode);
      if (fd >= 0) return fd;
      if (openat2Works) throw this.failure('open', parts);
    }
    return this.openFile(parts, constants.O_EXCL, mode, false);
  }

  /** Open the existing directory `parts` (not following a link) for fchmod/futimes; the caller closes it. */
  openDirForUpdate(parts: readonly string[]): number {
    if (parts.length === 0) {
      // The target itself, from its open descriptor: its path is not resolved again.
      const fd = bind('openat').openat(this.rootFd, '.', DIR_FLAGS, 0);
      if (fd < 0) throw this.failure('open', ['.']);
      return fd;
    }
    return this.withDir(parts.slice(0, -1), false, (parent) => {
      const fd = bind('openat').openat(parent, parts[parts.length - 1]!, DIR_FLAGS, 0);
      if (fd < 0) throw this.failure('open', parts);
      return fd;
    });
  }

  /** Throws unless `parts` is a directory below the target (ENOENT when missing, refused when a link or file). */
  checkDir(parts: readonly string[]): void {
    this.withDir(parts, false, () => undefined);
  }

  mkdir(parts: readonly string[], mode: number): void {
    this.withDir(parts.slice(0, -1), true, (parent) => {
      if (bind('mkdirat').mkdirat(parent, parts[parts.length - 1]!, mode) !== 0) throw this.failure('mkdir', parts);
    }, mode);
  }

  symlink(parts: readonly string[], linkTarget: string): void {
    this.withDir(parts.slice(0, -1), true, (parent) => {
      if (bind('symlinkat').symlinkat(linkTarget, parent, parts[parts.length - 1]!) !== 0) throw this.failure('symlink', parts);
    });
  }

  /** Set the times of the link (or file) `parts` itself, not following it. */
  setLinkTimes(parts: readonly string[], mtimeNs: bigint): void {
    const second = 1_000_000_000n;
    const nanos = ((mtimeNs % second) + second) % second;
    const now = BigInt(Date.now()) * 1_000_000n;
    const times = Buffer.alloc(32);
    [now / second, now % second, (mtimeNs - nanos) / second, nanos].forEach((v, i) => times.writeBigInt64LE(v, i * 8));
    this.withDir(parts.slice(0, -1), false, (parent) => {
      if (bind('utimensat').utimensat(parent, parts[parts.length - 1]!, times, AT_SYMLINK_NOFOLLOW) !== 0) throw this.failure('utimensat', parts);
    });
  }

  /** rename(from, to) inside the target; replaces a file or link at `to`, never follows one. */
  rename(from: readonly string[], to: readonly string[]): void {
    this.withDir(from.slice(0, -1), false, (fromDir) =>
      this.withDir(to.slice(0, -1), true, (toDir) => {
        if (bind('renameat').renameat(fromDir, from[from.length - 1]!, toDir, to[to.length - 1]!) !== 0) throw this.failure('rename', to);
      }),
    );
  }

  /** Remove the file or link `parts` (a directory only with `directory`); a missing one is fine. */
  remove(parts: readonly string[], directory = false): void {
    try {
      this.withDir(parts.slice(0, -1), false, (parent) => {
        if (bind('unlinkat').unlinkat(parent, parts[parts.length - 1]!, directory ? AT_REMOVEDIR : 0) !== 0) throw this.failure('remove', parts);
      });
    } catch (error) {
      if (!(error instanceof ConfinedError && error.code === 'ENOENT')) throw error;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.rootFd);
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** openat2 of a whole relative directory path; -1 when it must be walked (missing, or no openat2). */
  private openBeneath(relative: string): number {
    const fd = this.resolveBeneath(relative, DIR_FLAGS, 0);
    if (fd >= 0 || !openat2Works) return fd;
    if (lastErrno() === E.ENOENT) return -1; // the walk says which component, and creates them
    throw this.failure('open', relative.split('/'));
  }

  /**
   * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) of `relative` from the target with `flags` and
   * `mode`: the descriptor, or -1 (errno says why; openat2Works is false after when the kernel has
   * no openat2 or a seccomp filter forbids it: walk then).
   */
  private resolveBeneath(relative: string, flags: number, mode: number): number {
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(flags), 0);
    how.writeBigUInt64LE(BigInt(mode), 8);
    how.writeBigUInt64LE(BigInt(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), 16);
    const path = cPath(relative);
    const fd = Number(bind('openat2').syscall(SYS_OPENAT2, 'int', this.rootFd, typeof path === 'string' ? 'str' : 'void *', path, 'void *', how, 'size_t', 24));
    if (fd >= 0) return fd;
    const errno = lastErrno();
    if (errno === E.ENOSYS || errno === E.EPERM) openat2Works = false;
    return -1;
  }

  /** openat(O_NOFOLLOW | O_DIRECTORY) one component at a time, creating missing ones when `create`. */
  private walk(parts: readonly string[], create: boolean, mode: number): number {
    let at = this.rootFd;
    try {
      for (let i = 0; i < parts.length; i++) {
        const next = this.openChildDir(at, parts, i, create, mode);
        if (at !== this.rootFd) closeSync(at);
        at = next;
      }
    } catch (error) {
      if (at !== this.rootFd) closeSync(at);
      throw error;
    }
    return at;
  }

  private openChildDir(at: number, parts: readonly string[], i: number, create: boolean, mode: number): number {
    const api = bind('openat');
    let fd = api.openat(at, parts[i]!, DIR_FLAGS, 0);
    if (fd < 0 && lastErrno() === E.ENOENT && create) {
      if (bind('mkdirat').mkdirat(at, parts[i]!, mode) !== 0 && lastErrno() !== E.EEXIST) throw this.failure('mkdir', parts.slice(0, i + 1));
      fd = api.openat(at, parts[i]!, DIR_FLAGS, 0);
    }
    if (fd < 0) throw this.failure('open', parts.slice(0, i + 1));
    return fd;
  }

  /** The failed call's errno as a ConfinedError naming the entry and, for a refusal, why. */
  private failure(call: string, parts: readonly string[]): ConfinedError {
    const relative = parts.join('/');
    const error = callError(call, `${this.target}/${relative}`);
    const code = error.code ?? 'EIO';
    if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'EXDEV') {
      // openat2 answers ENOTDIR or ELOOP for a link alike: the message names both.
      return new ConfinedError(
        'refused',
        `refused to ${call} ${this.target}/${relative}: a component of it is a symbolic link or not a directory, and a restore never writes through or over one (it could lead outside the target); restore into an empty target, or remove that entry first`,
        code,
      );
    }
    return new ConfinedError('io', `cannot ${call} ${this.target}/${relative}: ${code}`, code);
  }
}

/** The path through which the kernel reaches the open descriptor `fd` itself. */
function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** Run `body`, closing `fd` when it ends: at once, or when the promise it returns settles. */
function holding<T>(fd: number, body: () => T): T {
  let result: T;
  try {
    result = body();
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  if (result instanceof Promise) return result.finally(() => closeSync(fd)) as T;
  closeSync(fd);
  return result;
}
