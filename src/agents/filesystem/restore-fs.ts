/**
 * The filesystem agent's restore writes, two ways with the same results and messages:
 *
 * - ConfinedRestoreFs (Linux): every entry is created relative to a directory opened beneath the
 *   target (confined-target.ts), each call resolving its parents again from the open target without
 *   following a link, never by a path checked earlier. A directory that someone swaps for a symlink
 *   while the restore runs refuses the next entry below it (E_RESTORE_PATH, the restore reports
 *   it) instead of leading it outside.
 * - PathRestoreFs (Windows, macOS): paths below the realpath'ed target, each parent checked
 *   component by component first (safe-dirs.ts). This guards against links restored or planted
 *   before the restore, not against one swapped in between the check and the write.
 */
import { constants, fchmod, futimes, close, write } from 'node:fs';
import { chmod, lstat, lutimes, mkdir, open, realpath, rename, stat, symlink, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { AgentfdError } from '../../errors.js';
import { CONFINED_WRITES, ConfinedError, ConfinedTarget } from '../confined-target.js';
import { RESTORE_DIR_MODE, SafeDirs, codeOf, lstatOrNull } from './safe-dirs.js';
import { IS_WINDOWS } from '../../platform/os.js';
import { nsToUtimesSeconds } from './times.js';

/** What the restore does with a file it writes (fs.promises.FileHandle has the same shape). */
export interface WritableFile {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  chmod(mode: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
  close(): Promise<void>;
}

/** Entries are named by their components below the target; `agentPath` only for messages. */
export interface RestoreFs {
  readonly root: string;
  osPath(parts: readonly string[]): string;
  /** Make sure the parents of `parts` are directories below the target, creating missing ones (0700). */
  ensureParents(parts: readonly string[], agentPath: string): Promise<void>;
  /** A directory at `parts`: kept if there is one, else made (a file or symlink there is replaced). */
  makeDirectory(parts: readonly string[], agentPath: string): Promise<void>;
  /** Replace what is at `parts` (never a directory) by a symlink to `target`. */
  makeSymlink(parts: readonly string[], target: string, mtimeNs: bigint, agentPath: string): Promise<void>;
  /** A new file at `parts` (O_EXCL, O_NOFOLLOW, mode 0600) for writing. */
  createFile(parts: readonly string[], agentPath: string): Promise<WritableFile>;
  /** Rename `from` over `to` (the same parent); a directory at `to` refuses it (E_RESTORE_PATH). */
  replace(from: readonly string[], to: readonly string[], agentPath: string): Promise<void>;
  /** Remove the file `parts` (a missing one is fine); null, or the reason it could not be removed. */
  remove(parts: readonly string[]): Promise<string | null>;
  /** Set a directory's mode and mtime; a warning's text when it is no longer a directory or refused. */
  setDirectory(parts: readonly string[], agentPath: string, mode: number, mtimeNs: bigint, warn: (message: string) => void): Promise<void>;
  close(): void;
}

export function ioError(agentPath: string, what: string, error: unknown): AgentfdError {
  if (error instanceof AgentfdError) return error;
  return new AgentfdError('E_RESTORE_IO', `restore of ${agentPath}: ${what} failed (${codeOf(error)})`, { cause: error });
}


/** Open the target for the restore: confined on Linux, by checked paths elsewhere. */
export async function openRestoreFs(target: string): Promise<RestoreFs> {
  return CONFINED_WRITES ? ConfinedRestoreFs.open(target) : PathRestoreFs.open(target);
}

/** A rename over `toPath` that what is there refuses (a directory, say), else null. */
function inTheWay(agentPath: string, toPath: string, code: string | undefined, cause: unknown): AgentfdError | null {
  if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EPERM') return null;
  return new AgentfdError('E_RESTORE_PATH', `restore of ${agentPath} refused: ${toPath} is in the way (${code}); remove it or restore elsewhere`, { cause });
}

/** A confined call that would have left the target. */
function refusedError(agentPath: string, error: ConfinedError): AgentfdError {
  return new AgentfdError('E_RESTORE_PATH', `restore of ${agentPath} refused: ${error.message}`, { cause: error });
}

function targetError(target: string, error: unknown): AgentfdError {
  return new AgentfdError(
    'E_RESTORE_PATH',
    `restore target ${target} cannot be used as a directory (${codeOf(error)}); give a directory agentfd may create or write`,
    { cause: error },
  );
}

// ---- Linux: relative to open directories ----------------------------------------------------

const writeFd = promisify(write);
const fchmodFd = promisify(fchmod);
const futimesFd = promisify(futimes);
const closeFd = promisify(close);

/** A raw descriptor from openat, used through Node's fs calls that take one. */
class FdFile implements WritableFile {
  constructor(private readonly fd: number) {}
  async write(buffer: Uint8Array, offset: number, length: number, position: number) {
    return { bytesWritten: (await writeFd(this.fd, buffer, offset, length, position)).bytesWritten };
  }
  chmod(mode: number) {
    return fchmodFd(this.fd, mode);
  }
  utimes(atime: number, mtime: number) {
    return futimesFd(this.fd, atime, mtime);
  }
  close() {
    return closeFd(this.fd);
  }
}

class ConfinedRestoreFs implements RestoreFs {
  private constructor(private readonly target: ConfinedTarget) {}

  static open(target: string): ConfinedRestoreFs {
    try {
      return new ConfinedRestoreFs(ConfinedTarget.open(target, RESTORE_DIR_MODE));
    } catch (error) {
      throw targetError(target, error);
    }
  }

  get root(): string {
    return this.target.target;
  }

  osPath(parts: readonly string[]): string {
    return path.join(this.root, ...parts);
  }

  /** Run a confined call; a refusal becomes E_RESTORE_PATH, another failure E_RESTORE_IO. */
  private run<T>(parts: readonly string[], agentPath: string, what: string, body: () => T): T {
    try {
      return body();
    } catch (error) {
      if (error instanceof ConfinedError && error.kind !== 'io') throw refusedError(agentPath, error);
      throw ioError(agentPath, `${what} ${this.osPath(parts)}`, error);
    }
  }

  async ensureParents(parts: readonly string[], agentPath: string): Promise<void> {
    this.run(parts, agentPath, 'creating the directories of', () => this.target.withDir(parts.slice(0, -1), true, () => undefined, RESTORE_DIR_MODE));
  }

  async makeDirectory(parts: readonly string[], agentPath: string): Promise<void> {
    this.run(parts, agentPath, 'creating the directory', () => {
      try {
        this.target.checkDir(parts);
        return; // already a directory
      } catch (error) {
        if (!(error instanceof ConfinedError)) throw error;
        if (error.code === 'ELOOP' || error.code === 'ENOTDIR') this.target.remove(parts); // a file or symlink is replaced, as files are
        else if (error.code !== 'ENOENT') throw error;
      }
      this.target.mkdir(parts, RESTORE_DIR_MODE);
    });
  }

  async makeSymlink(parts: readonly string[], linkTarget: string, mtimeNs: bigint, agentPath: string): Promise<void> {
    this.run(parts, agentPath, 'creating the symlink', () => {
      try {
        this.target.remove(parts);
      } catch (error) {
        if (error instanceof ConfinedError && (error.code === 'EISDIR' || error.code === 'EPERM')) {
          throw new AgentfdError('E_RESTORE_PATH', `restore of the symlink ${agentPath} refused: the directory ${this.osPath(parts)} is in the way; remove it or restore elsewhere`);
        }
        throw error;
      }
      this.target.symlink(parts, linkTarget);
    });
    try {
      this.target.setLinkTimes(parts, mtimeNs);
    } catch {
      // Optional, as on every platform: the link is in place.
    }
  }

  async createFile(parts: readonly string[], agentPath: string): Promise<WritableFile> {
    const fd = this.run(parts, agentPath, 'creating', () => this.target.openFile(parts, constants.O_EXCL, 0o600, true, RESTORE_DIR_MODE));
    return new FdFile(fd);
  }

  async replace(from: readonly string[], to: readonly string[], agentPath: string): Promise<void> {
    try {
      this.target.rename(from, to);
    } catch (error) {
      const confined = error instanceof ConfinedError ? error : null;
      throw (
        inTheWay(agentPath, this.osPath(to), confined?.code, error) ??
        (confined && confined.kind !== 'io' ? refusedError(agentPath, confined) : ioError(agentPath, `renaming ${this.osPath(from)} to ${this.osPath(to)}`, error))
      );
    }
  }

  async remove(parts: readonly string[]): Promise<string | null> {
    try {
      this.target.remove(parts);
      return null;
    } catch (error) {
      return error instanceof ConfinedError ? (error.code ?? error.message) : codeOf(error);
    }
  }

  async setDirectory(parts: readonly string[], agentPath: string, mode: number, mtimeNs: bigint, warn: (message: string) => void): Promise<void> {
    let fd: number;
    try {
      fd = this.target.openDirForUpdate(parts);
    } catch {
      warn(`${agentPath}: ${this.osPath(parts)} is no longer a directory; its mode and time were not set`);
      return;
    }
    try {
      await fchmodFd(fd, mode & 0o7777).catch((error: unknown) => warn(`${agentPath}: could not set mode ${(mode & 0o7777).toString(8)} on ${this.osPath(parts)} (${codeOf(error)})`));
      await futimesFd(fd, Date.now() / 1000, nsToUtimesSeconds(mtimeNs)).catch((error: unknown) =>
        warn(`${agentPath}: could not set the modification time of ${this.osPath(parts)} (${codeOf(error)})`),
      );
    } finally {
      await closeFd(fd);
    }
  }

  close(): void {
    this.target.close();
  }
}

// ---- elsewhere: checked paths ---------------------------------------------------------------

const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0);

class PathRestoreFs implements RestoreFs {
  private readonly dirs: SafeDirs;

  private constructor(readonly root: string) {
    this.dirs = new SafeDirs(root);
  }

  static async open(target: string): Promise<PathRestoreFs> {
    try {
      await mkdir(target, { recursive: true, mode: RESTORE_DIR_MODE });
      const root = await realpath(target);
      if (!(await stat(root)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      return new PathRestoreFs(root);
    } catch (error) {
      throw targetError(target, error);
    }
  }

  osPath(parts: readonly string[]): string {
    return path.join(this.root, ...parts);
  }

  async ensureParents(parts: readonly string[], agentPath: string): Promise<void> {
    await this.dirs.ensure(parts.slice(0, -1), agentPath);
  }

  async makeDirectory(parts: readonly string[], agentPath: string): Promise<void> {
    const osPath = this.osPath(parts);
    const st = await lstatOrNull(osPath);
    if (st && st.isDirectory() && !st.isSymbolicLink()) {
      this.dirs.markVerified(osPath);
      return;
    }
    try {
      // A file or symlink where the backup had a directory is replaced, as files are.
      if (st) await unlink(osPath);
      await mkdir(osPath, { mode: RESTORE_DIR_MODE });
    } catch (error) {
      throw ioError(agentPath, `creating the directory ${osPath}`, error);
    }
    this.dirs.markVerified(osPath);
  }

  async makeSymlink(parts: readonly string[], target: string, mtimeNs: bigint, agentPath: string): Promise<void> {
    const osPath = this.osPath(parts);
    const st = await lstatOrNull(osPath);
    if (st && st.isDirectory() && !st.isSymbolicLink()) {
      throw new AgentfdError('E_RESTORE_PATH', `restore of the symlink ${agentPath} refused: the directory ${osPath} is in the way; remove it or restore elsewhere`);
    }
    try {
      if (st) await unlink(osPath);
      await symlink(target, osPath);
    } catch (error) {
      throw ioError(agentPath, `creating the symlink ${osPath}`, error);
    }
    // Optional: not every platform can set a symlink's own time.
    await lutimes(osPath, Date.now() / 1000, nsToUtimesSeconds(mtimeNs)).catch(() => undefined);
  }

  async createFile(parts: readonly string[], agentPath: string): Promise<WritableFile> {
    const osPath = this.osPath(parts);
    try {
      return await open(osPath, CREATE_FLAGS, 0o600);
    } catch (error) {
      throw ioError(agentPath, `creating ${osPath}`, error);
    }
  }

  async replace(from: readonly string[], to: readonly string[], agentPath: string): Promise<void> {
    const [fromPath, toPath] = [this.osPath(from), this.osPath(to)];
    try {
      await rename(fromPath, toPath);
    } catch (error) {
      throw inTheWay(agentPath, toPath, codeOf(error), error) ?? ioError(agentPath, `renaming ${fromPath} to ${toPath}`, error);
    }
  }

  async remove(parts: readonly string[]): Promise<string | null> {
    try {
      await unlink(this.osPath(parts));
      return null;
    } catch (error) {
      return codeOf(error) === 'ENOENT' ? null : codeOf(error);
    }
  }

  async setDirectory(parts: readonly string[], agentPath: string, mode: number, mtimeNs: bigint, warn: (message: string) => void): Promise<void> {
    const osPath = this.osPath(parts);
    const st = await lstat(osPath).catch(() => null);
    if (!st || st.isSymbolicLink() || !st.isDirectory()) {
      warn(`${agentPath}: ${osPath} is no longer a directory; its mode and time were not set`);
      return;
    }
    try {
      await chmod(osPath, mode & 0o7777);
    } catch (error) {
      // Windows keeps only a read-only bit; nothing worth failing for.
      if (!IS_WINDOWS) warn(`${agentPath}: could not set mode ${(mode & 0o7777).toString(8)} on ${osPath} (${codeOf(error)})`);
    }
    try {
      await utimes(osPath, Date.now() / 1000, nsToUtimesSeconds(mtimeNs));
    } catch (error) {
      warn(`${agentPath}: could not set the modification time of ${osPath} (${codeOf(error)})`);
    }
  }

  close(): void {}
}
