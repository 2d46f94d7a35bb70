/**
 * The filesystem agent's restore: the engine's startFile/write/endFile calls turned into files
 * under the target. Safe against a hostile backup and against others writing in the target while
 * it runs (nothing is ever written through a symlink or junction; on Linux and Windows every entry
 * is reached from the target opened once, see restore-fs.ts) and never leaves a half-written file under its final name: data goes to
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
import { AgentfdError } from '../../errors.js';
import type { RestoreRequest, RestoreRun } from '../agent.js';
import type { AgentFileInfo } from '../types.js';
import { IS_WINDOWS } from '../../platform/os.js';
import { WindowsNameClaims, planRestorePath, type MappedName } from './agent-path.js';
import { ioError, type RestoreFs, type WritableFile } from './restore-fs.js';
import { ConfinedRestoreFs } from './restore-fs-confined.js';
import { PathRestoreFs } from './restore-fs-paths.js';
import { CONFINED_WRITES } from '../../platform/os.js';
import { codeOf } from './safe-dirs.js';
import { nsToUtimesSeconds } from './times.js';
import { restorableWinAttributes, writeWinAttributes } from './win-attributes.js';

type Current =
  | { kind: 'skip'; info: AgentFileInfo }
  | { kind: 'directory'; info: AgentFileInfo; parts: string[] }
  | { kind: 'symlink'; info: AgentFileInfo; parts: string[]; target: string }
  | { kind: 'regular'; info: AgentFileInfo; parts: string[]; tempParts: string[]; handle: WritableFile; written: number };

interface DirTimes {
  parts: string[];
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

/** A temporary name next to `parts` (a long name is left out, to stay under NAME_MAX). */
function tempPartsFor(parts: readonly string[]): string[] {
  const name = parts[parts.length - 1]!;
  const random = randomBytes(6).toString('hex');
  const prefix = Buffer.byteLength(name) <= 200 ? `.${name}` : '';
  return [...parts.slice(0, -1), `${prefix}.agentfd-part-${random}`];
}

/** Open the target for the restore: confined on Linux and Windows, by checked paths elsewhere. */
async function openRestoreFs(target: string): Promise<RestoreFs> {
  return CONFINED_WRITES ? ConfinedRestoreFs.open(target) : PathRestoreFs.open(target);
}

export async function startFilesystemRestore(request: RestoreRequest, options: FilesystemRestoreOptions = {}): Promise<RestoreRun> {
  return new FilesystemRestore(await openRestoreFs(request.target), request, options.windows ?? IS_WINDOWS);
}

class FilesystemRestore implements RestoreRun {
  private readonly dirTimes: DirTimes[] = [];
  private current: Current | null = null;
  private closed = false;
  /** Windows only: where this run has written, compared as Windows compares names. */
  private readonly claims: WindowsNameClaims | null;
  /** The agent paths of the mapped names already logged: a directory's, once for all its files. */
  private readonly reported = new Set<string>();

  constructor(
    private readonly fs: RestoreFs,
    private readonly request: RestoreRequest,
    private readonly windows: boolean,
  ) {
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
      this.current = { kind: 'directory', info: file, parts: [] };
      return;
    }
    // Before anything is written: a refused path leaves no trace, not even its parents.
    this.claims?.claim(file.path, components);
    this.reportMapped(mapped);
    const parts = [...components];
    await this.fs.ensureParents(parts, file.path);
    switch (file.kind) {
      case 'directory':
        await this.fs.makeDirectory(parts, file.path);
        this.current = { kind: 'directory', info: file, parts };
        return;
      case 'symlink':
        if (file.linkTarget === null || file.linkTarget === '' || file.linkTarget.includes('\0')) {
          throw new AgentfdError('E_RESTORE_KIND', `${file.path}: a symlink without a usable target; the backup is damaged`);
        }
        this.current = { kind: 'symlink', info: file, parts, target: file.linkTarget };
        return;
      case 'regular': {
        const tempParts = tempPartsFor(parts);
        const handle = await this.fs.createFile(tempParts, file.path);
        this.current = { kind: 'regular', info: file, parts, tempParts, handle, written: 0 };
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
      throw ioError(current.info.path, `writing ${this.fs.osPath(current.tempParts)}`, error);
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
          parts: current.parts,
          agentPath: current.info.path,
          mode: current.info.mode,
          mtimeNs: current.info.mtimeNs,
          winAttributes: current.info.winAttributes,
          depth: current.parts.length,
        });
        return;
      case 'symlink':
        return this.fs.makeSymlink(current.parts, current.target, current.info.mtimeNs, current.info.path);
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
      await this.fs.setDirectory(dir.parts, dir.agentPath, dir.mode, dir.mtimeNs, (message) => this.request.log('warning', message));
      this.applyWinAttributes(this.fs.osPath(dir.parts), dir.agentPath, dir.winAttributes);
    }
    this.dirTimes.length = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const open = this.current;
    this.current = null;
    if (open?.kind === 'regular') await this.discard(open);
    this.fs.close();
  }

  // ---- helpers --------------------------------------------------------------------------------

  private checkOpen(call: string): void {
    if (this.closed) throw new AgentfdError('E_RESTORE_ORDER', `${call} after close: this restore is over`);
  }

  private async commit(current: Extract<Current, { kind: 'regular' }>): Promise<void> {
    const { info, handle, tempParts, parts } = current;
    try {
      if (info.size !== null && info.size !== current.written) {
        this.request.log('warning', `${info.path}: ${current.written} bytes restored where the backup recorded ${info.size}`);
      }
      await this.applyMode(info.path, info.mode, (m) => handle.chmod(m));
      await handle.utimes(Date.now() / 1000, nsToUtimesSeconds(info.mtimeNs));
      await handle.close();
    } catch (error) {
      await this.discard(current);
      throw ioError(info.path, `setting the mode and time of ${this.fs.osPath(tempParts)}`, error);
    }
    try {
      await this.fs.replace(tempParts, parts, info.path);
    } catch (error) {
      await this.fs.remove(tempParts);
      throw error;
    }
    this.applyWinAttributes(this.fs.osPath(parts), info.path, info.winAttributes);
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

  private async applyMode(agentPath: string, mode: number, apply: (mode: number) => Promise<void>): Promise<void> {
    try {
      await apply(mode & 0o7777);
    } catch (error) {
      if (IS_WINDOWS) return; // Windows keeps only a read-only bit; nothing worth failing for.
      this.request.log('warning', `${agentPath}: could not set mode ${(mode & 0o7777).toString(8)} (${codeOf(error)})`);
    }
  }

  /** Close and remove the temporary file of an unfinished regular file. */
  private async discard(current: Extract<Current, { kind: 'regular' }>): Promise<void> {
    await current.handle.close().catch(() => undefined);
    const problem = await this.fs.remove(current.tempParts);
    if (problem !== null) this.request.log('warning', `${current.info.path}: could not remove ${this.fs.osPath(current.tempParts)} (${problem})`);
  }
}

