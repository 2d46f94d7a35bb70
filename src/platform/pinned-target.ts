/**
 * Writing beneath a restore target without ever leaving it (Windows): the twin of
 * confined-target.ts, which does it on Linux with openat2.
 *
 * Win32 has no openat: a path is always resolved from its start. What it has is share modes. A
 * directory opened without FILE_SHARE_DELETE cannot be renamed, moved or deleted while the handle
 * is open (the attempt fails with a sharing violation), and Windows does not let a directory be
 * renamed while something below it is open either. So each call of a PinnedTarget "pins" every
 * directory on its way down: it opens the component itself (FILE_FLAG_OPEN_REPARSE_POINT: a
 * symbolic link or junction is opened as itself, not followed), refuses it unless it is a plain
 * directory, and keeps the handle (no FILE_SHARE_DELETE) until the call is done. While pinned,
 * the path from the target to the entry names exactly the directories that were checked; the
 * entry itself is then created or opened by that path (a new file with CREATE_NEW, which never
 * follows anything that exists; an existing one opened as itself and refused if it is a reparse
 * point). Checking and writing are thereby one step, as on Linux, and a directory swapped for a
 * junction between two calls is refused by the next call that passes through it.
 *
 * Under Wine (the Windows test lane) a Unix symlink is followed even with
 * FILE_FLAG_OPEN_REPARSE_POINT, but GetFileAttributesW of its name shows
 * FILE_ATTRIBUTE_REPARSE_POINT for a link to a directory: both are checked, so a planted link to
 * a directory is refused there too. (Wine shows a Unix symlink to a file as a plain file: on Wine
 * only, a planted link to a file at the very name of a restored file is not detected.)
 */
