/**
 * The backup walk: each root depth-first, entries in byte order of their names (so two backups
 * of one tree list it identically; a name is its bytes, UTF-8 or not: platform/byte-names.ts), a
 * directory before its contents, symlinks never followed. Memory holds one directory listing per level plus fixed windows, whatever the tree
 * size, and nothing is listed, stat'ed or read more than those windows ahead of the engine.
 *
 * Many small files are the hard case: each costs several file system calls, and one after the
 * other they leave everything waiting on one file's latency at a time. So the walk works ahead of
 * the engine, in batches (io.ts: by default on the agent's own I/O thread), in two bounded windows
 * built on orderedMap (results in order, whatever order the work finishes in):
 *
 * 1. Metadata: the entries of the directory being walked are checked `batch` at a time (name,
 *    fileset, then lstat, and readlink for a symlink; on Windows, the attributes of a directory or
 *    regular file: win-attributes.ts), up to `statAhead` entries ahead of the walk.
 *    Warnings are logged, and directories listed, only when the walk reaches the entry in order:
 *    the engine sees the same files, warnings and errors, in the same order, as from a walk done
 *    one entry at a time. The fileset is still asked before lstat, and never about the contents of
 *    an excluded directory.
 * 2. Small files: the files listed, in groups of `batch`, up to `readAhead` files and `readBytes`
 *    bytes of content ahead of the engine; regular files of at most `smallFile` bytes that will be
 *    sent with data are read whole meanwhile (the same O_NOFOLLOW open, dev/inode check against
 *    the walk's lstat, and size+1 read as a live read; see file-stream.ts). Their data() replays
 *    that outcome, errors included, when the engine reaches them. Larger files are streamed when
 *    consumed, as before.
 *
 * The descent itself (directories entered, entries handed back in order, batches probed ahead) is
 * the walker serve's backup shares, tree-walk.ts; what is this agent's (byte order, the fileset
 * asked before lstat, the I/O thread, small files read ahead) is here.
 *
 * When the engine stops early (return()), the walk waits for the batches it started, then stops
 * the I/O thread: no file it opened is left open once return() has resolved.
 */
import path from 'node:path';
import { AgentfdError } from '../../errors.js';
import type { AgentFile, BackupRequest } from '../agent.js';
import { childAgentPath } from './agent-path.js';
import { preloadedStream, readFileStream, type ExpectedFile } from './file-stream.js';
import { fileType, processIo, statOne, threadIo, type StatResult, type WalkIo } from './io.js';
import type { BackupRoot } from './options.js';
import { orderedMap } from './ordered-map.js';
import { TreeWalk, namesInByteOrder } from './tree-walk.js';
import { decodeName } from '../../platform/byte-names.js';

export interface ReadAhead {
  /** Entries per batch of lstat calls, and files per group of small-file reads. */
  batch: number;
  /** Entries of a directory lstat'ed ahead of the walk (per directory level being walked). */
  statAhead: number;
  /** Files listed (and, if small, read) ahead of the engine. */
  readAhead: number;
  /** Bytes of read-ahead file content held at most (one group may go over when it is alone). */
  readBytes: number;
  /** Regular files up to this size are read ahead whole; larger ones are streamed when consumed. */
  smallFile: number;
  /** Run the batches on the agent's own I/O thread (true) or on the libuv thread pool. */
  thread: boolean;
  /** For tests: called once an entry has been lstat'ed, before anything opens it. */
  afterStat?: (osPath: string) => void;
}

export const READ_AHEAD: Readonly<ReadAhead> = Object.freeze({
  batch: 64,
  statAhead: 128,
  readAhead: 256,
  readBytes: 16 * 1024 * 1024,
  smallFile: 256 * 1024,
  thread: true,
});

/** An entry's lstat, symlink target and Windows attributes, as io.ts found them. */
type Stat = Extract<StatResult, { ok: true }>;

/** What the metadata window found about one directory entry. */
type Probe =
  | { kind: 'excluded' }
  | { kind: 'cancelled' }
  | { kind: 'failed'; osPath: string; error: unknown }
  | { kind: 'found'; osPath: string; agentPath: string; stat: Stat };

/** An entry in walk order: the file for the engine, and what reading it ahead needs. */
interface Listed {
  file: AgentFile;
  expected: ExpectedFile | null;
}

/** Consecutive entries whose small files are read in one batch; `error` ends the walk after them. */
interface Group {
  entries: Listed[];
  bytes: number;
  error?: { thrown: unknown };
}

/** A directory being walked: where it is, and its name for the engine. */
interface Dir {
  osPath: string;
  agentPath: string;
}

