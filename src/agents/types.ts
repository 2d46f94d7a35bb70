/**
 * What every kind of agent (native library, Bacula plugin, the built-in filesystem agent) says
 * about a file. The rest of agentfd only sees these shapes, never a C structure.
 */
import type { FileKind, StreamType } from './native/abi.js';

export interface AgentStreamInfo {
  index: number;
  type: StreamType;
  /** Short name unique within the file ("data"). */
  name: string;
  /** The byte count the agent expects to deliver, or null when unknown. */
  sizeHint: number | null;
  /** Written alone as a plain file, this stream is usable (an MSSQL .bak). */
  rawRestorable: boolean;
}

export interface AgentFileInfo {
  /** Absolute '/'-separated path in the agent's namespace ("/@exchange/SG1/DB1.edb"). */
  path: string;
  kind: FileKind;
  linkTarget: string | null;
  /** POSIX permission bits, 0 when not applicable. */
  mode: number;
  /** Accurate mode: unchanged since the reference job and still present; no streams. */
  seen: boolean;
  /** Nanoseconds since the epoch, 0n when unknown. */
  mtimeNs: bigint;
  /** Logical size, or null when unknown. */
  size: number | null;
  /** Windows FILE_ATTRIBUTE_* bits, 0 elsewhere. */
  winAttributes: number;
  streams: AgentStreamInfo[];
  /**
   * Set when agentfd refused the file as the agent described it (a path or stream that breaks a
   * rule of agentfd_agent.h): why. Such a file has no streams, is recorded as failed, and the job
   * goes on with the next file.
   */
  refused?: string;
}
