/**
 * One serve backup's run and the state its stages share: the next FileIndex, the totals, the
 * hard links met so far, the ACL/xattr reader. Every stage of transfer/backup/ takes this job.
 */
import type { BackupRun as AgentBackupRun } from '../../../agents/agent.js';
import type { Level } from '../../../agents/types.js';
import os from 'node:os';
import { compiledScript } from '../../../compiled-script.js';
import { CompressPool } from '../../../pipeline/compress-pool.js';
import { XaclBackup } from '../../attributes/xacl.js';
import type { FramePool } from './file-data.js';
import { DigestThread } from './digest-thread.js';
import { BaculaGzip, type BlockCompressor } from './bacula-gzip.js';
import type { DebugWrite } from '../../wire/debug.js';
import type { FileSet, IncludeOptions } from '../../fileset/fileset.js';
import type { AccurateList } from '../accurate.js';
import type { PluginAgents } from '../plugin-agents.js';
import type { StorageDaemon } from '../storage-daemon.js';

export interface BackupTotals {
  files: number;
  /** File bytes read. */
  readBytes: number;
  /** Bytes sent as data (after compression). */
  jobBytes: number;
  errors: string[];
  /**
   * Errors that bacula-fd counts in the job's Errors but that leave its status OK (checkfilechanges'
   * "mtime changed during backup"): the Director's report then says "OK -- with warnings".
   */
  warnings: string[];
  /** Entries looked at, saved or not (bacula-fd's num_files_examined), and the one being sent: for `status client`. */
  examined: number;
  lastFile: string;
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
  /** serve's debug output (setdebug): each file sent, at DEBUG.files. */
  debug?: DebugWrite;
  /** [serve] gzip_like_bacula_fd: GZIP blocks compressed in turn on one zlib stream, as bacula-fd (bacula-gzip.ts). */
  gzipLikeBaculaFd?: boolean;
}

export function newTotals(): BackupTotals {
  return { files: 0, readBytes: 0, jobBytes: 0, errors: [], warnings: [], examined: 0, lastFile: '', pluginRuns: [] };
}

/** What a later hard link to a sent file needs (find_one.c's f_link). */
export interface SavedFile {
  fileIndex: number;
  /** The file's digest, sent again after each of its hard links. */
  digest: { stream: number; value: Buffer } | null;
}

export interface SavedLink extends SavedFile {
  /** The first name the file was sent under: the link of its FT_LNKSAVED records. */
  name: string;
}

export class BackupJob {
  private lastIndex = 0;
  /** Files seen with more than one link, by device and inode (find_one.c's linkhash), for the whole job. */
  readonly links = new Map<string, SavedLink>();
  /**
   * The Options block bacula-fd's flags were last set from while matching the current Include
   * block's files (see traceAcceptFile): what the block's next File entry starts with.
   */
  leftOver: IncludeOptions | null = null;
  readonly xacl: XaclBackup;
  private pool: FramePool | null = null;
  private digests: DigestThread | null = null;
  private gzip: BaculaGzip | null = null;

  constructor(
    readonly run: BackupRun,
    readonly totals: BackupTotals,
  ) {
    this.xacl = new XaclBackup((message) => run.log('warning', message));
  }

  /** The FileIndex of the next record: one per entry sent, from 1, for the whole job. */
  nextIndex(): number {
    return ++this.lastIndex;
  }

  /** The job's compression workers, one per core, started when a file first needs them. */
  framePool(): FramePool {
    this.pool ??= new CompressPool(Math.max(1, os.availableParallelism()), compiledScript(import.meta.url, 'frame-worker.js'));
    return this.pool;
  }

  /** The job's digest thread (large files' digests), started when a file first needs it. */
  digestThread(): DigestThread {
    this.digests ??= new DigestThread();
    return this.digests;
  }

  hasDigestThread(): boolean {
    return this.digests !== null;
  }

  /** With gzip_like_bacula_fd, what compresses every block in turn (bacula-gzip.ts); else null. */
  gzipInTurn(): BlockCompressor | null {
    if (!this.run.gzipLikeBaculaFd) return null;
    this.gzip ??= new BaculaGzip();
    return this.gzip.compress;
  }

  /** Stops the compression workers and the digest thread, if they were started, and frees the GZIP stream. */
  async close(): Promise<void> {
    this.gzip?.end();
    this.gzip = null;
    await Promise.all([this.pool?.close(), this.digests?.close()]);
    this.pool = null;
    this.digests = null;
  }

  /** An error the job reports and goes on from (the Director's job ends "OK -- with warnings"). */
  problem(message: string): void {
    this.totals.errors.push(message);
    this.run.log('error', message);
  }
}
