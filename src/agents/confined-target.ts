/**
 * Writing beneath a restore target without ever leaving it, whatever others do to the target
 * while the restore runs (Linux). The target is opened once, by path; every later entry is
 * reached from that open directory one component at a time, never through a symbolic link or
 * "..": openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the kernel has it (5.6+), else
 * openat(O_NOFOLLOW | O_DIRECTORY) per component; files are created with openat(O_NOFOLLOW), and
 * directories, symlinks, renames and removals with mkdirat/symlinkat/renameat/unlinkat in the open
 * parent. So checking a parent and writing into it are one step: a directory swapped for a link
 * between two calls is refused by the next one (ELOOP), and an open one keeps being the directory
 * that was checked. Someone who moves a whole directory elsewhere can only move it where they
 * could write anyway (rename needs write access to both parents).
 *
 * Used by the gen 3 host functions restore_open/restore_rename/restore_remove (native agents) and
 * by the filesystem agent's restore. Linux only (the flag values below are Linux's): elsewhere
 * CONFINED_WRITES is false and callers keep their older way.
 */
import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';
import { callError, libcBinding } from '../bacula/libc.js';

export const CONFINED_WRITES = process.platform === 'linux';

const O_CLOEXEC = 0o2000000;
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
  syscall: (...args: unknown[]) => number | bigint;
}

const bind = libcBinding<Libc>((self) => ({
  openat: self.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)') as Libc['openat'],
  mkdirat: self.func('int mkdirat(int dirfd, const char *path, uint32_t mode)') as Libc['mkdirat'],
  symlinkat: self.func('int symlinkat(const char *target, int dirfd, const char *path)') as Libc['symlinkat'],
  renameat: self.func('int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)') as Libc['renameat'],
  unlinkat: self.func('int unlinkat(int dirfd, const char *path, int flags)') as Libc['unlinkat'],
  syscall: self.func('long syscall(long number, ...)') as Libc['syscall'],
}));

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
    if (part === '' || part === '.' || part === '..' || part.includes('\0') || part.includes('\\')) {
      throw new ConfinedError('invalid', `"${relative}" is not a relative path below the target (no leading "/", empty, "." or ".." components, NUL or "\\")`);
    }
  }
  return parts;
}

/** Directories kept open below the target; older ones are closed (they can always be reached again). */
const MAX_OPEN_DIRS = 64;

let openat2Works = true;

export class ConfinedTarget {
  private readonly dirs = new Map<string, number>();
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
   * An open directory `parts` below the target (the target itself for []), created (with `mode`,
   * less the umask) where missing when `create`. The fd stays owned by this object.
   */
  dir(parts: readonly string[], create: boolean, mode = 0o755): number {
    if (this.closed) throw new ConfinedError('invalid', `the restore target ${this.target} is closed`);
    if (parts.length === 0) return this.rootFd;
    const key = parts.join('/');
    const cached = this.dirs.get(key);
    if (cached !== undefined) {
      this.dirs.delete(key); // most recently used last
      this.dirs.set(key, cached);
      return cached;
    }
    let fd = openat2Works ? this.openBeneath(key) : -1;
    if (fd < 0) {
      let at = this.rootFd;
      let opened = -1;
      try {
        for (let i = 0; i < parts.length; i++) {
          const next = this.openChildDir(at, parts, i, create, mode);
          if (opened >= 0) closeSync(opened);
          at = opened = next;
        }
      } catch (error) {
        if (opened >= 0) closeSync(opened);
        throw error;
      }
      fd = opened;
    }
    this.dirs.set(key, fd);
    if (this.dirs.size > MAX_OPEN_DIRS) {
      const [oldest, oldFd] = this.dirs.entries().next().value as [string, number];
      this.dirs.delete(oldest);
      closeSync(oldFd);
    }
    return fd;
  }

