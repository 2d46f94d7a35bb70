/**
 * The walk's look-ahead: the entries of a directory are lstat'ed a batch at a time, all of a batch
 * at once, ahead of the entry being sent, and a small regular file that will be sent is read whole
 * then too (opened, read in one read, closed), so that sending 20,000 small files does not wait
 * for five system calls one after the other per file. What is sent is the same: the FileSet is
 * asked about the entry as the walk will ask, and only a file that will certainly be read is read
 * early: accepted, saved in this job (a full, or an incremental whose times say so; with accurate
 * the Director's list decides when the walk reaches it, so nothing is read early), with one link
 * (a hard link's times may change while an earlier name of it is read: those are lstat'ed again
 * when reached, include-walk.ts), shorter than one block, and read whole in one short read up to
 * its size, which is where bacula-fd's reads would stop. Anything else is read when reached.
 */
import { close, constants, lstat, open, readv, type BigIntStats } from 'node:fs';
import { traceAcceptFile, type IncludeBlock, type IncludeOptions } from '../../fileset/fileset.js';
import { childName } from '../../attributes/windows.js';
import { fsPath } from '../../../platform/byte-names.js';
import type { Block } from './block-reader.js';
import { FRAME, OFFSET_SIZE } from './file-data.js';
import type { BackupJob } from './job.js';
import { changedSince } from './must-save.js';

/** Names lstat'ed at once, and batches of them under way ahead of the walk. */
export const LOOK_AHEAD = { batch: 16, ahead: 2 } as const;

/** What the FileSet says of an entry below a File line (traceAcceptFile). */
export type Traced = ReturnType<typeof traceAcceptFile>;

/**
 * An entry as the walk reached it: its lstat (with what the FileSet says of it and, for a small
 * file, its whole content read ahead), or why it has none; null once the job is cancelled.
 */
export type Probe = { path: string; st: BigIntStats; traced?: Traced; content?: Block } | { path: string; error: unknown } | null;

/** A directory the walk descended into, as the look-ahead needs it. */
export interface ProbedDir {
  path: string;
  options: IncludeOptions;
}

export function lstatEntry(job: BackupJob, p: string): Promise<Probe> {
  if (job.run.isCancelled()) return Promise.resolve(null);
  return new Promise((resolve) => lstat(fsPath(p), { bigint: true }, (error, st) => resolve(error ? { path: p, error } : { path: p, st })));
}

/** A batch of `dir`'s entries, each lstat'ed, asked about, and read when small and sent for sure. */
export async function probeBatch(job: BackupJob, block: IncludeBlock, dir: ProbedDir, names: string[]): Promise<Probe[]> {
  // childName: path.join on Linux; '/' on Windows, the names a Windows bacula-fd sends (windows.ts).
  return Promise.all(names.map(async (name) => {
    const found = await lstatEntry(job, childName(dir.path, name));
    if (found === null || 'error' in found) return found;
    const traced = traceAcceptFile(block, job.run.fileset, found.path, found.st.isDirectory());
    const content = traced.options && readsEarly(job, found.st, traced.options) ? await readWhole(found.path, found.st, traced.options) : undefined;
    return { ...found, traced, content };
  }));
}

function readsEarly(job: BackupJob, st: BigIntStats, options: IncludeOptions): boolean {
  const block = BigInt(options.sparse ? FRAME - OFFSET_SIZE : FRAME);
  return st.isFile() && st.nlink === 1n && st.size > 0n && st.size < block && !job.run.accurate && !job.run.isCancelled() && changedSince(job.run.since, st, options);
}

/**
 * The file's one block as readBlocks would give it, or undefined (then it is read when reached,
 * errors reported there). Through fs's callbacks, not FileHandle: per file, what a promise and a
 * handle object cost is more than the read; the descriptor is closed without waiting.
 */
async function readWhole(p: string, st: BigIntStats, options: IncludeOptions): Promise<Block | undefined> {
  const start = options.sparse ? OFFSET_SIZE : 0;
  const buffer = Buffer.allocUnsafe(start + Number(st.size));
  let fd: number;
  try {
    fd = await openFd(p, options.noAtime);
  } catch {
    return undefined;
  }
  try {
    // One byte more than the size: a short read up to the size is the end, as in readBlocks.
    const bytesRead = await new Promise<number>((resolve, reject) => readv(fd, [buffer.subarray(start), Buffer.allocUnsafe(1)], 0, (error, n) => (error ? reject(error) : resolve(n))));
    return bytesRead === Number(st.size) ? { at: 0n, buffer, length: bytesRead } : undefined;
  } catch {
    return undefined;
  } finally {
    close(fd, () => undefined);
  }
}

/** open(2) for reading as openForRead does it (O_NOATIME where asked and allowed), the descriptor. */
async function openFd(p: string, noAtime: boolean): Promise<number> {
  const once = (flags: number) => new Promise<number>((resolve, reject) => open(fsPath(p), flags, (error, fd) => (error ? reject(error) : resolve(fd))));
  const noAtimeFlag = constants.O_NOATIME ?? 0;
  if (noAtime && noAtimeFlag !== 0) {
    try {
      return await once(constants.O_RDONLY | noAtimeFlag);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
    }
  }
  return once(constants.O_RDONLY);
}
