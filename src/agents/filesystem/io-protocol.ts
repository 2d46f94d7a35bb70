/**
 * The messages between the walk (io.ts) and the agent's I/O thread (fs-worker.ts). A module of its
 * own so that the main thread can use it without loading the thread's script.
 */

/** An error as it crosses the thread boundary (structured cloning drops `code`). */
export interface WireError {
  code: string | null;
  message: string;
}

/** Fields per entry in StatReply.fields. */
export const STAT_FIELDS = 6; // mode, size, mtimeNs, ctimeNs, dev, ino

export interface StatRequest {
  id: number;
  op: 'stat';
  paths: string[];
}

export interface StatReply {
  id: number;
  /** STAT_FIELDS values per path, in order (as Node's own BigInt stats, signed 64-bit). */
  fields: BigInt64Array;
  /** Per path: why lstat (or readlink, for a symlink) failed, or null. */
  errors: (WireError | null)[];
  /** Per path: the raw target of a symlink, or null. */
  targets: (Uint8Array | null)[];
  /**
   * Per path: the restorable Windows FILE_ATTRIBUTE_* bits of a directory or regular file
   * (win-attributes.ts), read on the I/O thread so the main thread never waits on kernel32; 0 off
   * Windows or when unread.
   */
  winAttributes: Uint32Array;
  /** Per path: why they could not be read, or null. */
  winAttributesProblems: (string | null)[];
}

export interface ReadRequest {
  id: number;
  op: 'read';
  files: { osPath: string; size: number; dev: bigint; ino: bigint }[];
}

export interface ReadResult {
  /** Failed before reading: open failed, the file is another one now, or fstat failed. */
  early: (WireError & { kind: 'open' | 'replaced' | 'error' }) | null;
  /** size+1 bytes of room, of which `length` were read (null when nothing was read). */
  buffer: Uint8Array | null;
  length: number;
  /** A read or close error after `length` bytes, or null. */
  late: WireError | null;
}

export interface ReadReply {
  id: number;
  results: ReadResult[];
}