  /** Open (create) the file `parts` for writing: O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | extra. */
  openFile(parts: readonly string[], extraFlags: number, mode: number, createParents = true): number {
    const parent = this.dir(parts.slice(0, -1), createParents);
    const name = parts[parts.length - 1]!;
    const flags = constants.O_WRONLY | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0) | O_CLOEXEC | extraFlags;
    const fd = bind('openat').openat(parent, name, flags, mode);
    if (fd < 0) throw this.failure('open', parts);
    return fd;
  }

  /** Open the existing directory `parts` (not following a link) for fchmod/futimes; the caller closes it. */
  openDirForUpdate(parts: readonly string[]): number {
    if (parts.length === 0) return openSync(this.target, constants.O_RDONLY | constants.O_DIRECTORY | O_CLOEXEC);
    const parent = this.dir(parts.slice(0, -1), false);
    const fd = bind('openat').openat(parent, parts[parts.length - 1]!, DIR_FLAGS, 0);
    if (fd < 0) throw this.failure('open', parts);
    return fd;
  }

  mkdir(parts: readonly string[], mode: number): void {
    const parent = this.dir(parts.slice(0, -1), true);
    if (bind('mkdirat').mkdirat(parent, parts[parts.length - 1]!, mode) !== 0) throw this.failure('mkdir', parts);
  }

  symlink(parts: readonly string[], linkTarget: string): void {
    const parent = this.dir(parts.slice(0, -1), true);
    if (bind('symlinkat').symlinkat(linkTarget, parent, parts[parts.length - 1]!) !== 0) throw this.failure('symlink', parts);
  }

  /** rename(from, to) inside the target; replaces a file or link at `to`, never follows one. */
  rename(from: readonly string[], to: readonly string[]): void {
    const fromDir = this.dir(from.slice(0, -1), false);
    const toDir = this.dir(to.slice(0, -1), true);
    if (bind('renameat').renameat(fromDir, from[from.length - 1]!, toDir, to[to.length - 1]!) !== 0) throw this.failure('rename', to);
  }

  /** Remove the file or link `parts` (a directory only with `directory`); a missing one is fine. */
  remove(parts: readonly string[], directory = false): void {
    let parent: number;
    try {
      parent = this.dir(parts.slice(0, -1), false);
    } catch (error) {
      if (error instanceof ConfinedError && error.code === 'ENOENT') return;
      throw error;
    }
    if (bind('unlinkat').unlinkat(parent, parts[parts.length - 1]!, directory ? 0x200 /* AT_REMOVEDIR */ : 0) !== 0) {
      const error = this.failure('remove', parts);
      if (error.code !== 'ENOENT') throw error;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.dirs.values()) closeSync(fd);
    this.dirs.clear();
    closeSync(this.rootFd);
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** openat2 of a whole relative directory path; -1 when it must be walked (missing, or no openat2). */
  private openBeneath(relative: string): number {
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(DIR_FLAGS), 0);
    how.writeBigUInt64LE(BigInt(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), 16);
    const fd = Number(bind('openat2').syscall(SYS_OPENAT2, 'int', this.rootFd, 'str', relative, 'void *', how, 'size_t', 24));
    if (fd >= 0) return fd;
    const errno = koffi.errno();
    if (errno === E.ENOSYS || errno === E.EPERM) {
      openat2Works = false; // an old kernel, or a seccomp filter that forbids it: walk
      return -1;
    }
    if (errno === E.ENOENT) return -1; // the walk says which component, and creates them
    throw this.failure('open', relative.split('/'));
  }

  private openChildDir(at: number, parts: readonly string[], i: number, create: boolean, mode: number): number {
    const api = bind('openat');
    let fd = api.openat(at, parts[i]!, DIR_FLAGS, 0);
    if (fd < 0 && koffi.errno() === E.ENOENT && create) {
      if (bind('mkdirat').mkdirat(at, parts[i]!, mode) !== 0 && koffi.errno() !== E.EEXIST) throw this.failure('mkdir', parts.slice(0, i + 1));
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
      const why = code === 'ENOTDIR' ? 'is not a directory' : 'is a symbolic link';
      return new ConfinedError(
        'refused',
        `refused to ${call} ${this.target}/${relative}: a component of it ${why}, and a restore never writes through or over one (it could lead outside the target); restore into an empty target, or remove that entry first`,
        code,
      );
    }
    return new ConfinedError('io', `cannot ${call} ${this.target}/${relative}: ${code}`, code);
  }
}
