/**
 * The "data" stream of a regular file, in one of two ways:
 *
 * - readFileStream: read lazily, 1 MiB at a time, only as fast as the engine consumes it (large
 *   files: memory stays bounded whatever the size).
 * - preloadFile + preloadedStream: a small file read whole ahead of time (walk.ts decides which and
 *   how many), then served from memory when the engine reaches it, with the same checks and the
 *   same errors at the same point of the iteration as a live read.
 *
 * Either way a file that changes size while it is read still yields what was read, but the stream
 * then fails with E_SOURCE_CHANGED so the engine never records a torn file as good.
 */
import { close, constants, fstat, open, read, type BigIntStats } from 'node:fs';
import { open as openHandle } from 'node:fs/promises';
import { AgentfdError } from '../../errors.js';
import { fsPath } from '../../platform/byte-names.js';

export const READ_CHUNK = 1024 * 1024;

// O_NOFOLLOW: the entry was lstat'ed as a regular file; if it has been swapped for a symlink since,
// reading through it could save another file (say /etc/shadow) under this name. O_NONBLOCK: a
// file swapped for a FIFO must not hang the job on open. Both are 0 where the OS lacks them.
export const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

export interface ExpectedFile {
  osPath: string;
  agentPath: string;
  size: number;
  dev: bigint;
  ino: bigint;
}

export async function* readFileStream(file: ExpectedFile, isCancelled: () => boolean): AsyncGenerator<Uint8Array> {
  let handle;
  try {
    handle = await openHandle(fsPath(file.osPath), READ_FLAGS);
  } catch (error) {
    throw cannotOpen(file, error);
  }
  try {
    const st = await handle.stat({ bigint: true });
    if (!sameFile(st, file)) throw replaced(file);
    let total = 0;
    for (;;) {
      if (isCancelled()) throw cancelled(file);
      // Never ask for more than one byte past the expected end: that byte, if it comes, proves
      // the file grew, and a file that keeps growing is not read forever.
      const room = Math.min(READ_CHUNK, file.size - total + 1);
      // A fresh buffer per read: the engine may still hold the previous chunk.
      const buffer = Buffer.alloc(room);
      const { bytesRead } = await handle.read(buffer, 0, room, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      yield bytesRead === room ? buffer : buffer.subarray(0, bytesRead);
      if (total > file.size) break;
    }
    sizeCheck(file, total);
  } finally {
    await handle.close();
  }
}

/**
 * A small file read ahead, whole: what a live read would have produced, kept until the engine
 * asks for it. It holds no file descriptor: the file is closed before preloadFile resolves.
 */
export interface Preloaded {
  /** A failure before any byte was read (open, fstat, the file replaced), or null. */
  early: unknown;
  /** The bytes read: the file, or fewer (it shrank), or one byte more (it grew). */
  data: Buffer;
  /** A failure after `data` was read (a read or close error), or null. */
  late: unknown;
}

const NOTHING = Buffer.alloc(0);

/**
 * Read a regular file of the expected size (at most a few hundred KiB: the whole file is held)
 * with the checks of readFileStream: opened O_NOFOLLOW|O_NONBLOCK, the same file (dev, inode) as
 * the walk's lstat, and size+1 bytes asked for so that growth shows. Never rejects: the outcome,
 * errors included, is replayed by preloadedStream when the engine reaches the file.
 */
export async function preloadFile(file: ExpectedFile): Promise<Preloaded> {
  let fd: number;
  try {
    fd = await call<number>((cb) => open(fsPath(file.osPath), READ_FLAGS, cb));
  } catch (error) {
    return { early: cannotOpen(file, error), data: NOTHING, late: null };
  }
  const outcome: Preloaded = { early: null, data: NOTHING, late: null };
  try {
    const st = await call<BigIntStats>((cb) => fstat(fd, { bigint: true }, cb));
    if (!sameFile(st, file)) {
      outcome.early = replaced(file);
    } else {
      const buffer = Buffer.alloc(file.size + 1);
      let total = 0;
      try {
        for (;;) {
          const bytesRead = await call<number>((cb) => read(fd, buffer, total, buffer.length - total, total, cb));
          total += bytesRead;
          // At the expected size the read came back one byte short of what was asked: that is
          // the end of the file (POSIX: a regular file reads short only at its end). Past it, the
          // file grew; with nothing read, it shrank.
          if (bytesRead === 0 || total >= file.size) break;
        }
      } catch (error) {
        outcome.late = error;
      }
      outcome.data = buffer.subarray(0, total);
    }
  } catch (error) {
    outcome.early = error;
  } finally {
    try {
      await call<void>((cb) => close(fd, cb));
    } catch (error) {
      if (outcome.early === null) outcome.late = error;
      else outcome.early = error;
    }
  }
  return outcome;
}

/** The stream of a preloaded file: its outcome replayed in the order a live read would give it. */
export async function* preloadedStream(file: ExpectedFile, preloaded: Preloaded, isCancelled: () => boolean): AsyncGenerator<Uint8Array> {
  if (preloaded.early !== null) throw preloaded.early;
  if (isCancelled()) throw cancelled(file);
  const total = preloaded.data.length;
  if (total > 0) yield preloaded.data;
  if (preloaded.late !== null) throw preloaded.late;
  // A live read checks again before the read that finds the end.
  if (total <= file.size && isCancelled()) throw cancelled(file);
  sizeCheck(file, total);
}

function call<T>(start: (cb: (error: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value))));
}

function sameFile(st: BigIntStats, file: ExpectedFile): boolean {
  return st.isFile() && st.dev === file.dev && st.ino === file.ino;
}

function sizeCheck(file: ExpectedFile, total: number): void {
  if (total < file.size) throw changedError(file, `it shrank while being read (${total} of ${file.size} bytes)`);
  if (total > file.size) throw changedError(file, `it grew while being read (more than ${file.size} bytes)`);
}

function cannotOpen(file: ExpectedFile, error: unknown): AgentfdError {
  return changedError(file, `it can no longer be opened (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
}

function replaced(file: ExpectedFile): AgentfdError {
  return changedError(file, 'it was replaced by another file after it was listed');
}

function cancelled(file: ExpectedFile): AgentfdError {
  return new AgentfdError('E_CANCELLED', `backup cancelled while reading ${file.osPath}`);
}

export function changedError(file: ExpectedFile, why: string, cause?: unknown): AgentfdError {
  return new AgentfdError(
    'E_SOURCE_CHANGED',
    `${file.osPath}: ${why}; the file is not saved in this job. Back it up when it is not being written (or from a snapshot)`,
    cause === undefined ? undefined : { cause },
  );
}
