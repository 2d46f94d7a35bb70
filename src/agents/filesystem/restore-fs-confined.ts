/**
 * ConfinedRestoreFs: the filesystem agent's restore writes on Linux and Windows, every entry
 * reached from the target opened once (see restore-fs.ts). The two systems confine differently
 * (Linux: calls relative to open directory descriptors; Windows: paths through directories pinned
 * by handles), so each has a small adapter below with the same operations and the same error
 * codes (ELOOP for a link or non-directory on the way, ENOENT, EPERM/EISDIR for a directory in
 * the way); the restore's decisions and messages are written once, in the class.
 */
import { close, constants, fchmod, futimes, write } from 'node:fs';
import { chmod, open, utimes } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ConfinedError, ConfinedTarget } from '../../platform/confined-target.js';
import { IS_WINDOWS } from '../../platform/os.js';
import { PinnedTarget } from '../../platform/pinned-target.js';
import { directoryInTheWay, inTheWay, ioError, refusedError, targetError, type RestoreFs, type WritableFile } from './restore-fs.js';
import { RESTORE_DIR_MODE, codeOf } from './safe-dirs.js';
import { nsToUtimesSeconds } from './times.js';

/** What a restore may do to a directory it made: its mode and times, through an open handle or a pinned path. */
interface DirectoryUpdate {
  chmod(mode: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
}

/** The confined operations the restore needs, on one system. Every failure is a ConfinedError or an errno error. */
interface TargetOps {
  readonly root: string;
  ensureDir(parts: readonly string[]): void;
  checkDir(parts: readonly string[]): void;
  mkdir(parts: readonly string[]): void;
  symlink(parts: readonly string[], linkTarget: string): void;
  setLinkTimes(parts: readonly string[], mtimeNs: bigint): void;
  remove(parts: readonly string[]): void;
  rename(from: readonly string[], to: readonly string[]): void;
  createFile(parts: readonly string[]): Promise<WritableFile>;
  /** Run `body` on the directory `parts`; throws (before `body`) when it is no longer a plain directory. */
  updateDirectory(parts: readonly string[], body: (dir: DirectoryUpdate) => Promise<void>): Promise<void>;
  close(): void;
}

export class ConfinedRestoreFs implements RestoreFs {
  private constructor(private readonly ops: TargetOps) {}

  static open(target: string): ConfinedRestoreFs {
    try {
      return new ConfinedRestoreFs(IS_WINDOWS ? windowsOps(PinnedTarget.open(target)) : linuxOps(ConfinedTarget.open(target, RESTORE_DIR_MODE)));
    } catch (error) {
      throw targetError(target, error);
    }
  }

  get root(): string {
    return this.ops.root;
  }

  osPath(parts: readonly string[]): string {
    return path.join(this.root, ...parts);
  }

  /** Run a confined call; a refusal becomes E_RESTORE_PATH, another failure E_RESTORE_IO. */
  private async run<T>(parts: readonly string[], agentPath: string, what: string, body: () => T | Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      if (error instanceof ConfinedError && error.kind !== 'io') throw refusedError(agentPath, error);
      throw ioError(agentPath, `${what} ${this.osPath(parts)}`, error);
    }
  }

  async ensureParents(parts: readonly string[], agentPath: string): Promise<void> {
    await this.run(parts, agentPath, 'creating the directories of', () => this.ops.ensureDir(parts.slice(0, -1)));
  }

  async makeDirectory(parts: readonly string[], agentPath: string): Promise<void> {
    await this.run(parts, agentPath, 'creating the directory', () => {
      try {
        this.ops.checkDir(parts);
        return; // already a directory
      } catch (error) {
        if (!(error instanceof ConfinedError)) throw error;
        if (error.code === 'ELOOP' || error.code === 'ENOTDIR') this.ops.remove(parts); // a file or symlink is replaced, as files are
        else if (error.code !== 'ENOENT') throw error;
      }
      this.ops.mkdir(parts);
    });
  }

