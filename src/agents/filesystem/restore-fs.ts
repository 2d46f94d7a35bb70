/**
 * The filesystem agent's restore writes, behind one interface with the same results and messages
 * on every system:
 *
 * - ConfinedRestoreFs (restore-fs-confined.ts; Linux and Windows): every entry is reached from the
 *   target opened once, never by a path checked earlier: relative to open directories on Linux
 *   (src/platform/confined-target.ts), through pinned directories on Windows
 *   (src/platform/pinned-target.ts). A directory that someone swaps for a link while the restore
 *   runs refuses the next entry below it (E_RESTORE_PATH, the restore reports it) instead of
 *   leading it outside.
 * - PathRestoreFs (restore-fs-paths.ts; other systems, which agentfd does not test): paths below
 *   the realpath'ed target, each parent checked first (safe-dirs.ts). This guards against links
 *   restored or planted before the restore, not against one swapped in between.
 */
import { AgentfdError } from '../../errors.js';
import type { ConfinedError } from '../../platform/confined-target.js';
import { codeOf } from './safe-dirs.js';

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

/** A rename over `toPath` that what is there refuses (a directory, say), else null. */
export function inTheWay(agentPath: string, toPath: string, code: string | undefined, cause: unknown): AgentfdError | null {
  if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EPERM') return null;
  return new AgentfdError('E_RESTORE_PATH', `restore of ${agentPath} refused: ${toPath} is in the way (${code}); remove it or restore elsewhere`, { cause });
}

/** A confined call that would have left the target. */
export function refusedError(agentPath: string, error: ConfinedError): AgentfdError {
  return new AgentfdError('E_RESTORE_PATH', `restore of ${agentPath} refused: ${error.message}`, { cause: error });
}

/** The symlink's place is taken by a directory, which a restore never replaces. */
export function directoryInTheWay(agentPath: string, osPath: string): AgentfdError {
  return new AgentfdError('E_RESTORE_PATH', `restore of the symlink ${agentPath} refused: the directory ${osPath} is in the way; remove it or restore elsewhere`);
}

export function targetError(target: string, error: unknown): AgentfdError {
  return new AgentfdError(
    'E_RESTORE_PATH',
    `restore target ${target} cannot be used as a directory (${codeOf(error)}); give a directory agentfd may create or write`,
    { cause: error },
  );
}
