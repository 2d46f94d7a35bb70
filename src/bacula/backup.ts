/**
 * A Bacula backup of plain files, as a 9.6 File Daemon sends it to the Storage Daemon
 * (filed/backup.c): per file a FileIndex, then its attributes record (stream 1), its data in
 * frames of at most 64 KiB (stream 2, or 4 with each frame an independent zlib stream when the
 * FileSet asks for GZIP), and the digest its `signature =` names. A directory's record comes
 * after its contents, its name ending in '/', as the real FD sends it.
 */
import { createHash, type Hash } from 'node:crypto';
import { lstat, open, opendir, readlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { messageOf } from '../errors.js';
import { FT, STREAM, encodeAttributes, encodeLStat, statFromNode } from './lstat.js';
import { blockOptions, type FileSet, type IncludeOptions } from './fileset.js';
import type { StorageDaemon } from './storage-daemon.js';
import type { BackupRun as AgentBackupRun } from '../agents/agent.js';
import type { AgentFile } from '../agents/agent.js';
import type { Level } from '../agents/native/abi.js';
import { pluginNameOf } from '../agents/bacula/command.js';
import { startPluginBackup, type PluginAgents } from './agents.js';
import type { BaculaStat } from './lstat.js';

/** The real FD's default Maximum Network Buffer Size: the data frame size. */
const FRAME = 64 * 1024;

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
}

const DIGESTS = {
  md5: { algorithm: 'md5', stream: STREAM.MD5_DIGEST },
  sha1: { algorithm: 'sha1', stream: STREAM.SHA1_DIGEST },
  sha256: { algorithm: 'sha256', stream: STREAM.SHA256_DIGEST },
  sha512: { algorithm: 'sha512', stream: STREAM.SHA512_DIGEST },
} as const;

function excluded(p: string, fileset: FileSet): boolean {
  return fileset.excludes.some((e) => p === e || p.startsWith(e.endsWith('/') ? e : `${e}/`));
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

  const sendAttributes = async (index: number, type: number, fname: string, st: BigIntStats, link: string, options: IncludeOptions) => {
    const dataStream = options.gzip !== null ? STREAM.GZIP_DATA : STREAM.FILE_DATA;
    const record = encodeAttributes({ fileIndex: index, type, fname, lstat: encodeLStat(statFromNode(st, dataStream)), link, attribsEx: '', deltaSeq: 0 });
    await run.sd.sendStream(index, STREAM.UNIX_ATTRIBUTES, 0, [record]);
  };

  const changed = (st: BigIntStats) => run.since === null || st.mtimeMs / 1000n >= run.since || st.ctimeMs / 1000n >= run.since;

  const sendFile = async (p: string, st: BigIntStats, options: IncludeOptions) => {
    // Opened before anything is sent: a file that cannot be read is reported, not half-sent.
    let handle;
    try {
      handle = await open(p, 'r');
    } catch (error) {
      problem(`Cannot open "${p}": ${messageOf(error)}`);
      return;
    }
    try {
      const index = ++fileIndex;
      await sendAttributes(index, st.size > 0n ? FT.REG : FT.REGE, p, st, '', options);
      const digest = options.digest ? DIGESTS[options.digest] : null;
      const hash: Hash | null = digest ? createHash(digest.algorithm) : null;
      if (st.size > 0n) {
        const stream = options.gzip !== null ? STREAM.GZIP_DATA : STREAM.FILE_DATA;
        const frames = async function* () {
          for (;;) {
            const buffer = Buffer.allocUnsafe(FRAME); // handed to the socket: not reused
            const { bytesRead } = await handle.read(buffer, 0, FRAME, null);
            if (bytesRead === 0) return;
            const plain = buffer.subarray(0, bytesRead);
            hash?.update(plain);
            totals.readBytes += bytesRead;
            yield options.gzip !== null ? deflateSync(plain, { level: options.gzip }) : plain;
          }
        };
        totals.jobBytes += await run.sd.sendStream(index, stream, st.size, frames());
      }
      if (digest && hash) await run.sd.sendStream(index, digest.stream, 0, [hash.digest()]);
      totals.files++;
    } finally {
      await handle.close();
    }
  };

  const walk = async (p: string, topDev: bigint, options: IncludeOptions): Promise<void> => {
    if (run.isCancelled() || excluded(p, run.fileset)) return;
    let st: BigIntStats;
    try {
      st = await lstat(p, { bigint: true });
    } catch (error) {
      problem(`Could not stat "${p}": ${messageOf(error)}`);
      return;
    }
    if (st.isDirectory()) {
      if (!options.noRecursion && (options.crossFilesystems || st.dev === topDev)) {
        let names: string[] = [];
        try {
          const dir = await opendir(p);
          for await (const entry of dir) names.push(entry.name);
        } catch (error) {
          problem(`Could not open directory "${p}": ${messageOf(error)}`);
          names = [];
        }
        names.sort();
        for (const name of names) await walk(path.join(p, name), topDev, options);
      }
      // The directory itself after its contents, named with a trailing slash (FT_DIREND).
      if (changed(st)) {
        const index = ++fileIndex;
        await sendAttributes(index, FT.DIREND, p.endsWith('/') ? p : `${p}/`, st, '', options);
        totals.files++;
      }
      return;
    }
    if (!changed(st)) return;
    if (st.isSymbolicLink()) {
      const index = ++fileIndex;
      await sendAttributes(index, FT.LNK, p, st, await readlink(p), options);
      totals.files++;
      return;
    }
    if (st.isFile()) return sendFile(p, st, options);
    run.log('warning', `"${p}" is a special file (fifo, device or socket); agentfd serve does not save those yet`);
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
      totals.jobBytes += await run.sd.sendStream(index, options.gzip !== null ? STREAM.GZIP_DATA : STREAM.FILE_DATA, size, frames());
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
      if (file.seen) continue; // unchanged since the reference: bacula-fd sends nothing either
      await sendAgentFile(command, file, options);
    }
  };

  for (const block of run.fileset.includes) {
    const options = blockOptions(block);
    for (const file of block.files) {
      let top: BigIntStats;
      try {
        top = await lstat(file, { bigint: true });
      } catch (error) {
        problem(`Could not stat "${file}": ${messageOf(error)}`);
        continue;
      }
      await walk(file, top.dev, options);
    }
    // After the block's File entries, as bacula-fd (find_files, then plugin_save per command).
    if (!run.skipPlugins) for (const command of block.plugins) await sendPlugin(command, options);
  }
  return totals;
}
