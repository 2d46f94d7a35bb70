/**
 * The restorer of files: a session's file, chunk, stream-end and file-end events in, agent calls
 * out. Through an agent a file is one startFile, its chunks, one endFile; raw, each stream becomes
 * its own plain file (rawPath), written by the filesystem agent.
 *
 * A file is called whole (endFile(true)) only at its FILE_END with status ok, after the reader
 * checked every stream's digest; a file that the backup could not save completely is discarded
 * (endFile(false)) and reported. A path this system cannot hold fails that file, not the restore.
 */
import type { RestoreRun } from '../../agents/agent.js';
import type { AgentFileInfo, LogLevel } from '../../agents/types.js';
import { AgentfdError } from '../../errors.js';
import type { FileRecord } from '../../pipeline/records.js';
import type { SessionEvent } from '../../sink/session-reader.js';
import { FILESYSTEM_AGENT } from '../agents.js';
import { RAW_RUN } from './agent-runs.js';

export function toInfo(file: FileRecord): AgentFileInfo {
  return {
    path: file.path, kind: file.kind, linkTarget: file.linkTarget, mode: file.mode, seen: file.seen,
    mtimeNs: BigInt(file.mtimeNs), size: file.size, winAttributes: file.winAttributes, streams: file.streams,
  };
}

/** The plain file a stream becomes in a raw restore: the file's own path for its only "data" stream. */
export function rawPath(file: FileRecord, streamIndex: number): string {
  const stream = file.streams[streamIndex]!;
  const alone = file.streams.length === 1 && stream.name === 'data';
  return alone ? file.path : `${file.path}.${stream.name}`;
}

export interface FileRestorerOptions {
  /** The run a file routed to `agentName` is written through (RAW_RUN: plain files). */
  runFor: (agentName: string) => Promise<RestoreRun>;
  /** Write every stream as a plain file. */
  raw: boolean;
  /** Route every file to this agent instead of the one recorded. */
  agent?: string;
  /** Whether a path is restored (the --include patterns); null: every path. */
  include: ((path: string) => boolean) | null;
  log: (level: LogLevel, message: string) => void;
  onProgress?: (p: { files: number; bytes: number; path: string }) => void;
}

/** The file being restored, and how: through an agent, or raw (one plain file per stream). */
interface Current {
  file: FileRecord;
  run: RestoreRun;
  raw: boolean;
  openStream: number | null;
}

type FileEvent = Extract<SessionEvent, { kind: 'file' | 'chunk' | 'streamEnd' | 'fileEnd' }>;

export class FileRestorer {
  files = 0;
  skipped = 0;
  bytes = 0;
  private current: Current | null = null;

  constructor(private readonly options: FileRestorerOptions) {}

  /** One event of a file; `selected`: whether this job's version of the path is the one restored. */
  async event(event: FileEvent, selected: (fileIndex: number) => boolean): Promise<void> {
    switch (event.kind) {
      case 'file':
        return this.startFile(event.file, selected(event.file.fileIndex));
      case 'chunk':
        return this.chunk(event.prefix.streamIndex, event.data!);
      case 'streamEnd':
        return this.streamEnd(event.end.streamIndex);
      case 'fileEnd':
        return this.fileEnd(event.end.status === 'ok', event.end.error);
    }
  }

  /** After a failure: the open file is discarded, never left looking complete. */
  async abort(): Promise<void> {
    const c = this.current;
    this.current = null;
    if (c && (!c.raw || c.openStream !== null)) await c.run.endFile(false).catch(() => undefined);
  }

  private async startFile(file: FileRecord, selected: boolean): Promise<void> {
    const { include, raw } = this.options;
    this.current = null;
    // Only each path's latest version in the chain is restored (and none of a deleted path).
    if ((include && !include(file.path)) || file.seen || !selected) {
      this.skipped++;
      return;
    }
    // Raw: directories come with their files and symlinks are recreated, through the filesystem
    // agent; a regular file's streams open one by one, as they arrive.
    if (raw && file.kind !== 'symlink' && file.kind !== 'directory') {
      this.current = { file, run: await this.options.runFor(RAW_RUN), raw: true, openStream: null };
      return;
    }
    const run = await this.options.runFor(raw ? RAW_RUN : (this.options.agent ?? file.agent.name ?? FILESYSTEM_AGENT));
    // Current before startFile: if it fails otherwise than refused, abort() still discards the file.
    this.current = { file, run, raw: false, openStream: null };
    if (!(await this.refusable(() => run.startFile(toInfo(file))))) this.current = null;
  }

  private async chunk(streamIndex: number, data: Buffer): Promise<void> {
    const c = this.current;
    if (!c) return;
    if (c.raw) {
      if (!(await this.refusable(() => this.startRawStream(c, streamIndex)))) {
        this.current = null;
        return;
      }
      await c.run.write(0, data);
    } else {
      await c.run.write(streamIndex, data);
    }
    this.bytes += data.length;
    this.options.onProgress?.({ files: this.files, bytes: this.bytes, path: c.file.path });
  }

  private async streamEnd(streamIndex: number): Promise<void> {
    const c = this.current;
    if (!c?.raw) return;
    // An empty stream still becomes a file.
    if (!(await this.refusable(() => this.startRawStream(c, streamIndex)))) {
      this.current = null;
      return;
    }
    await c.run.endFile(true);
    c.openStream = null;
  }

  private async fileEnd(ok: boolean, error: string | null | undefined): Promise<void> {
    const c = this.current;
    this.current = null; // ended either way: a failing endFile is not followed by another
    if (!c) return;
    if (!ok) {
      this.options.log('error', `${c.file.path} was not saved completely (${error ?? 'failed'}); not restored`);
      if (!c.raw || c.openStream !== null) await c.run.endFile(false);
    } else if (!c.raw) {
      if (await this.refusable(() => c.run.endFile(true))) this.files++; // a symlink is made (or refused) here
    } else {
      this.files++;
    }
  }

  private async startRawStream(c: Current, streamIndex: number): Promise<void> {
    if (c.openStream === streamIndex) return;
    const stream = c.file.streams[streamIndex]!;
    await c.run.startFile({ ...toInfo(c.file), kind: 'regular', path: rawPath(c.file, streamIndex), streams: [{ ...stream, index: 0 }] });
    c.openStream = streamIndex;
  }

  /**
   * A path this system cannot hold (E_RESTORE_PATH: refused before anything was written for it,
   * e.g. two names that differ only in case on Windows) fails that file, not the restore: the
   * error is reported, the file's data skipped, and the other files restored. False when refused.
   */
  private async refusable(start: () => Promise<void>): Promise<boolean> {
    try {
      await start();
      return true;
    } catch (error) {
      if (!(error instanceof AgentfdError) || error.code !== 'E_RESTORE_PATH') throw error;
      this.options.log('error', error.message); // the log keeps it among the restore's errors
      this.skipped++;
      return false;
    }
  }
}
