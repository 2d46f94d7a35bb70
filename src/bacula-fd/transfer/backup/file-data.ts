/**
 * A file's data as bacula-fd reads and frames it (filed/backup.c send_data): frames of at most
 * 64 KiB, each zlib-compressed with GZIP or made an LZO record (lzo-records.ts) with LZO, with
 * sparse an 8-byte offset first and all-zero blocks left out; noatime and keepatime; the digest its
 * `signature =` names. A regular file is handled a read (up to 16 blocks) at a time: its digest
 * made inline, or for a large file on the job's digest thread (digest-thread.ts); GZIP on the job's
 * compression workers (frame-worker.ts) for a file of more than one block, LZO inline
 * (frame-codec.ts says why); several reads under way at once, sent in order.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants, type BigIntStats } from 'node:fs';
import { open, utimes, type FileHandle } from 'node:fs/promises';
import { STREAM } from '../../attributes/lstat.js';
import { setAccessTime } from '../../attributes/special-files.js';
import type { Digest } from '../../fileset/fileset.js';
import { fsPath } from '../../../platform/byte-names.js';
import { nextData } from '../../../platform/libc.js';
import type { CompressPool } from '../../../pipeline/compress-pool.js';
import { orderedMap } from '../../../agents/filesystem/ordered-map.js';
import { compressBlock, compressBlocks, compressesOnWorkers, type FrameCodec } from './frame-codec.js';
import { readBatches, type Batch, type Block } from './block-reader.js';
import { ThreadedHash, type DigestThread } from './digest-thread.js';
import type { BlockCompressor } from './bacula-gzip.js';

/** The real FD's default Maximum Network Buffer Size: the data frame size. */
export const FRAME = 64 * 1024;
/** A sparse frame starts with the block's file offset, 8 bytes big-endian (OFFSET_FADDR_SIZE)... */
export const OFFSET_SIZE = 8;
/** ...so bacula-fd reads blocks of 65,528 bytes then, and these are the blocks it may skip. */
const SPARSE_BLOCK = FRAME - OFFSET_SIZE;
const ZEROS = Buffer.alloc(FRAME);

const DIGESTS = {
  md5: { algorithm: 'md5', stream: STREAM.MD5_DIGEST },
  sha1: { algorithm: 'sha1', stream: STREAM.SHA1_DIGEST },
  sha256: { algorithm: 'sha256', stream: STREAM.SHA256_DIGEST },
  sha512: { algorithm: 'sha512', stream: STREAM.SHA512_DIGEST },
} as const;

/** A file's digest: made here, or on the job's digest thread (`await hash.digest()` either way). */
export type FileHash = Hash | ThreadedHash;

/**
 * The digest `signature =` asks for: its stream and a hash to feed, or null when it asks none;
 * made on `thread` when one is given.
 */
export function startDigest(digest: Digest | null): { stream: number; hash: Hash } | null;
export function startDigest(digest: Digest | null, thread: DigestThread | null): { stream: number; hash: FileHash } | null;
export function startDigest(digest: Digest | null, thread: DigestThread | null = null): { stream: number; hash: FileHash } | null {
  if (!digest) return null;
  const { algorithm, stream } = DIGESTS[digest];
  return { stream, hash: thread ? thread.start(algorithm) : createHash(algorithm) };
}

/**
 * Open for reading; with noatime, O_NOATIME where the kernel allows it (only the owner or root may
 * ask for it: bacula-fd's bopen ignores that refusal, EPERM, and reads anyway).
 */
export async function openForRead(p: string, noAtime: boolean): Promise<FileHandle> {
  const noAtimeFlag = constants.O_NOATIME ?? 0;
  if (noAtime && noAtimeFlag !== 0) {
    try {
      return await open(fsPath(p), constants.O_RDONLY | noAtimeFlag);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
    }
  }
  return open(fsPath(p), constants.O_RDONLY);
}

/**
 * keepatime: put back the access time our read changed. Only the atime, so the mtime stays exact
 * (bacula-fd's utime() rewrites both, to whole seconds). The ctime changes either way, so with
 * keepatime an incremental sends such files again unless mtimeonly is set, as with bacula-fd.
 * Failures are ignored, as bacula-fd ignores utime()'s.
 */