  async makeSymlink(parts: readonly string[], linkTarget: string, mtimeNs: bigint, agentPath: string): Promise<void> {
    await this.run(parts, agentPath, 'creating the symlink', () => {
      try {
        this.ops.remove(parts);
      } catch (error) {
        if (error instanceof ConfinedError && (error.code === 'EISDIR' || error.code === 'EPERM')) throw directoryInTheWay(agentPath, this.osPath(parts));
        throw error;
      }
      this.ops.symlink(parts, linkTarget);
    });
    try {
      this.ops.setLinkTimes(parts, mtimeNs);
    } catch {
      // Optional, as on every platform: the link is in place.
    }
  }

  createFile(parts: readonly string[], agentPath: string): Promise<WritableFile> {
    return this.run(parts, agentPath, 'creating', () => this.ops.createFile(parts));
  }

  async replace(from: readonly string[], to: readonly string[], agentPath: string): Promise<void> {
    try {
      this.ops.rename(from, to);
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
      this.ops.remove(parts);
      return null;
    } catch (error) {
      return error instanceof ConfinedError ? (error.code ?? error.message) : codeOf(error);
    }
  }

  async setDirectory(parts: readonly string[], agentPath: string, mode: number, mtimeNs: bigint, warn: (message: string) => void): Promise<void> {
    const osPath = this.osPath(parts);
    let reached = false;
    try {
      await this.ops.updateDirectory(parts, async (dir) => {
        reached = true;
        // Windows keeps only a read-only bit: nothing worth a warning there.
        await dir.chmod(mode & 0o7777).catch((error: unknown) => IS_WINDOWS || warn(`${agentPath}: could not set mode ${(mode & 0o7777).toString(8)} on ${osPath} (${codeOf(error)})`));
        await dir.utimes(Date.now() / 1000, nsToUtimesSeconds(mtimeNs)).catch((error: unknown) => warn(`${agentPath}: could not set the modification time of ${osPath} (${codeOf(error)})`));
      });
    } catch (error) {
      if (reached) throw error;
      warn(`${agentPath}: ${osPath} is no longer a directory; its mode and time were not set`);
    }
  }

  close(): void {
    this.ops.close();
  }
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

function linuxOps(target: ConfinedTarget): TargetOps {
  return {
    root: target.target,
    ensureDir: (parts) => target.withDir(parts, true, () => undefined, RESTORE_DIR_MODE),
    checkDir: (parts) => target.checkDir(parts),
    mkdir: (parts) => target.mkdir(parts, RESTORE_DIR_MODE),
    symlink: (parts, linkTarget) => target.symlink(parts, linkTarget),
    setLinkTimes: (parts, mtimeNs) => target.setLinkTimes(parts, mtimeNs),
    remove: (parts) => target.remove(parts),
    rename: (from, to) => target.rename(from, to),
    createFile: async (parts) => new FdFile(target.openFile(parts, constants.O_EXCL, 0o600, true, RESTORE_DIR_MODE)),
    async updateDirectory(parts, body) {
      const fd = target.openDirForUpdate(parts);
      try {
        await body({ chmod: (mode) => fchmodFd(fd, mode), utimes: (atime, mtime) => futimesFd(fd, atime, mtime) });
      } finally {
        await closeFd(fd);
      }
    },
    close: () => target.close(),
  };
}

// ---- Windows: through pinned directories ----------------------------------------------------

// CREATE_NEW: a name that exists (a planted link included) fails the open; nothing is followed.
const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY;

function windowsOps(target: PinnedTarget): TargetOps {
  return {
    root: target.osPath([]),
    ensureDir: (parts) => target.withDir(parts, true, () => undefined),
    checkDir: (parts) => target.checkDir(parts),
    mkdir: (parts) => target.mkdir(parts),
    symlink: (parts, linkTarget) => target.symlink(parts, linkTarget),
    setLinkTimes: (parts, mtimeNs) => target.setLinkTimes(parts, mtimeNs),
    remove: (parts) => target.remove(parts),
    rename: (from, to) => target.rename(from, to),
    createFile: (parts) => target.withDir(parts.slice(0, -1), true, () => open(target.osPath(parts), CREATE_FLAGS, 0o600)),
    updateDirectory: (parts, body) =>
      target.withDir(parts, false, (dir) => body({ chmod: (mode) => chmod(dir, mode), utimes: (atime, mtime) => utimes(dir, atime, mtime) })),
    close: () => target.close(),
  };
}
