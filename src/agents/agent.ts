/**
 * The one interface every agent kind serves (DESIGN section 3): a native library through the
 * bridge, a Bacula plugin through its adapter, and the built-in filesystem agent. The job engine
 * only ever talks to this.
 *
 * Backup is pull-based: the engine iterates `files`, and for each file iterates each stream's
 * `data()` in order. Nothing is read from the agent before it is asked for, so a slow sink slows
 * the agent down (backpressure) and memory stays bounded whatever a stream's size.
 */
import type { AgentFileInfo, AgentStreamInfo, Capability, Level, LogLevel } from './types.js';

export interface AgentStream extends AgentStreamInfo {
  /** The stream's bytes. Iterate it once, completely, before the next stream or file. */
  data(): AsyncIterable<Uint8Array>;
}

export interface AgentFile extends Omit<AgentFileInfo, 'streams'> {
  streams: AgentStream[];
}

/** What an agent tells the job about itself; recorded with every file it saves. */
export interface AgentIdentity {
  name: string;
  /** The agent's own version ("version" info), or null. */
  version: string | null;
  /** The ABI generation negotiated (0 for built-in agents). */
  abi: number;
  kind: 'native' | 'builtin' | 'bacula';
  capabilities: readonly Capability[];
}

export interface AgentJobContext {
  jobName: string;
  jobId: number;
  /** Options for the agent (get_option). */
  options: Record<string, string>;
  /** The job's fileset: true when `path` is to be saved. */
  filesetCheck: (path: string) => boolean;
  /** The rules behind filesetCheck, for agents that answer it in another process. */
  fileset?: { include: string[]; exclude: string[] };
  log: (level: LogLevel, message: string) => void;
  isCancelled: () => boolean;
}

export interface BackupRequest extends AgentJobContext {
  level: Level;
  /** Save what changed after this time (ns since the epoch); 0n for a full. */
  sinceNs: bigint;
  jobStartNs: bigint;
  /** The reference job's state blob, if the agent stored one. */
  referenceState: Uint8Array | null;
}

export interface BackupRun {
  /** The level the agent will deliver (an agent may upgrade an incremental to a full). */
  deliveredLevel: Level;
  files: AsyncIterable<AgentFile>;
  /** The state blob the agent stored during this backup, once `files` is exhausted. */
  state(): Uint8Array | null;
  /**
   * Accurate mode, after `files` is exhausted: of `paths` (the reference job had them, this job
   * did not report them), the ones the agent says still exist (a Bacula plugin's checkFile).
   * Absent when the agent reports every existing file itself.
   */
  stillExisting?(paths: string[]): Promise<string[]>;
  /**
   * Instead of reading `files` (agents that declare "estimate"): how much the backup would save,
   * without reading data. An estimate then ends with finish(false) and close().
   */
  estimate?(): Promise<{ files: number | null; bytes: number | null }>;
  /** Tell the agent whether the job was committed (it may now truncate logs). */
  finish(committed: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface RestoreRequest extends AgentJobContext {
  /** The directory (or application target) to restore into. */
  target: string;
  /** What the saving agent recorded: its ABI generation and version. */
  sourceAbi: number;
  sourceAgentVersion: string | null;
}

export interface RestoreRun {
  startFile(file: AgentFileInfo): Promise<void>;
  write(streamIndex: number, chunk: Uint8Array): Promise<void>;
  /** ok=false: the data was found bad; the agent discards the file. */
  endFile(ok: boolean): Promise<void>;
  finish(): Promise<void>;
  close(): Promise<void>;
}

export interface Agent extends AgentIdentity {
  backup(request: BackupRequest): Promise<BackupRun>;
  restore(request: RestoreRequest): Promise<RestoreRun>;
}