export async function putBackAccessTime(p: string, st: BigIntStats): Promise<void> {
  try {
    setAccessTime(p, st.atimeNs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSYS') return;
    // No utimensat here (not Linux): both times, as bacula-fd sets them.
    await utimes(fsPath(p), Number(st.atimeMs) / 1000, Number(st.mtimeMs) / 1000).catch(() => undefined);
  }
}

function allZero(data: Buffer): boolean {
  return data.equals(ZEROS.subarray(0, data.length));
}

export interface FrameOptions {
  sparse: boolean;
  gzip: number | null;
  /** compression = LZO (and liblzo2 is there: the job checked). */
  lzo: boolean;
  /** The size the LStat gives: blocks that end at or past it are always sent. */
  size: bigint;
  /** Raw devices and fifos (size 0): every block may be skipped. */
  checkEveryBlock: boolean;
  /** A ThreadedHash only for a regular file read in batches (not a `Block` source, not checkEveryBlock). */
  hash: FileHash | null;
  read: (bytes: number) => void;
  /** Compression workers for a file of several blocks with GZIP; null: inline. */
  pool?: FramePool | null;
  /** Inline, instead of compressBlock: gzip_like_bacula_fd's job stream (bacula-gzip.ts). */
  inTurn?: BlockCompressor | null;
}

/** serve's compression workers (frame-worker.ts), one per core, for a job's files. */
export type FramePool = CompressPool<never>;

/** Reads under way in the mapper at once, beyond those being read (block-reader.ts): with a digest thread, reads wait there. */
const BATCHES_AHEAD = 8;

/**
 * A file's data as send_data frames it (`source`: the open file, or a small file's one block read
 * ahead, look-ahead.ts): one frame per read. With sparse, each read is 65,528 bytes
 * and its frame starts with its file offset, and a read that is all zeros is not sent when it is
 * whole and ends before the file's size: the last block is always sent, which is how a restore
 * gets the size right. A skipped block is neither digested nor counted as read, as in bacula-fd.
 * (For a fifo bacula-fd tests its whole read buffer, stale bytes after a short read included; here
 * only the bytes read are tested.)
 */
export async function* dataFrames(source: FileHandle | Block, o: FrameOptions): AsyncGenerator<Buffer> {
  const start = o.sparse ? OFFSET_SIZE : 0;
  const block = o.sparse ? SPARSE_BLOCK : FRAME;
  if ('buffer' in source || o.checkEveryBlock) {
    const blocks = 'buffer' in source ? [source] : blocksInTurn(source, start, block);
    for await (const b of blocks) {
      const frame = frameOf(b, start, block, o);
      if (frame !== null) yield frame;
    }
    return;
  }
  const batches = readBatches(source, { start, block, size: o.size, skipTo: o.sparse ? holeSkipper(source.fd, block, o.size) : undefined });
  const window = o.pool ? Math.max(BATCHES_AHEAD, o.pool.size * 3) : BATCHES_AHEAD;
  for await (const frames of orderedMap(batches, (b) => batchFrames(b, start, block, o), { window })) yield* frames;
}

/**
 * With sparse, the holes of a regular file are skipped instead of read (lseek SEEK_DATA): the
 * blocks that lie wholly in a hole read as zeros, and frameOf would leave each of them out, so
 * what is sent is the same. The block that reaches the size is never skipped (it is always sent).
 * Where the kernel cannot tell the holes, every block is read, as bacula-fd reads them.
 */
function holeSkipper(fd: number, block: number, size: bigint): (at: bigint) => bigint {
  let seeking = true;
  const step = BigInt(block);
  return (at) => {
    if (!seeking) return at;
    let data: bigint | null;
    try {
      data = nextData(fd, at);
    } catch {
      seeking = false;
      return at;
    }
    // Whole blocks ending at or before both the data and the last byte (offset size - 1).
    const limit = data === null || data > size - 1n ? size - 1n : data;
    return limit > at ? at + ((limit - at) / step) * step : at;
  };
}

/** Whether sparse leaves the block out: all zeros, whole, and ending before the size (or any block of a fifo or device). */
function skipped(b: Block, plain: Buffer, block: number, o: FrameOptions): boolean {
  return o.sparse && (o.checkEveryBlock || (b.length === block && b.at + BigInt(b.length) < o.size)) && allZero(plain);
}

/** A block's frame, or null when sparse leaves it out; digested and counted here, in order. */
function frameOf(b: Block, start: number, block: number, o: FrameOptions): Buffer | null {
  const plain = b.buffer.subarray(start, start + b.length);
  if (skipped(b, plain, block, o)) return null;
  if (o.hash instanceof ThreadedHash) throw new Error('a digest thread is for a file read in batches');
  o.hash?.update(plain);
  o.read(b.length);
  if (o.gzip === null && !o.lzo) return o.sparse ? withOffset(b.buffer.subarray(0, start + b.length), b.at) : plain;
  return withOffset((o.inTurn ?? compressBlock)(plain, o, start), o.sparse ? b.at : null);
}

/**
 * The frames of one read's blocks, those sparse leaves out left out; digested and counted when
 * the read is handed over (reads are handed over in order). The read's buffer may go to the
 * digest thread and come back, then to a compression worker: only offsets into it are kept.
 */
async function batchFrames(batch: Batch, start: number, block: number, o: FrameOptions): Promise<Buffer[]> {
  const kept = batch.blocks.filter((b) => !skipped(b, b.buffer.subarray(start, start + b.length), block, o));
  if (kept.length === 0) return [];
  const parts: number[] = []; // each kept block's plain bytes in batch.buffer: offset, length
  for (const b of kept) {
    parts.push(b.buffer.byteOffset - batch.buffer.byteOffset + start, b.length);
    o.read(b.length);
  }
  let buffer = batch.buffer;
  if (o.hash instanceof ThreadedHash) buffer = await o.hash.update(buffer, parts);
  else if (o.hash) for (let i = 0; i < parts.length; i += 2) o.hash.update(buffer.subarray(parts[i]!, parts[i]! + parts[i + 1]!));
  let frames: Buffer[];
  if (o.gzip === null && !o.lzo) frames = kept.map((_, k) => buffer.subarray(parts[2 * k]! - start, parts[2 * k]! + parts[2 * k + 1]!));
  else if (o.inTurn) frames = kept.map((_, k) => o.inTurn!(buffer.subarray(parts[2 * k]!, parts[2 * k]! + parts[2 * k + 1]!), o, start));
  else if (o.pool && compressesOnWorkers(o)) frames = await compressOnWorkers(o.pool, buffer, parts, o, start);
  else frames = compressBlocks(buffer, parts, o, start);
  if (o.sparse) frames.forEach((frame, k) => withOffset(frame, kept[k]!.at));
  return frames;
}

/** compressBlocks on one of the job's workers: `buffer` is moved there, the records come back. */
async function compressOnWorkers(pool: FramePool, buffer: Buffer, parts: number[], codec: FrameCodec, headroom: number): Promise<Buffer[]> {
  const reply = await pool.request<{ records: Uint8Array[] }>({ data: buffer, parts, codec: { gzip: codec.gzip, lzo: codec.lzo }, headroom }, [buffer.buffer as ArrayBuffer]);
  return reply.records.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength));
}

/** A sparse frame starts with its block's file offset, in the room left for it. */
function withOffset(frame: Buffer, at: bigint | null): Buffer {
  if (at !== null) frame.writeBigUInt64BE(at, 0);
  return frame;
}

/** A fifo's or raw device's blocks: one read at a time, where the handle stands. */
async function* blocksInTurn(handle: FileHandle, start: number, block: number): AsyncGenerator<Block> {
  for (let at = 0n; ; ) {
    const buffer = Buffer.allocUnsafe(FRAME); // handed to the socket: not reused
    const { bytesRead } = await handle.read(buffer, start, block, null);
    if (bytesRead === 0) return;
    yield { at, buffer, length: bytesRead };
    at += BigInt(bytesRead);
  }
}