import { lutimesSync, mkdirSync, realpathSync, renameSync, rmdirSync, symlinkSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { ConfinedError } from './confined-target.js';
import { windowsCannotHold } from './windows-names.js';
import {
  CREATE_NEW,
  FILE_ATTRIBUTE_DIRECTORY,
  FILE_ATTRIBUTE_NORMAL,
  FILE_ATTRIBUTE_REPARSE_POINT,
  FILE_FLAG_BACKUP_SEMANTICS,
  FILE_FLAG_OPEN_REPARSE_POINT,
  FILE_LIST_DIRECTORY,
  FILE_READ_ATTRIBUTES,
  FILE_SHARE_READ,
  FILE_SHARE_WRITE,
  GENERIC_WRITE,
  INVALID_FILE_ATTRIBUTES,
  OPEN_ALWAYS,
  OPEN_EXISTING,
  SYNCHRONIZE,
  closeHandle,
  createFile,
  getFileAttributes,
  handleAttributes,
  truncateHandle,
  type Handle,
} from './kernel32.js';

// FILE_LIST_DIRECTORY (read data) matters: a handle with attribute access only is left out of
// Windows' sharing checks, and would not stop a rename.
const PIN_ACCESS = FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES | SYNCHRONIZE;
const PIN_SHARE = FILE_SHARE_READ | FILE_SHARE_WRITE; // no FILE_SHARE_DELETE: that is the pin
const PIN_FLAGS = FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT;

/** How a file is opened for an agent's restore_open. */
export interface OpenFileMode {
  truncate: boolean;
  exclusive: boolean;
}

export class PinnedTarget {
  private closed = false;

  private constructor(
    readonly target: string,
    /** The real path of the target: every entry's path starts with it. */
    private readonly root: string,
    private readonly rootPin: Handle,
  ) {}

  /** Create `target` if needed and pin it for the whole restore: the one path ever resolved as given. */
  static open(target: string): PinnedTarget {
    mkdirSync(target, { recursive: true });
    const root = realpathSync.native(target);
    return new PinnedTarget(target, root, pinDirectory(root, []));
  }

  /**
   * The OS path of `parts` below the target. Each component must be one name Windows can hold:
   * a backslash, say, would be a separator to every Win32 call, and path.win32.join would
   * resolve "a\\..\\.." across the pins.
   */
  osPath(parts: readonly string[]): string {
    for (const part of parts) {
      if (part === '' || part === '.' || part === '..' || part.includes('/') || windowsCannotHold(part)) {
        throw new ConfinedError(
          'invalid',
          `"${parts.join('/')}" cannot be written on Windows: "${part}" is not a name Windows can hold (one of \\ / : * ? " < > |, a control character, a trailing dot or space, or a device name such as CON)`,
          'EINVAL',
        );
      }
    }
    return path.win32.join(this.root, ...parts);
  }

  /**
   * Run `body` with the directory `parts` pinned and the path of it, creating missing directories
   * when `create`. Every directory between the target and `parts` stays pinned until `body` ends
   * (also when it returns a promise).
   */
  withDir<T>(parts: readonly string[], create: boolean, body: (dirPath: string) => T): T {
    if (this.closed) throw new ConfinedError('invalid', `the restore target ${this.target} is closed`);
    const pins: Handle[] = [];
    return releasing(pins, () => {
      for (let i = 0; i < parts.length; i++) pins.push(this.pinChild(parts.slice(0, i + 1), create));
      return body(this.osPath(parts));
    });
  }

  /**
   * Run `body` with the path of the entry `parts` itself (a file or a directory), for the calls
   * that follow a last link (chmod, utimes, open): its parents are pinned, and so is the entry,
   * opened as itself and refused when it is a reparse point; so those calls reach exactly the
   * entry that was checked, and nobody can swap it meanwhile. Released when `body` ends.
   */
  withEntry<T>(parts: readonly string[], body: (entryPath: string) => T): T {
    if (parts.length === 0) return this.withDir([], false, body);
    return this.withDir(parts.slice(0, -1), false, () => {
      const osPath = this.osPath(parts);
      let pin: Handle;
      try {
        pin = pinEntry(osPath, parts, false);
      } catch (error) {
        throw this.named(error, 'open', parts);
      }
      return releasing([pin], () => body(osPath));
    });
  }

  /** Open (create) the file `parts` for writing, as an agent's restore_open asks: a HANDLE the caller closes. */
  openFile(parts: readonly string[], mode: OpenFileMode): Handle {
    return this.withDir(parts.slice(0, -1), true, () => {
      const osPath = this.osPath(parts);
      const handle = this.call('open', parts, () =>
        createFile(osPath, GENERIC_WRITE, FILE_SHARE_READ, mode.exclusive ? CREATE_NEW : OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT),
      );
      try {
        if (isReparsePoint(handleAttributes(handle, osPath), osPath)) throw this.refusal('open', parts);
        if (mode.truncate) this.call('open', parts, () => truncateHandle(handle, osPath));
        return handle;
      } catch (error) {
        closeHandle(handle);
        throw error;
      }
    });
  }

  /** Throws unless `parts` is a plain directory below the target (ENOENT when missing). */
  checkDir(parts: readonly string[]): void {
    this.withDir(parts, false, () => undefined);
  }

  mkdir(parts: readonly string[]): void {
    this.withDir(parts.slice(0, -1), true, () => this.call('mkdir', parts, () => mkdirSync(this.osPath(parts))));
  }

  symlink(parts: readonly string[], linkTarget: string): void {
    this.withDir(parts.slice(0, -1), true, () => this.call('symlink', parts, () => symlinkSync(linkTarget, this.osPath(parts))));
  }

  /** Set the times of the link (or file) `parts` itself, not following it. */
  setLinkTimes(parts: readonly string[], mtimeNs: bigint): void {
    const mtime = Number(mtimeNs / 1_000_000n) / 1000;
    this.withDir(parts.slice(0, -1), false, () => this.call('utimes', parts, () => lutimesSync(this.osPath(parts), Date.now() / 1000, mtime)));
  }

  /** rename(from, to) inside the target; replaces a file or link at `to`, never a directory, never follows one. */
  rename(from: readonly string[], to: readonly string[]): void {
    this.withDir(from.slice(0, -1), false, () =>
      this.withDir(to.slice(0, -1), true, () => this.call('rename', to, () => renameSync(this.osPath(from), this.osPath(to)))),
    );
  }

  /** Remove the file or link `parts` (a directory only with `directory`); a missing one is fine. */
  remove(parts: readonly string[], directory = false): void {
    try {
      this.withDir(parts.slice(0, -1), false, () => this.call('remove', parts, () => (directory ? rmdirSync : unlinkSync)(this.osPath(parts))));
    } catch (error) {
      if (!(error instanceof ConfinedError && error.code === 'ENOENT')) throw error;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeHandle(this.rootPin);
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** Pin the directory `parts` (its parent is pinned), creating it first when missing and `create`. */
  private pinChild(parts: readonly string[], create: boolean): Handle {
    const osPath = this.osPath(parts);
    try {
      return pinDirectory(osPath, parts);
    } catch (error) {
      if (!(error instanceof ConfinedError) || error.code !== 'ENOENT' || !create) throw this.named(error, 'open', parts);
    }
    this.call('mkdir', parts, () => {
      try {
        mkdirSync(osPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // made meanwhile: checked below
      }
    });
    try {
      return pinDirectory(osPath, parts);
    } catch (error) {
      throw this.named(error, 'open', parts);
    }
  }

  /** Run a Win32 or Node call; its error becomes a ConfinedError naming the entry. */
  private call<T>(call: string, parts: readonly string[], body: () => T): T {
    try {
      return body();
    } catch (error) {
      throw this.named(error, call, parts);
    }
  }

  private named(error: unknown, call: string, parts: readonly string[]): ConfinedError {
    if (error instanceof ConfinedError && error.kind === 'refused') return this.refusal(call, parts);
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    return new ConfinedError('io', `cannot ${call} ${this.osPath(parts)}: ${code}`, code);
  }

  private refusal(call: string, parts: readonly string[]): ConfinedError {
    return new ConfinedError(
      'refused',
      `refused to ${call} ${this.osPath(parts)}: a component of it is a symbolic link, a junction or not a directory, and a restore never writes through or over one (it could lead outside the target); restore into an empty target, or remove that entry first`,
      'ELOOP',
    );
  }
}

/** Run `body`, then close every handle in `pins` (also those it adds), when it returns or its promise settles. */
function releasing<T>(pins: Handle[], body: () => T): T {
  const release = () => pins.splice(0).forEach(closeHandle);
  let result: T;
  try {
    result = body();
  } catch (error) {
    release();
    throw error;
  }
  if (result instanceof Promise) return result.finally(release) as T;
  release();
  return result;
}

/** Open `osPath` as a pin: refused (ConfinedError 'refused') unless it is a plain directory. */
function pinDirectory(osPath: string, parts: readonly string[]): Handle {
  return pinEntry(osPath, parts, true);
}

/**
 * Open `osPath` as a pin (as itself, without FILE_SHARE_DELETE): refused (ConfinedError 'refused')
 * when it is a reparse point, or, when `directory`, anything but a directory. On a file the pin's
 * read access (the same bit as FILE_LIST_DIRECTORY) likewise puts it in the sharing checks.
 */
function pinEntry(osPath: string, parts: readonly string[], directory: boolean): Handle {
  let handle: Handle;
  try {
    handle = createFile(osPath, PIN_ACCESS, PIN_SHARE, OPEN_EXISTING, PIN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    throw new ConfinedError('io', `cannot open ${osPath}: ${code}`, code);
  }
  try {
    const attributes = handleAttributes(handle, osPath);
    if ((directory && !(attributes & FILE_ATTRIBUTE_DIRECTORY)) || isReparsePoint(attributes, osPath)) {
      throw new ConfinedError('refused', `${parts.join('/') || osPath} is not a plain ${directory ? 'directory' : 'file or directory'}`, 'ELOOP');
    }
    return handle;
  } catch (error) {
    closeHandle(handle);
    throw error;
  }
}

/**
 * Whether the open entry is a reparse point: by the attributes read through its handle, and (for
 * Wine's Unix symlinks, which the handle does not show) by its name.
 */
function isReparsePoint(attributes: number, osPath: string): boolean {
  if (attributes & FILE_ATTRIBUTE_REPARSE_POINT) return true;
  const byName = getFileAttributes(osPath);
  return byName !== INVALID_FILE_ATTRIBUTES && (byName & FILE_ATTRIBUTE_REPARSE_POINT) !== 0;
}
