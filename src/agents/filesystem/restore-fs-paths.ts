/**
 * PathRestoreFs: the filesystem agent's restore writes on systems other than Linux and Windows
 * (agentfd neither supports nor tests them; this keeps a restore possible there). Paths below the
 * realpath'ed target, each parent checked component by component first (safe-dirs.ts): this
 * guards against links restored or planted before the restore, not against one swapped in
 * between the check and the write, which ConfinedRestoreFs closes on Linux and Windows.
 */
import { constants } from 'node:fs';
import { chmod, lstat, lutimes, mkdir, open, realpath, rename, stat, symlink, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { directoryInTheWay, inTheWay, ioError, targetError, type RestoreFs, type WritableFile } from './restore-fs.js';
import { RESTORE_DIR_MODE, SafeDirs, codeOf, lstatOrNull } from './safe-dirs.js';
import { nsToUtimesSeconds } from './times.js';

const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0);

export class PathRestoreFs implements RestoreFs {
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
      throw directoryInTheWay(agentPath, osPath);
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
      warn(`${agentPath}: could not set mode ${(mode & 0o7777).toString(8)} on ${osPath} (${codeOf(error)})`);
    }
    try {
      await utimes(osPath, Date.now() / 1000, nsToUtimesSeconds(mtimeNs));
    } catch (error) {
      warn(`${agentPath}: could not set the modification time of ${osPath} (${codeOf(error)})`);
    }
  }

  close(): void {}
}
