/**
 * One job's session with a loaded agent library, whatever its ABI: a native agentfd agent
 * (native/session.ts) or a Bacula 9.6 plugin (bacula-plugin/session.ts). The in-process bridge and the
 * isolated agent host drive either through this one call sequence, so isolation, streaming and
 * the pipeline are the same for both.
 */
import type { AgentFileInfo, Capability, Level, LogLevel } from './types.js';

export interface SessionOptions {
  jobName: string;
  jobId?: number;
  /** The job's options for the agent (get_option; a Bacula plugin's command is `command`). */
  options?: Record<string, string>;
  /** The fileset check; everything is included when absent. */
  filesetCheck?: (path: string) => boolean;
  log?: (level: LogLevel, message: string) => void;
  isCancelled?: () => boolean;
  /** The state blob of the reference job (state_get). */
  referenceState?: Uint8Array | null;
  /**
   * Call the agent on the libuv thread pool (koffi's .async) so the event loop keeps running while
   * the agent works. The agent host process, whose only job is the agent, calls it directly.
   */
  offThread?: boolean;
  /** Told the name of each entry point just before it is called (the agent host reports it). */
  onCall?: (entry: string) => void;
}

export interface BackupEstimate {
  files: number | null;
  bytes: number | null;
}

export interface AgentSession {
  /** The blob the agent stored during this session, if any. */
  readonly state: Uint8Array | null;
  /** Host calls the agent got wrong; a job fails when this is not empty. */
  readonly protocolErrors: string[];
  backupPrepare(level: Level, sinceNs: bigint, jobStartNs: bigint): Promise<Level>;
  /** The next file, or null when the agent has no more. */
  nextFile(): Promise<AgentFileInfo | null>;
  startStream(index: number): Promise<void>;
  /** Fill `buffer` from the current stream; returns the byte count, 0 at the end. */
  read(buffer: Uint8Array): Promise<number>;
  endStream(): Promise<void>;
  endFile(): Promise<void>;
  backupFinish(ok: boolean): Promise<void>;
  /** After backupPrepare, an agent that declares "estimate": how much a backup would save (null: unknown). */
  estimate?(): Promise<BackupEstimate>;
  /**
   * Accurate mode: of `paths`, which the reference job had and this job did not report, the ones
   * the agent says still exist (Bacula's checkFile). Absent: the agent reports every file itself.
   */
  stillExisting?(paths: string[]): Promise<string[]>;
  restorePrepare(target: string | null, sourceAbi: number, sourceAgentVersion: string | null): Promise<void>;
  restoreStartFile(file: AgentFileInfo): Promise<void>;
  restoreWrite(streamIndex: number, data: Uint8Array): Promise<void>;
  restoreEndFile(ok: boolean): Promise<void>;
  restoreFinish(): Promise<void>;
  /** End the session; safe to call twice. */
  close(): void;
}

/** A loaded agent library of either ABI, as the bridge and the agent host use it. */
export interface LoadedAgent {
  readonly kind: 'native' | 'bacula';
  /** Name() of a native agent; the file name up to "-fd.so" of a Bacula plugin. */
  readonly name: string;
  readonly file: string;
  /** The generation both sides agreed on (Bacula: 14). */
  readonly abi: number;
  /** The generations the agent said it speaks. */
  readonly agentAbiRange: readonly [number, number];
  readonly capabilities: readonly Capability[];
  readonly info: Readonly<Record<string, string>>;
  /** Things a person should know that did not stop the load. */
  readonly warnings: readonly string[];
  /** A session for one job. */
  openSession(options: SessionOptions): Promise<AgentSession>;
  /** Unload the library; the agent must not be used afterwards. */
  unload(): void;
}