const EXCLUDED: Probe = { kind: 'excluded' };
const CANCELLED: Probe = { kind: 'cancelled' };

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
}

/** An error the walk reports and steps over (a file gone or unreadable), not a bug. */
function isFsError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException | undefined)?.code === 'string' && !(error instanceof AgentfdError);
}

function cancelledError(): AgentfdError {
  return new AgentfdError('E_CANCELLED', 'backup cancelled by request; the job saved nothing more');
}

/** Window settings as whole numbers of at least 1. */
function count(value: number): number {
  return Math.max(1, Math.floor(value));
}

export async function* walkRoots(
  roots: readonly BackupRoot[],
  request: BackupRequest,
  readAhead: Readonly<ReadAhead> = READ_AHEAD,
): AsyncGenerator<AgentFile> {
  const io = readAhead.thread ? threadIo() : processIo();
  const batch = count(readAhead.batch);
  const groupsAhead = count(readAhead.readAhead / batch);
  // A group closes early once it holds its share of readBytes, so that several stay in flight.
  const groupBytes = count(readAhead.readBytes / groupsAhead);
  const small = (entry: Listed): entry is Listed & { expected: ExpectedFile } =>
    entry.expected !== null && entry.expected.size <= readAhead.smallFile;

  async function* groups(): AsyncGenerator<Group> {
    let group: Group = { entries: [], bytes: 0 };
    try {
      for await (const entry of listRoots(roots, request, readAhead, io)) {
        group.entries.push(entry);
        if (small(entry)) group.bytes += entry.expected.size + 1;
        if (group.entries.length >= batch || group.bytes >= groupBytes) {
          yield group;
          group = { entries: [], bytes: 0 };
        }
      }
    } catch (thrown) {
      // The files listed before the failure still go to the engine first.
      group.error = { thrown };
    }
    if (group.entries.length > 0 || group.error) yield group;
  }

  const readGroup = async (group: Group): Promise<Group> => {
    const wanted = group.entries.filter(small);
    if (wanted.length === 0) return group;
    const outcomes = await io.read(wanted.map((entry) => entry.expected));
    wanted.forEach(({ file, expected }, i) => {
      const preloaded = outcomes[i]!;
      file.streams[0]!.data = () => preloadedStream(expected, preloaded, request.isCancelled);
    });
    return group;
  };

  try {
    const ready = orderedMap(groups(), readGroup, { window: groupsAhead, cost: (group) => group.bytes, maxCost: readAhead.readBytes });
    for await (const group of ready) {
      for (const { file } of group.entries) {
        // The walk checked when it listed the file, maybe a while ago: check again as it is
        // handed over, as a walk without read-ahead would just have done.
        if (request.isCancelled()) throw cancelledError();
        yield file;
      }
      if (group.error) throw group.error.thrown;
    }
  } finally {
    await io.close();
  }
}

