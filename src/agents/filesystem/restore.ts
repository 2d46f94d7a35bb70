/**
 * The filesystem agent's restore: the engine's startFile/write/endFile calls turned into files
 * under the target. Safe against a hostile backup (paths are checked, parents never symlinks, see
 * safe-dirs.ts) and never leaves a half-written file under its final name: data goes to
 * `.<name>.agentfd-part-<random>` (O_EXCL, O_NOFOLLOW) and is renamed over the final name only
 * once the engine says the file is good. Directory modes and times are applied in finish(),
 * deepest first, because restoring their contents changes their mtime.
 *
 * On Windows, names Windows cannot hold are written mapped (agent-path.ts; each one logged once as
 * a warning), a path that would land on one already restored in the run (Windows ignores case) is
 * refused, and a file's or directory's Windows attributes are set as its very last step
 * (win-attributes.ts); a READONLY set earlier would refuse what follows.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, realpath, rename, stat, symlink, unlink, lutimes, chmod, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AgentfdError } from '../../errors.js';
import type { RestoreRequest, RestoreRun } from '../agent.js';
import type { AgentFileInfo } from '../types.js';
import { WindowsNameClaims, planRestorePath, type MappedName } from './agent-path.js';
import { RESTORE_DIR_MODE, SafeDirs, codeOf, lstatOrNull } from './safe-dirs.js';
import { nsToUtimesSeconds } from './times.js';
import { restorableWinAttributes, writeWinAttributes } from './win-attributes.js';

const IS_WINDOWS = process.platform === 'win32';
const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0);

type Current =
  | { kind: 'skip'; info: AgentFileInfo }
  | { kind: 'directory'; info: AgentFileInfo; osPath: string; depth: number }
  | { kind: 'symlink'; info: AgentFileInfo; osPath: string; target: string }
  | { kind: 'regular'; info: AgentFileInfo; osPath: string; tempPath: string; handle: FileHandle; written: number };

interface DirTimes {
  osPath: string;
  agentPath: string;
  mode: number;
  mtimeNs: bigint;
  winAttributes: number;
  depth: number;
}

export interface FilesystemRestoreOptions {
  /**
   * Restore as on Windows (names mapped, case clashes refused) or as on POSIX; by default as this
   * system does. For tests of the Windows rules on any system: the attributes themselves are only
   * ever set on Windows.
   */
  windows?: boolean;
}

/** A temporary name next to `finalPath` (a long name is left out, to stay under NAME_MAX). */
function tempNameFor(finalPath: string): string {
  const name = path.basename(finalPath);
  const random = randomBytes(6).toString('hex');
  const prefix = Buffer.byteLength(name) <= 200 ? `.${name}` : '';
  return path.join(path.dirname(finalPath), `${prefix}.agentfd-part-${random}`);
}

function ioError(agentPath: string, what: string, error: unknown): AgentfdError {
  if (error instanceof AgentfdError) return error;
  return new AgentfdError('E_RESTORE_IO', `restore of ${agentPath}: ${what} failed (${codeOf(error)})`, { cause: error });
}

