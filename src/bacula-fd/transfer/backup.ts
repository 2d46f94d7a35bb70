/**
 * A Bacula backup of a file tree, as a 9.6 File Daemon sends it to the Storage Daemon
 * (filed/backup.c, findlib/find_one.c): per file a FileIndex, then its attributes record (stream
 * 1), its data in frames of at most 64 KiB (stream 2, or 4 with each frame an independent zlib
 * stream when the FileSet asks for GZIP; with sparse = yes, 6 or 7: each frame an 8-byte offset
 * then the data, all-zero blocks left out), with aclsupport / xattrsupport its ACL and xattr
 * streams (1008, 1007, 1998: xacl.ts), and the digest its `signature =` names. A directory's
 * record comes after its contents, its name ending in '/', as the real FD sends it. A file's
 * further hard links are sent as FT_LNKSAVED records pointing at the first; fifos and device nodes
 * as FT_SPEC (or read, for a fifo or block device named by a File line with readfifo = yes or
 * raw); sockets are skipped, as bacula-fd skips them.
 */
import { createHash, type Hash } from 'node:crypto';
import { lstat, open, opendir, readlink, stat, utimes, type FileHandle } from 'node:fs/promises';
import { constants, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { messageOf } from '../../errors.js';
import { FT, STREAM, encodeAttributes, encodeLStat, statFromNode } from '../attributes/lstat.js';
import { traceAcceptFile, accurateOptions, ignoreDirMarker, topLevelOptions, type FileSet, type IncludeBlock, type IncludeOptions } from '../fileset/fileset.js';
import type { AccurateList } from './accurate.js';
import type { StorageDaemon } from './storage-daemon.js';
import type { BackupRun as AgentBackupRun } from '../../agents/agent.js';
import type { AgentFile } from '../../agents/agent.js';
import type { Level } from '../../agents/types.js';
import { pluginNameOf } from '../../agents/bacula-plugin/command.js';
import { startPluginBackup, type PluginAgents } from './plugin-agents.js';
import type { BaculaStat } from '../attributes/lstat.js';
import { openFifo, setAccessTime } from '../attributes/special-files.js';
import { XaclBackup } from '../attributes/xacl.js';
import { baculaName, childName, lstatMode } from '../attributes/windows.js';

/** The real FD's default Maximum Network Buffer Size: the data frame size. */
const FRAME = 64 * 1024;
/** A sparse frame starts with the block's file offset, 8 bytes big-endian (OFFSET_FADDR_SIZE)... */
const OFFSET_SIZE = 8;
/** ...so bacula-fd reads blocks of 65,528 bytes then, and these are the blocks it may skip. */
const SPARSE_BLOCK = FRAME - OFFSET_SIZE;
const ZEROS = Buffer.alloc(FRAME);

export interface BackupTotals {
  files: number;
  /** File bytes read. */
  readBytes: number;
  /** Bytes sent as data (after compression). */
  jobBytes: number;
  errors: string[];
  /** The agents' backups (Plugin lines), to be told whether the job was committed. */
  pluginRuns: AgentBackupRun[];
}

/** Where a backup's streams go: the Storage Daemon, or an estimate's counter. */
export type StreamSink = Pick<StorageDaemon, 'sendStream'>;

export interface BackupRun {
  sd: StreamSink;
  /** An estimate: Plugin lines are not run (their agents would have to produce their data). */
  skipPlugins?: boolean;
  fileset: FileSet;
  /** Incremental or differential: files whose mtime and ctime are both older are skipped. Seconds. */
  since: bigint | null;
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
  isCancelled: () => boolean;
  /** Agents for the FileSet's Plugin lines, and the job they run for. */
  plugins?: { agents: PluginAgents; level: Level; jobName: string; jobId: number };
  /** How long a readfifo fifo may wait for its writer (bacula-fd: 60 s; tests shorten it). */
  fifoOpenTimeoutMs?: number;
  /** Accurate mode: the previous jobs' files, sent by the Director (incremental/differential). */
  accurate?: AccurateList;
}

/** An FT_DELETED record's stat: zeros but for the times the file had (accurate.c). */
function statFromZero(mtime: bigint, ctime: bigint): BaculaStat {
  return {
    dev: 0n, ino: 0n, mode: 0, nlink: 0n, uid: 0, gid: 0, rdev: 0n, size: 0n, blksize: 0n, blocks: 0n,
    atime: 0n, mtime, ctime, linkFI: 0, flags: 0, dataStream: 0,
  };
}

const DIGESTS = {
  md5: { algorithm: 'md5', stream: STREAM.MD5_DIGEST },
  sha1: { algorithm: 'sha1', stream: STREAM.SHA1_DIGEST },
  sha256: { algorithm: 'sha256', stream: STREAM.SHA256_DIGEST },
  sha512: { algorithm: 'sha512', stream: STREAM.SHA512_DIGEST },
} as const;


/** What a later hard link to a sent file needs (find_one.c's f_link). */
interface SavedFile {
  fileIndex: number;
  /** The file's digest, sent again after each of its hard links. */
  digest: { stream: number; value: Buffer } | null;
}

interface SavedLink extends SavedFile {
  /** The first name the file was sent under: the link of its FT_LNKSAVED records. */
  name: string;
}

/**
 * The data stream of a FileSet's options (findlib/attribs.c select_data_stream). Every record's
 * LStat names it, directories and links too, so it does not depend on the file.
 */
export function dataStreamFor(options: Pick<IncludeOptions, 'sparse' | 'gzip'>): number {
  if (options.sparse) return options.gzip !== null ? STREAM.SPARSE_GZIP_DATA : STREAM.SPARSE_DATA;
  return options.gzip !== null ? STREAM.GZIP_DATA : STREAM.FILE_DATA;
}

/**
 * Open for reading; with noatime, O_NOATIME where the kernel allows it (only the owner or root may
 * ask for it: bacula-fd's bopen ignores that refusal, EPERM, and reads anyway).
 */
async function openForRead(p: string, noAtime: boolean): Promise<FileHandle> {
  const noAtimeFlag = constants.O_NOATIME ?? 0;
  if (noAtime && noAtimeFlag !== 0) {
    try {
      return await open(p, constants.O_RDONLY | noAtimeFlag);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
    }
  }
  return open(p, constants.O_RDONLY);
}

/**
 * keepatime: put back the access time our read changed. Only the atime, so the mtime stays exact
 * (bacula-fd's utime() rewrites both, to whole seconds). The ctime changes either way, so with
 * keepatime an incremental sends such files again unless mtimeonly is set, as with bacula-fd.
 * Failures are ignored, as bacula-fd ignores utime()'s.
 */
async function putBackAccessTime(p: string, st: BigIntStats): Promise<void> {
  try {
    setAccessTime(p, st.atimeNs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSYS') return;
    // No utimensat here (not Linux): both times, as bacula-fd sets them.
    await utimes(p, Number(st.atimeMs) / 1000, Number(st.mtimeMs) / 1000).catch(() => undefined);
  }
}

function allZero(data: Buffer): boolean {
  return data.equals(ZEROS.subarray(0, data.length));
}

interface FrameOptions {
  sparse: boolean;
  gzip: number | null;
  /** The size the LStat gives: blocks that end at or past it are always sent. */
  size: bigint;
  /** Raw devices and fifos (size 0): every block may be skipped. */
  checkEveryBlock: boolean;
  hash: Hash | null;
  read: (bytes: number) => void;
}

/**
 * A file's data as send_data frames it: one frame per read. With sparse, each read is 65,528 bytes
 * and its frame starts with its file offset, and a read that is all zeros is not sent when it is
 * whole and ends before the file's size: the last block is always sent, which is how a restore
 * gets the size right. A skipped block is neither digested nor counted as read, as in bacula-fd.
 * (For a fifo bacula-fd tests its whole read buffer, stale bytes after a short read included; here
 * only the bytes read are tested.)
 */
async function* dataFrames(handle: FileHandle, o: FrameOptions): AsyncGenerator<Buffer> {
  const start = o.sparse ? OFFSET_SIZE : 0;
  const length = o.sparse ? SPARSE_BLOCK : FRAME;
  let offset = 0n;
  for (;;) {
    const buffer = Buffer.allocUnsafe(FRAME); // handed to the socket: not reused
    const { bytesRead } = await handle.read(buffer, start, length, null);
    if (bytesRead === 0) return;
    const plain = buffer.subarray(start, start + bytesRead);
    const at = offset;
    offset += BigInt(bytesRead);
    if (o.sparse && (o.checkEveryBlock || (bytesRead === length && offset < o.size)) && allZero(plain)) continue;
    o.hash?.update(plain);
    o.read(bytesRead);
    if (!o.sparse) {
      yield o.gzip !== null ? deflateSync(plain, { level: o.gzip }) : plain;
    } else if (o.gzip === null) {
      buffer.writeBigUInt64BE(at, 0);
      yield buffer.subarray(0, OFFSET_SIZE + bytesRead);
    } else {
      const head = Buffer.allocUnsafe(OFFSET_SIZE);
      head.writeBigUInt64BE(at, 0);
      yield Buffer.concat([head, deflateSync(plain, { level: o.gzip })]);
    }
  }
}

export function newTotals(): BackupTotals {
  return { files: 0, readBytes: 0, jobBytes: 0, errors: [], pluginRuns: [] };
}

/**
 * Send every file the FileSet names (File lines, then Plugin lines through their agents) to the SD,
 * counting into `totals` (which keeps what was done if this throws).
 */
export async function sendBackup(run: BackupRun, totals: BackupTotals = newTotals()): Promise<BackupTotals> {
  let fileIndex = 0;
  const problem = (message: string) => {
    totals.errors.push(message);
    run.log('error', message);
  };

  const sendAttributes = async (index: number, type: number, fname: string, st: BigIntStats, link: string, options: IncludeOptions, linkFI = 0) => {
    const stat = statFromNode(st, dataStreamFor(options), linkFI);
    stat.mode = lstatMode(stat.mode); // Windows: directories get 'x' (windows.ts)
    const lstat = encodeLStat(stat);
    // Stream 1 with no attribsEx on Windows too, not a Windows bacula-fd's stream 5 (windows.ts).
    // (An earlier agentfd sent its Windows attributes as stream 19, which is STREAM_SIGNED_DIGEST,
    // and the Director rightly did not catalog them; stream 5 from agentfd is not yet tried.)
    const record = encodeAttributes({ fileIndex: index, type, fname, lstat, link, attribsEx: '', deltaSeq: 0 });
    await run.sd.sendStream(index, STREAM.UNIX_ATTRIBUTES, 0, [record]);
  };

  const xacl = new XaclBackup((message) => run.log('warning', message));

  /**
   * aclsupport / xattrsupport: the entry's ACL and xattr streams (xacl.ts), after its data and
   * before its digest as save_file sends them, counted as job bytes as bacula-fd counts them.
   */
  const sendXacl = async (index: number, p: string, type: number, options: IncludeOptions) => {
    if (!options.acl && !options.xattr) return;
    for (const { stream, data } of xacl.streamsOf(p, type, options)) totals.jobBytes += await run.sd.sendStream(index, stream, 0, [data]);
  };

  /** Incremental test of find_one.c's check_changes: mtime, and ctime unless mtimeonly. */
  const changed = (st: BigIntStats, options: IncludeOptions) =>
    run.since === null || st.mtimeMs / 1000n >= run.since || (!options.mtimeOnly && st.ctimeMs / 1000n >= run.since);

  /** The data frames of one file, counting what was read into the totals. */
  const fileFrames = (handle: FileHandle, st: BigIntStats, options: IncludeOptions, hash: Hash | null, checkEveryBlock: boolean) =>
    dataFrames(handle, { sparse: options.sparse, gzip: options.gzip, size: st.size, checkEveryBlock, hash, read: (n) => (totals.readBytes += n) });

  /**
   * A regular file (FT_REG, or FT_REGE when empty and world-readable, as find_one.c) or a block
   * device named by a File line (FT_RAW, read whole: stat gives it size 0): attributes, data,
   * digest. What a later hard link to it needs, or null when it was not sent.
   */
  const sendFile = async (p: string, st: BigIntStats, options: IncludeOptions, type: number): Promise<SavedFile | null> => {
    // bacula-fd reads only files with data (and raw devices); they are opened before anything is
    // sent, so a file that cannot be read is reported, not half-sent.
    let handle: FileHandle | null = null;
    if (type === FT.RAW || st.size > 0n) {
      try {
        handle = await openForRead(p, options.noAtime);
      } catch (error) {
        problem(`Cannot open "${p}": ${messageOf(error)}`);
        return null;
      }
    }
    try {
      const index = ++fileIndex;
      await sendAttributes(index, type, p, st, '', options);
      const digest = options.digest ? DIGESTS[options.digest] : null;
      const hash: Hash | null = digest ? createHash(digest.algorithm) : null;
      if (handle) totals.jobBytes += await run.sd.sendStream(index, dataStreamFor(options), st.size, fileFrames(handle, st, options, hash, type === FT.RAW));
      await sendXacl(index, p, type, options);
      let saved: SavedFile['digest'] = null;
      if (digest && hash) {
        saved = { stream: digest.stream, value: hash.digest() };
        await run.sd.sendStream(index, saved.stream, 0, [saved.value]);
      }
      totals.files++;
      return { fileIndex: index, digest: saved };
    } finally {
      await handle?.close();
    }
  };

  /**
   * A fifo named by a File line with readfifo = yes (FT_FIFO): what a writer sends through it,
   * without digest (bacula-fd makes none for fifos). It is opened only when its data is read, so
   * an estimate, which reads none, never waits for a writer.
   */
  const sendFifo = async (p: string, st: BigIntStats, options: IncludeOptions): Promise<SavedFile> => {
    const index = ++fileIndex;
    await sendAttributes(index, FT.FIFO, p, st, '', options);
    const data = async function* () {
      let handle: FileHandle;
      try {
        handle = await openFifo(p, 'read', run.fifoOpenTimeoutMs);
      } catch (error) {
        problem(`Cannot open "${p}": ${messageOf(error)}`);
        return;
      }
      try {
        yield* fileFrames(handle, st, options, null, true);
      } finally {
        await handle.close();
      }
    };
    totals.jobBytes += await run.sd.sendStream(index, dataStreamFor(options), st.size, data());
    await sendXacl(index, p, FT.FIFO, options);
    totals.files++;
    return { fileIndex: index, digest: null };
  };

  /** A fifo or device node saved as what it is (FT_SPEC): attributes only, rdev in the LStat. */
  const sendSpecial = async (p: string, st: BigIntStats, options: IncludeOptions): Promise<SavedFile> => {
    const index = ++fileIndex;
    await sendAttributes(index, FT.SPEC, p, st, '', options);
    await sendXacl(index, p, FT.SPEC, options);
    totals.files++;
    return { fileIndex: index, digest: null };
  };

  /**
   * A further name of a file already sent (FT_LNKSAVED): its own attributes, the first name as the
   * link and that file's FileIndex as LinkFI, no data, and the first file's digest again (as
   * crypto.c sends it for a hard link).
   */
  const sendLinkSaved = async (p: string, st: BigIntStats, first: SavedLink, options: IncludeOptions) => {
    const index = ++fileIndex;
    await sendAttributes(index, FT.LNKSAVED, p, st, first.name, options, first.fileIndex);
    await sendXacl(index, p, FT.LNKSAVED, options);
    if (first.digest) await run.sd.sendStream(index, first.digest.stream, 0, [first.digest.value]);
    totals.files++;
  };

  /** Files seen with more than one link, by device and inode (find_one.c's linkhash), for the whole job. */
  const links = new Map<string, SavedLink>();

  /** Anything but a directory or symlink: a hard link to something sent, or the thing itself. */
  const sendEntry = async (p: string, st: BigIntStats, options: IncludeOptions, top: boolean) => {
    const key = options.hardlinks && st.nlink > 1n ? `${st.dev}:${st.ino}` : null;
    const first = key === null ? undefined : links.get(key);
    if (first) {
      // The same name twice (a File line repeated) is skipped, as bacula-fd does.
      if (first.name !== p) await sendLinkSaved(p, st, first, options);
      return;
    }
    let sent: SavedFile | null;
    if (st.isFile()) {
      sent = await sendFile(p, st, options, st.size === 0n && (Number(st.mode) & 0o444) === 0o444 ? FT.REGE : FT.REG);
      if (options.keepAtime) await putBackAccessTime(p, st);
    } else if (top && st.isBlockDevice()) sent = await sendFile(p, st, options, FT.RAW);
    else if (top && st.isFIFO() && options.readFifo) sent = await sendFifo(p, st, options);
    else sent = await sendSpecial(p, st, options);
    if (key !== null && sent) links.set(key, { name: p, ...sent });
  };

  /**
   * Whether an entry goes into this job: accurate mode compares it with the Director's list (and
   * marks it met); otherwise an incremental compares its times with the since-time.
   */
  const mustSave = async (p: string, st: BigIntStats, options: IncludeOptions, block: IncludeBlock): Promise<boolean> => {
    if (!run.accurate) return changed(st, options);
    const name = st.isDirectory() && !p.endsWith('/') ? `${p}/` : p;
    return run.accurate.mustSave(name, st, accurateOptions(block), options.digest, st.isFile());
  };

  /** The Options block bacula-fd's flags were last set from while matching this Include block's files. */
  let leftOver: IncludeOptions | null = null;

  /** Exclude Dir Containing: a directory holding the block's marker is skipped whole. */
  const holdsMarker = async (dir: string, block: IncludeBlock): Promise<boolean> => {
    const marker = ignoreDirMarker(block);
    if (marker === null) return false;
    return stat(path.join(dir, marker)).then(() => true, () => false);
  };

  /**
   * One entry of the walk (find_one.c). A File entry (`top`) is saved whatever the patterns say and
   * always descended into; below it each entry is matched by acceptFile, and a directory it rejects
   * is neither saved nor descended into. `parentDev` decides onefs (the parent's device, as Bacula;
   * null for a File entry, which is always descended into).
   */
  const walk = async (p: string, parentDev: bigint | null, options: IncludeOptions, block: IncludeBlock, top: boolean): Promise<void> => {
    if (run.isCancelled()) return;
    let st: BigIntStats;
    try {
      st = await lstat(p, { bigint: true });
    } catch (error) {
      problem(`Could not stat "${p}": ${messageOf(error)}`);
      return;
    }
    if (!top) {
      const traced = traceAcceptFile(block, run.fileset, p, st.isDirectory());
      if (traced.left) leftOver = traced.left;
      if (traced.options === null) return;
      options = traced.options;
    }
    if (st.isDirectory()) {
      if (await holdsMarker(p, block)) return;
      const descend = top || (!options.noRecursion && (options.crossFilesystems || st.dev === parentDev));
      if (descend) {
        let names: string[] = [];
        try {
          const dir = await opendir(p);
          for await (const entry of dir) names.push(entry.name);
        } catch (error) {
          problem(`Could not open directory "${p}": ${messageOf(error)}`);
          names = [];
        }
        // In the order the directory gives them (readdir), unsorted as bacula-fd walks: FileIndexes,
        // which hard link comes first and the options left over for the next File entry (see
        // traceAcceptFile) then come out as the real FD's on the same file system.
        // childName: path.join on Linux; '/' on Windows, the names a Windows bacula-fd sends (windows.ts).
        for (const name of names) await walk(childName(p, name), st.dev, options, block, false);
      } else if (!options.crossFilesystems && st.dev !== parentDev) {
        run.log('info', `"${p}" is a different filesystem. Will not descend from "${path.dirname(p)}" into it.`);
      }
      // The directory itself after its contents, named with a trailing slash (FT_DIREND).
      if (await mustSave(p, st, options, block)) {
        const index = ++fileIndex;
        await sendAttributes(index, FT.DIREND, p.endsWith('/') ? p : `${p}/`, st, '', options);
        await sendXacl(index, p, FT.DIREND, options);
        totals.files++;
      }
      if (options.keepAtime) await putBackAccessTime(p, st);
      return;
    }
    if (!(await mustSave(p, st, options, block))) return;
    if (st.isSymbolicLink()) {
      const index = ++fileIndex;
      await sendAttributes(index, FT.LNK, p, st, await readlink(p), options);
      await sendXacl(index, p, FT.LNK, options);
      totals.files++;
      return;
    }
    if (st.isSocket()) {
      // save_file: "Socket file skipped" (M_SKIPPED), and nothing is sent.
      run.log('info', `Socket file skipped: ${p}`);
      return;
    }
    await sendEntry(p, st, options, top);
  };

  /**
   * Accurate mode, at the end: every listed file this job did not meet is reported as FT_DELETED
   * (accurate_send_deleted_list): its name, and of its stat only the times it had.
   */
  const sendDeleted = async (): Promise<number> => {
    let deleted = 0;
    for (const gone of run.accurate?.unseen() ?? []) {
      if (run.isCancelled()) break;
      const index = ++fileIndex;
      const zero = statFromZero(gone.stat.mtime, gone.stat.ctime);
      const record = encodeAttributes({ fileIndex: index, type: FT.DELETED, fname: gone.name, lstat: encodeLStat(zero), link: '', attribsEx: '', deltaSeq: 0 });
      await run.sd.sendStream(index, STREAM.UNIX_ATTRIBUTES, 0, [record]);
      totals.files++;
      deleted++;
    }
    return deleted;
  };

  /** An agent file, bracketed by STREAM_PLUGIN_NAME records as bacula-fd sends a plugin's files. */
  const sendAgentFile = async (command: string, file: AgentFile, options: IncludeOptions) => {
    if (file.streams.length > 1) {
      problem(`${file.path}: ${file.streams.length} streams; agentfd serve saves agent files of one stream only so far`);
      for (const stream of file.streams) for await (const _ of stream.data());
      return;
    }
    const index = ++fileIndex;
    await run.sd.sendStream(index, STREAM.PLUGIN_NAME, 0, [Buffer.from(`${index} 1 1 ${command}\0`)]);
    const dataStream = options.gzip !== null ? STREAM.GZIP_DATA : STREAM.FILE_DATA;
    const seconds = file.mtimeNs / 1_000_000_000n;
    const typeBits = file.kind === 'directory' ? 0o040000 : file.kind === 'symlink' ? 0o120000 : 0o100000;
    const size = BigInt(file.size ?? 0);
    const stat: BaculaStat = {
      dev: 0n, ino: 0n, mode: typeBits | file.mode, nlink: 1n, uid: 0, gid: 0, rdev: 0n, size, blksize: 4096n, blocks: (size + 511n) / 512n,
      atime: seconds, mtime: seconds, ctime: seconds, linkFI: 0, flags: 0, dataStream,
    };
    const type = file.kind === 'directory' ? FT.DIREND : file.kind === 'symlink' ? FT.LNK : file.streams.length > 0 ? FT.REG : FT.REGE;
    const fname = file.kind === 'directory' ? `${file.path}/` : file.path;
    const record = encodeAttributes({ fileIndex: index, type, fname, lstat: encodeLStat(stat), link: file.linkTarget ?? '', attribsEx: '', deltaSeq: 0 });
    await run.sd.sendStream(index, STREAM.UNIX_ATTRIBUTES, 0, [record]);
    const stream = file.streams[0];
    if (stream) {
      const digest = options.digest ? DIGESTS[options.digest] : null;
      const hash: Hash | null = digest ? createHash(digest.algorithm) : null;
      const frames = async function* () {
        for await (const chunk of stream.data()) {
          for (let at = 0; at < chunk.length; at += FRAME) {
            const plain = Buffer.from(chunk.buffer, chunk.byteOffset + at, Math.min(FRAME, chunk.length - at));
            hash?.update(plain);
            totals.readBytes += plain.length;
            // Copied: the agent may reuse its buffer once the next chunk is asked for.
            yield options.gzip !== null ? deflateSync(plain, { level: options.gzip }) : Buffer.from(plain);
          }
        }
      };
      totals.jobBytes += await run.sd.sendStream(index, dataStream, size, frames());
      if (digest && hash) await run.sd.sendStream(index, digest.stream, 0, [hash.digest()]);
    }
    await run.sd.sendStream(index, STREAM.PLUGIN_NAME, 0, [Buffer.from(`${index} 0\0`)]);
    totals.files++;
  };

  const sendPlugin = async (command: string, options: IncludeOptions) => {
    const plugins = run.plugins;
    let name: string;
    try {
      name = pluginNameOf(command);
    } catch (error) {
      problem(messageOf(error));
      return;
    }
    const agent = plugins?.agents.agentFor(command) ?? null;
    if (!plugins || !agent) {
      problem(`Command plugin "${name}" requested, but is not loaded: no agent named "${name}" (agentfd plugins list shows the agents)`);
      return;
    }
    const backup = await startPluginBackup(plugins.agents, agent, command, plugins.level, run.since, {
      jobName: plugins.jobName, jobId: plugins.jobId, log: run.log, isCancelled: run.isCancelled,
    });
    totals.pluginRuns.push(backup);
    for await (const file of backup.files) {
      if (run.isCancelled()) break;
      // An agent decides for its own files: those it reports (sent or unchanged) are met.
      run.accurate?.markSeen(file.kind === 'directory' ? `${file.path}/` : file.path);
      if (file.seen) continue; // unchanged since the reference: bacula-fd sends nothing either
      await sendAgentFile(command, file, options);
    }
    // Listed files nobody met yet: an agent that does not report all it still has (a Bacula plugin)
    // is asked about each (checkFile), as bacula-fd asks every plugin before reporting a deletion.
    if (run.accurate && backup.stillExisting) {
      const unreported = [...run.accurate.unseen()].map((u) => u.name);
      if (unreported.length > 0) for (const kept of await backup.stillExisting(unreported)) run.accurate.markSeen(kept);
    }
  };

  for (const block of run.fileset.includes) {
    const options = topLevelOptions(block, run.fileset);
    leftOver = null;
    for (const file of block.files) {
      // The first File entry gets all the block's Options together; a later one, what matching the
      // previous entry's files left in bacula-fd's flags (see traceAcceptFile): its digest, say.
      // baculaName: on Windows a File line written with backslashes is sent with '/' (windows.ts).
      await walk(baculaName(file), null, leftOver ?? options, block, true);
    }
    // After the block's File entries, as bacula-fd (find_files, then plugin_save per command).
    if (!run.skipPlugins) for (const command of block.plugins) await sendPlugin(command, options);
  }
  if (run.accurate && !run.isCancelled()) {
    const deleted = await sendDeleted();
    run.log('info', `accurate: ${deleted} deleted of ${run.accurate.size} files in the previous jobs' list`);
  }
  xacl.finish();
  return totals;
}
