/**
 * The vocabulary agents and agentfd share: the words for levels, capabilities, file kinds, stream
 * types and log levels, what every kind of agent (native library, Bacula plugin, the built-in
 * filesystem agent) says about a file, and the rule an agent path follows. The rest of agentfd
 * only sees these words and shapes, never a C structure: this module imports no FFI, so the
 * volume records, the job engine and the CLI speak it without loading koffi. The native ABI
 * (native/abi.ts) maps these words to the numbers of binding/include/agentfd_agent.h.
 */
import { AgentfdError } from '../errors.js';
import { hasRawBytes, shownName } from '../platform/byte-names.js';
import { CONFINED_WRITES } from '../platform/os.js';

/** Backup levels, as the CLI, the catalog and the volume records write them. */
export const LEVELS = ['full', 'incremental', 'differential'] as const;
export type Level = (typeof LEVELS)[number];
export const isLevel = (value: unknown): value is Level => (LEVELS as readonly unknown[]).includes(value);

/** What an agent can do, named as the CLI and the catalog show it. */
export const CAPABILITIES = [
  'full',
  'incremental',
  'differential',
  'restore',
  'own-state',
  'raw-restorable',
  'accurate',
  'thread-safe',
  'cancel',
  'estimate',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

export const FILE_KINDS = ['regular', 'directory', 'symlink', 'virtual'] as const;
export type FileKind = (typeof FILE_KINDS)[number];

export const STREAM_TYPES = ['data', 'metadata', 'named'] as const;
export type StreamType = (typeof STREAM_TYPES)[number];

export const LOG_LEVELS = ['error', 'warning', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The native ABI generations this host speaks, oldest and newest. Generation 3 (confined restore
 * writes: restore_open and friends) needs a way to confine writes beneath the target (Linux and
 * Windows, src/platform/); elsewhere the host offers 1..2 and agents negotiate down, as the header
 * says.
 */
export const HOST_MIN_ABI = 1;
export const HOST_MAX_ABI = CONFINED_WRITES ? 3 : 2;

/**
 * A file for a native agent's restore: its path and link target must be UTF-8 (the header's
 * rule). A name saved as bytes that are not UTF-8 (by the filesystem agent, or serve) cannot be
 * given to one: that file is refused (E_RESTORE_PATH: the file fails, the restore goes on), and
 * the error says how to restore it instead.
 */
export function requireUtf8Names(file: AgentFileInfo): void {
  if (!hasRawBytes(file.path) && (file.linkTarget === null || !hasRawBytes(file.linkTarget))) return;
  throw new AgentfdError(
    'E_RESTORE_PATH',
    `${shownName(file.path)}: its name${file.linkTarget !== null && hasRawBytes(file.linkTarget) ? ' (or link target)' : ''} holds bytes that are not UTF-8 (shown as \\xNN), and a native agent takes UTF-8 paths only; nothing was written for it. Restore it with --raw, or with --agent filesystem`,
  );
}

/**
 * Why `path` is not an acceptable agent path, or null when it is: the header's rule for every
 * path an agent hands out or is handed, whatever kind of agent it is.
 */
export function agentPathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'it is not absolute (it must start with "/")';
  if (path.includes('\0')) return 'it contains a NUL character';
  if (path === '/') return null;
  const parts = path.slice(1).split('/');
  if (parts.some((p) => p === '')) return 'it has an empty component ("//" or a trailing "/")';
  if (parts.some((p) => p === '.' || p === '..')) return 'it has a "." or ".." component';
  return null;
}

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
