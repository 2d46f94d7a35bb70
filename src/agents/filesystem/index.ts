/**
 * The built-in filesystem agent: the ordinary backup of directories, served through the same Agent
 * interface as native and Bacula agents, so the job engine has one code path for all of them.
 *
 * Job option: `paths`, absolute directories joined with path.delimiter (see options.ts).
 * Backup: walk.ts on tree-walk.ts (lazy, sorted, symlinks not followed, with bounded read-ahead: ordered-map.ts,
 * and batches of file system calls on the agent's own I/O thread: io.ts, fs-worker.ts) and
 * file-stream.ts (the data: small files read ahead whole, large ones streamed).
 * Restore: restore.ts, confined to the target by restore-fs.ts (openat-relative on Linux, pinned directories on Windows, safe-dirs.ts elsewhere).
 * Agent paths: agent-path.ts (POSIX paths as they are; Windows `C:\a\b` is "/C:/a/b").
 */
import { lstat } from 'node:fs/promises';
import type { Agent, BackupRequest, BackupRun, RestoreRequest, RestoreRun } from '../agent.js';
import type { Capability } from '../types.js';
import { AgentfdError } from '../../errors.js';
import { HOST_VERSION } from '../../version.js';
import { parseRoots } from './options.js';
import { startFilesystemRestore } from './restore.js';
import { walkRoots } from './walk.js';

export const FILESYSTEM_AGENT_NAME = 'filesystem';
const CAPABILITIES: readonly Capability[] = Object.freeze(['full', 'incremental', 'differential', 'restore', 'accurate']);

export function createFilesystemAgent(): Agent {
  return {
    name: FILESYSTEM_AGENT_NAME,
    version: HOST_VERSION,
    abi: 0,
    kind: 'builtin',
    capabilities: CAPABILITIES,
    backup: startBackup,
    restore: (request: RestoreRequest): Promise<RestoreRun> => startFilesystemRestore(request),
  };
}

async function startBackup(request: BackupRequest): Promise<BackupRun> {
  const { roots, dropped } = parseRoots(request.options);
  for (const note of dropped) request.log('info', `backup root ${note}: not listed twice`);
  // Fail before the first byte when a root is missing: a backup of nothing must not succeed.
  // (The walk checks again, for a root that disappears while earlier roots are saved.)
  for (const root of roots) {
    try {
      await lstat(root.osPath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      const message = `backup root ${root.osPath} cannot be read (${code}); check the "paths" option, that the directory exists and that agentfd may read it`;
      request.log('error', message);
      throw new AgentfdError('E_SOURCE', message, { cause: error });
    }
  }
  const files = walkRoots(roots, request);
  return {
    deliveredLevel: request.level,
    files,
    state: () => null,
    finish: async () => {},
    // A walk the engine left unfinished stops here: its read-ahead settles and its I/O thread ends.
    close: async () => {
      await files.return(undefined);
    },
  };
}