/** The walk proper, in order, with the metadata window; files are not read here. */
async function* listRoots(roots: readonly BackupRoot[], request: BackupRequest, readAhead: Readonly<ReadAhead>, io: WalkIo): AsyncGenerator<Listed> {
  const incremental = request.level !== 'full';
  const batch = count(readAhead.batch);
  const batchesAhead = count(readAhead.statAhead / batch);
  const checkCancel = () => {
    if (request.isCancelled()) throw cancelledError();
  };

  /** The entry as the engine will see it, or null when it is skipped (with a warning). */
  const describe = (osPath: string, agentPath: string, stat: Stat): Listed | null => {
    const { st, target: rawTarget, winAttributes } = stat;
    // Here, not when probed: warnings reach the log in walk order.
    if (stat.winAttributesProblem !== null) {
      request.log('warning', `${osPath}: its Windows attributes could not be read (${stat.winAttributesProblem}); it is saved without them`);
    }
    // Object literals written out (not spread from a common base): this runs for every entry.
    const mode = st.mode & 0o7777;
    const unchanged = incremental && st.mtimeNs <= request.sinceNs && st.ctimeNs <= request.sinceNs;
    if (fileType.isDirectory(st)) {
      const file: AgentFile = { path: agentPath, kind: 'directory', linkTarget: null, mode, mtimeNs: st.mtimeNs, size: 0, winAttributes, seen: false, streams: [] };
      return { file, expected: null };
    }
    if (fileType.isSymbolicLink(st)) {
      // Names are bytes: a target that is not UTF-8 is kept as its bytes (platform/byte-names.ts).
      const target = rawTarget === null ? null : decodeName(rawTarget);
      // No attributes: a restore creates the link with symlink() and sets nothing else on it.
      const file: AgentFile = { path: agentPath, kind: 'symlink', linkTarget: target, mode, mtimeNs: st.mtimeNs, size: 0, winAttributes: 0, seen: unchanged, streams: [] };
      return { file, expected: null };
    }
    if (fileType.isFile(st)) {
      const { size } = st;
      if (unchanged) {
        const file: AgentFile = { path: agentPath, kind: 'regular', linkTarget: null, mode, mtimeNs: st.mtimeNs, size, winAttributes, seen: true, streams: [] };
        return { file, expected: null };
      }
      const expected: ExpectedFile = { osPath, agentPath, size, dev: st.dev, ino: st.ino };
      const file: AgentFile = {
        path: agentPath,
        kind: 'regular',
        linkTarget: null,
        mode,
        mtimeNs: st.mtimeNs,
        size,
        winAttributes,
        seen: false,
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
      return { file, expected };
    }
    request.log('warning', `${osPath}: skipped: it is ${fileType.name(st)}, which the filesystem agent does not save`);
    return null;
  };

  /**
   * The sorted entry names of a directory, or null (with a warning) when it cannot be listed. A
   * root that cannot be listed fails the job instead: nothing of it would be saved.
   */
  const list = async (osPath: string, isRoot: boolean): Promise<Buffer[] | null> => {
    try {
      return await namesInByteOrder(osPath);
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

  /**
   * What the walk needs about a batch of entries of one directory: the name checks and the fileset
   * first (an excluded entry is never stat'ed), then lstat. Runs ahead of the walk, so it only
   * records what to say: the walk logs it when it reaches the entry.
   */
  const probe = async (dir: Dir, raws: Buffer[]): Promise<Probe[]> => {
    const probes: Probe[] = [];
    const toStat: { at: number; osPath: string; agentPath: string }[] = [];
    for (const raw of raws) {
      if (request.isCancelled()) {
        probes.push(CANCELLED);
        continue;
      }
      // Names are bytes: one that is not UTF-8 keeps its bytes in the string (platform/byte-names.ts).
      const name = decodeName(raw);
      const osPath = path.join(dir.osPath, name);
      const agentPath = childAgentPath(dir.agentPath, name);
      if (!request.filesetCheck(agentPath)) {
        probes.push(EXCLUDED);
      } else {
        toStat.push({ at: probes.length, osPath, agentPath });
        probes.push(EXCLUDED); // replaced below
      }
    }
    const results = await io.stat(toStat.map((entry) => entry.osPath));
    toStat.forEach(({ at, osPath, agentPath }, i) => {
      const result = results[i]!;
      if (!result.ok) {
        probes[at] = { kind: 'failed', osPath, error: result.error };
      } else {
        readAhead.afterStat?.(osPath);
        probes[at] = { kind: 'found', osPath, agentPath, stat: result };
      }
    });
    return probes;
  };

  // The shared walker (tree-walk.ts) in byte order, `batch` entries per probe on the I/O thread,
  // `batchesAhead` batches ahead; a directory is listed before its contents, so leave steps are
  // of no use here.
  const tree = new TreeWalk<Dir, Buffer, Probe>({ probe, batch, ahead: batchesAhead });
  /** Descend into a directory already described: list it and start probing its entries. */
  const enter = async (osPath: string, agentPath: string, isRoot: boolean): Promise<void> => {
    const names = await list(osPath, isRoot);
    if (names !== null) tree.enter({ osPath, agentPath }, names);
  };

  try {
    for (const root of roots) {
      checkCancel();
      if (!request.filesetCheck(root.agentPath)) continue;
      let first: Listed | null;
      try {
        const result = await statOne(root.osPath);
        if (!result.ok) throw result.error;
        first = describe(root.osPath, root.agentPath, result);
        if (first?.file.kind === 'directory') await enter(root.osPath, root.agentPath, true);
      } catch (error) {
        throw isFsError(error) ? rootError(root.osPath, error) : error;
      }
      if (first) yield first;

      for (let step = await tree.next(); step !== null; step = await tree.next()) {
        if (step.kind === 'leave') continue;
        const found = step.entry;
        checkCancel();
        if (found.kind === 'excluded') continue;
        if (found.kind === 'cancelled') throw cancelledError();
        if (found.kind === 'failed') {
          if (!isFsError(found.error)) throw found.error;
          request.log('warning', `${found.osPath}: could not stat (${errorCode(found.error)}); it is not saved`);
          continue;
        }
        const entry = describe(found.osPath, found.agentPath, found.stat);
        if (entry === null) continue;
        if (entry.file.kind === 'directory') await enter(found.osPath, found.agentPath, false);
        yield entry;
      }
    }
  } finally {
    // Stopped early (or failed): let the batches in flight finish before the walk is over.
    await tree.close();
  }
}
