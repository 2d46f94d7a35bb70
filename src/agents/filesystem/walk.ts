/**
 * The backup walk: each root depth-first, entries in byte order of their UTF-8 names (so two
 * backups of one tree list it identically), a directory before its contents, symlinks never
 * followed. It is an async generator over an explicit stack: nothing is read before the engine
 * asks for the next file, and memory holds one directory listing per level, whatever the tree size.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { AgentfdError } from '../../errors.js';
import type { AgentFile, BackupRequest } from '../agent.js';
import { childAgentPath } from './agent-path.js';
import { readFileStream } from './file-stream.js';
import type { BackupRoot } from './options.js';

interface Frame {
  osPath: string;
  agentPath: string;
  names: Buffer[];
  next: number;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The name as a string, or null when it is not valid UTF-8 (an agent path must be). */
function decodeName(raw: Buffer): string | null {
  try {
    return UTF8.decode(raw);
  } catch {
    return null;
  }
}

function typeName(st: BigIntStats): string {
  if (st.isSocket()) return 'a socket';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'of an unknown type';
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
}

/** An error the walk reports and steps over (a file gone or unreadable), not a bug. */
function isFsError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException | undefined)?.code === 'string' && !(error instanceof AgentfdError);
}

export async function* walkRoots(roots: readonly BackupRoot[], request: BackupRequest): AsyncGenerator<AgentFile> {
  const incremental = request.level !== 'full';
  const checkCancel = () => {
    if (request.isCancelled()) throw new AgentfdError('E_CANCELLED', 'backup cancelled by request; the job saved nothing more');
  };

  /** The AgentFile for an entry already lstat'ed, or null when it is skipped. */
  const describe = async (osPath: string, agentPath: string, st: BigIntStats): Promise<AgentFile | null> => {
    const base = {
      path: agentPath,
      mode: Number(st.mode & 0o7777n),
      mtimeNs: st.mtimeNs,
      winAttributes: 0,
      seen: false,
    };
    const unchanged = incremental && st.mtimeNs <= request.sinceNs && st.ctimeNs <= request.sinceNs;
    if (st.isDirectory()) return { ...base, kind: 'directory', linkTarget: null, size: 0, streams: [] };
    if (st.isSymbolicLink()) {
      const raw = await readlink(osPath, { encoding: 'buffer' });
      const target = decodeName(raw);
      if (target === null) {
        request.log('warning', `${osPath}: skipped: the symlink target is not valid UTF-8`);
        return null;
      }
      return { ...base, kind: 'symlink', linkTarget: target, size: 0, seen: unchanged, streams: [] };
    }
    if (st.isFile()) {
      const size = Number(st.size);
      if (unchanged) return { ...base, kind: 'regular', linkTarget: null, size, seen: true, streams: [] };
      const expected = { osPath, agentPath, size, dev: st.dev, ino: st.ino };
      return {
        ...base,
        kind: 'regular',
        linkTarget: null,
        size,
        streams: [
          {
            index: 0,
            type: 'data',
            name: 'data',
            sizeHint: size,
            rawRestorable: false,
            data: () => readFileStream(expected, request.isCancelled),
          },
        ],
      };
    }
    request.log('warning', `${osPath}: skipped: it is ${typeName(st)}, which the filesystem agent does not save`);
    return null;
  };

  /**
   * The sorted entry names of a directory, or null (with a warning) when it cannot be listed. A
   * root that cannot be listed fails the job instead: nothing of it would be saved.
   */
  const list = async (osPath: string, isRoot: boolean): Promise<Buffer[] | null> => {
    try {
      const names = await readdir(osPath, { encoding: 'buffer' });
      return names.sort(Buffer.compare);
    } catch (error) {
      if (!isFsError(error)) throw error;
      if (isRoot) throw rootError(osPath, error);
      request.log('warning', `${osPath}: could not read the directory (${errorCode(error)}); its contents are not saved`);
      return null;
    }
  };

  const rootError = (osPath: string, error: unknown): AgentfdError => {
    const message = `backup root ${osPath} cannot be read (${errorCode(error)}); check the "paths" option, that the directory exists and that agentfd may read it`;
    request.log('error', message);
    return new AgentfdError('E_SOURCE', message, { cause: error });
  };

  for (const root of roots) {
    checkCancel();
    if (!request.filesetCheck(root.agentPath)) continue;
    let rootStat: BigIntStats;
    try {
      rootStat = await lstat(root.osPath, { bigint: true });
    } catch (error) {
      throw rootError(root.osPath, error);
    }
    const stack: Frame[] = [];
    const visit = async (osPath: string, agentPath: string, st: BigIntStats, isRoot = false): Promise<AgentFile | null> => {
      const file = await describe(osPath, agentPath, st);
      if (file?.kind === 'directory') {
        const names = await list(osPath, isRoot);
        if (names) stack.push({ osPath, agentPath, names, next: 0 });
      }
      return file;
    };

    let first: AgentFile | null;
    try {
      first = await visit(root.osPath, root.agentPath, rootStat, true);
    } catch (error) {
      throw isFsError(error) ? rootError(root.osPath, error) : error;
    }
    if (first) yield first;

    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const raw = frame.names[frame.next++];
      if (raw === undefined) {
        stack.pop();
        continue;
      }
      checkCancel();
      const osPath = path.join(frame.osPath, raw.toString('utf8'));
      const name = decodeName(raw);
      if (name === null) {
        request.log('warning', `${osPath}: skipped: the file name is not valid UTF-8`);
        continue;
      }
      if (name.includes('\\')) {
        request.log('warning', `${osPath}: skipped: the file name holds a backslash, which agent paths cannot carry`);
        continue;
      }
      const agentPath = childAgentPath(frame.agentPath, name);
      if (!request.filesetCheck(agentPath)) continue;
      let file: AgentFile | null;
      try {
        const st = await lstat(osPath, { bigint: true });
        file = await visit(osPath, agentPath, st);
      } catch (error) {
        if (!isFsError(error)) throw error;
        request.log('warning', `${osPath}: could not stat (${errorCode(error)}); it is not saved`);
        continue;
      }
      if (file) yield file;
    }
  }
}