export async function startFilesystemRestore(request: RestoreRequest, options: FilesystemRestoreOptions = {}): Promise<RestoreRun> {
  let root: string;
  try {
    await mkdir(request.target, { recursive: true, mode: RESTORE_DIR_MODE });
    root = await realpath(request.target);
    if (!(await stat(root)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (error) {
    throw new AgentfdError(
      'E_RESTORE_PATH',
      `restore target ${request.target} cannot be used as a directory (${codeOf(error)}); give a directory agentfd may create or write`,
      { cause: error },
    );
  }
  return new FilesystemRestore(root, request, options.windows ?? IS_WINDOWS);
}

class FilesystemRestore implements RestoreRun {
  private readonly dirs: SafeDirs;
  private readonly dirTimes: DirTimes[] = [];
  private current: Current | null = null;
  private closed = false;
  /** Windows only: where this run has written, compared as Windows compares names. */
  private readonly claims: WindowsNameClaims | null;
  /** The agent paths of the mapped names already logged: a directory's, once for all its files. */
  private readonly reported = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly request: RestoreRequest,
    private readonly windows: boolean,
  ) {
    this.dirs = new SafeDirs(root);
    this.claims = windows ? new WindowsNameClaims() : null;
  }

  async startFile(file: AgentFileInfo): Promise<void> {
    this.checkOpen('startFile');
    if (this.current) {
      throw new AgentfdError('E_RESTORE_ORDER', `startFile(${file.path}) while ${this.current.info.path} is still open; call endFile first`);
    }
    const { components, mapped } = planRestorePath(file.path, this.windows);
    if (file.kind === 'virtual') {
      throw new AgentfdError('E_RESTORE_KIND', `${file.path}: virtual objects are restored by their agent, or with --raw`);
    }
    if (file.seen) {
      // Accurate mode: the file was unchanged and its data lives in an earlier job.
      this.current = { kind: 'skip', info: file };
      return;
    }
    if (components.length === 0) {
      if (file.kind !== 'directory') throw new AgentfdError('E_RESTORE_PATH', `restore of "/" as a ${file.kind} refused: "/" is the target directory`);
      this.current = { kind: 'directory', info: file, osPath: this.root, depth: 0 };
      return;
    }
    // Before anything is written: a refused path leaves no trace, not even its parents.
    this.claims?.claim(file.path, components);
    this.reportMapped(mapped);
    const parent = await this.dirs.ensure(components.slice(0, -1), file.path);
    const osPath = path.join(parent, components[components.length - 1]!);
    switch (file.kind) {
      case 'directory':
        await this.makeDirectory(osPath, file.path);
        this.current = { kind: 'directory', info: file, osPath, depth: components.length };
        return;
      case 'symlink':
        if (file.linkTarget === null || file.linkTarget === '' || file.linkTarget.includes('\0')) {
          throw new AgentfdError('E_RESTORE_KIND', `${file.path}: a symlink without a usable target; the backup is damaged`);
        }
        this.current = { kind: 'symlink', info: file, osPath, target: file.linkTarget };
        return;
      case 'regular': {
        const tempPath = tempNameFor(osPath);
        let handle: FileHandle;
        try {
          handle = await open(tempPath, CREATE_FLAGS, 0o600);
        } catch (error) {
          throw ioError(file.path, `creating ${tempPath}`, error);
        }
        this.current = { kind: 'regular', info: file, osPath, tempPath, handle, written: 0 };
        return;
      }
      default:
        throw new AgentfdError('E_RESTORE_KIND', `${file.path}: unknown file kind ${JSON.stringify(file.kind)}`);
    }
  }

  async write(streamIndex: number, chunk: Uint8Array): Promise<void> {
    this.checkOpen('write');
    const current = this.current;
    if (!current) throw new AgentfdError('E_RESTORE_ORDER', 'write before startFile: the engine must start a file before sending its data');
    if (streamIndex !== 0) {
      throw new AgentfdError('E_RESTORE_STREAM', `${current.info.path}: stream ${streamIndex} does not exist; the filesystem agent saves one data stream (index 0)`);
    }
    if (current.kind !== 'regular') {
      throw new AgentfdError('E_RESTORE_STREAM', `${current.info.path}: a ${current.info.seen ? 'seen file' : current.kind} has no data stream`);
    }
    try {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await current.handle.write(chunk, offset, chunk.byteLength - offset, current.written);
        offset += bytesWritten;
        current.written += bytesWritten;
      }
    } catch (error) {
      throw ioError(current.info.path, `writing ${current.tempPath}`, error);
    }
  }

  async endFile(ok: boolean): Promise<void> {
    this.checkOpen('endFile');
    const current = this.current;
    if (!current) throw new AgentfdError('E_RESTORE_ORDER', 'endFile without startFile');
    this.current = null;
    if (!ok) {
      if (current.kind === 'regular') await this.discard(current);
      return;
    }
    switch (current.kind) {
      case 'skip':
        return;
      case 'directory':
        this.dirTimes.push({
          osPath: current.osPath,
          agentPath: current.info.path,
          mode: current.info.mode,
          mtimeNs: current.info.mtimeNs,
          winAttributes: current.info.winAttributes,
          depth: current.depth,
        });
        return;
      case 'symlink':
        return this.makeSymlink(current);
      case 'regular':
        return this.commit(current);
    }
  }

  async finish(): Promise<void> {
    this.checkOpen('finish');
    if (this.current) {
      const open = this.current;
      this.current = null;
      if (open.kind === 'regular') await this.discard(open);
      throw new AgentfdError('E_RESTORE_ORDER', `finish while ${open.info.path} is still open; it was discarded`);
    }
    // Children first: setting a parent's mtime before its children are done would be undone.
    const ordered = [...this.dirTimes].sort((a, b) => b.depth - a.depth);
    for (const dir of ordered) {
      const st = await lstatOrNull(dir.osPath);
      if (!st || st.isSymbolicLink() || !st.isDirectory()) {
        this.request.log('warning', `${dir.agentPath}: ${dir.osPath} is no longer a directory; its mode and time were not set`);
        continue;
      }
      await this.applyMode(dir.osPath, dir.agentPath, dir.mode, (p, m) => chmod(p, m));
      try {
        await utimes(dir.osPath, Date.now() / 1000, nsToUtimesSeconds(dir.mtimeNs));
      } catch (error) {
        this.request.log('warning', `${dir.agentPath}: could not set the modification time of ${dir.osPath} (${codeOf(error)})`);
      }
      this.applyWinAttributes(dir.osPath, dir.agentPath, dir.winAttributes);
    }
    this.dirTimes.length = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const open = this.current;
    this.current = null;
    if (open?.kind === 'regular') await this.discard(open);
  }

  // ---- helpers --------------------------------------------------------------------------------

  private checkOpen(call: string): void {
    if (this.closed) throw new AgentfdError('E_RESTORE_ORDER', `${call} after close: this restore is over`);
  }

  private async makeDirectory(osPath: string, agentPath: string): Promise<void> {
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

  private async makeSymlink(current: Extract<Current, { kind: 'symlink' }>): Promise<void> {
    const { info, osPath, target } = current;
    const st = await lstatOrNull(osPath);
    if (st && st.isDirectory() && !st.isSymbolicLink()) {
      throw new AgentfdError('E_RESTORE_PATH', `restore of the symlink ${info.path} refused: the directory ${osPath} is in the way; remove it or restore elsewhere`);
    }
    try {
      if (st) await unlink(osPath);
      await symlink(target, osPath);
    } catch (error) {
      throw ioError(info.path, `creating the symlink ${osPath}`, error);
    }
    // Optional: not every platform can set a symlink's own time.
    await lutimes(osPath, Date.now() / 1000, nsToUtimesSeconds(info.mtimeNs)).catch(() => undefined);
  }

  private async commit(current: Extract<Current, { kind: 'regular' }>): Promise<void> {
    const { info, handle, tempPath, osPath } = current;
    try {
      if (info.size !== null && info.size !== current.written) {
        this.request.log('warning', `${info.path}: ${current.written} bytes restored where the backup recorded ${info.size}`);
      }
      await this.applyMode(tempPath, info.path, info.mode, (_p, m) => handle.chmod(m));
      await handle.utimes(Date.now() / 1000, nsToUtimesSeconds(info.mtimeNs));
      await handle.close();
    } catch (error) {
      await this.discard(current);
      throw ioError(info.path, `setting the mode and time of ${tempPath}`, error);
    }
    try {
      await rename(tempPath, osPath);
    } catch (error) {
      await unlink(tempPath).catch(() => undefined);
      const code = codeOf(error);
      if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EPERM') {
        throw new AgentfdError('E_RESTORE_PATH', `restore of ${info.path} refused: ${osPath} is in the way (${code}); remove it or restore elsewhere`, { cause: error });
      }
      throw ioError(info.path, `renaming ${tempPath} to ${osPath}`, error);
    }
    this.applyWinAttributes(osPath, info.path, info.winAttributes);
  }

  /** Log, once per run, each name written differently from the backup's. */
  private reportMapped(mapped: readonly MappedName[]): void {
    for (const name of mapped) {
      if (this.reported.has(name.agentPath)) continue;
      this.reported.add(name.agentPath);
      this.request.log('warning', `${name.agentPath} restored as ${name.written} (${name.why})`);
    }
  }

  /**
   * Set the saved Windows attributes of `osPath`, the last step for it. Only on a Windows restore
   * (POSIX has no twin for them; the saved mode already says whether the file was writable), and
   * only when the backup recorded some: a file from a POSIX backup keeps what creating it gave
   * (ARCHIVE, and READONLY when chmod found no write bit in its mode). A refusal costs the
   * attributes, not the file.
   */
  private applyWinAttributes(osPath: string, agentPath: string, bits: number): void {
    const kept = restorableWinAttributes(bits);
    if (!this.windows || kept === 0) return;
    try {
      writeWinAttributes(osPath, kept);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      this.request.log('warning', `${agentPath}: could not set its Windows attributes 0x${kept.toString(16)} on ${osPath} (${why}); it is restored without them`);
    }
  }

  private async applyMode(
    osPath: string,
    agentPath: string,
    mode: number,
    apply: (osPath: string, mode: number) => Promise<void>,
  ): Promise<void> {
    try {
      await apply(osPath, mode & 0o7777);
    } catch (error) {
      if (IS_WINDOWS) return; // Windows keeps only a read-only bit; nothing worth failing for.
      this.request.log('warning', `${agentPath}: could not set mode ${(mode & 0o7777).toString(8)} on ${osPath} (${codeOf(error)})`);
    }
  }

  /** Close and remove the temporary file of an unfinished regular file. */
  private async discard(current: Extract<Current, { kind: 'regular' }>): Promise<void> {
    await current.handle.close().catch(() => undefined);
    await unlink(current.tempPath).catch((error: unknown) => {
      if (codeOf(error) !== 'ENOENT') this.request.log('warning', `${current.info.path}: could not remove ${current.tempPath} (${codeOf(error)})`);
    });
  }
}

