/**
 * The data of one file being restored: its data records (plain, GZIP: one zlib stream per record,
 * LZO: a compression header then one LZO1X-1 block per record (lzo-records.ts), or sparse: an
 * 8-byte offset first) go into the open file until the next attributes record, as in
 * filed/restore.c.
 */
import { closeSync, ftruncateSync, writeSync, writev } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { STREAM, type BaculaStat } from '../../attributes/lstat.js';
import { readCompressedBlock, UndecodableData } from '../lzo-records.js';

/** What a restore writes data into: a Node FileHandle (of a file, fifo or device) has these. */
export interface DataSink {
  write(buffer: Buffer, offset: number, length: number, position: number | null): Promise<unknown>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
  /** Resolves once every write made so far is on the file; rejects with the first that failed. */
  flush?(): Promise<void>;
}

/**
 * Files of this size or more have their data written on libuv's thread pool, in order, while the
 * next records are read and decoded (DescriptorSink queueWrites). Below it a file's writes stay
 * synchronous: a pool round trip per file costs more than a small file's write into the page
 * cache (restore-root.ts lstatOrNullSync), and a write under 1 MiB holds the event loop for about
 * a millisecond at most, even while the kernel throttles writeback.
 */
export const QUEUED_WRITE_FILE_BYTES = 1024 * 1024;
/** Queued bytes above which the restore waits for the pool before reading on (and the socket, for it). */
const QUEUED_WRITE_LIMIT = 8 * 1024 * 1024;
/**
 * Queued records that follow each other in the file go to the pool together, in one writev of up
 * to this many bytes: a hand-over to the pool per 64 KiB record cost more than it saved.
 */
const QUEUED_WRITE_BATCH = 2 * 1024 * 1024;

interface PendingWrite {
  buffer: Buffer;
  offset: number;
  length: number;
  position: number | null;
  /** Told once the buffer is no longer needed: written, failed or dropped. */
  done?: () => void;
}

/**
 * A regular file restored on Linux (and other Unix): its descriptor, written with synchronous
 * pwrite. A restore writes records one after the other anyway, and a promise-based write waits a
 * round trip through libuv's thread pool per record, which for small files cost more than the
 * write itself (bacula-fd writes blocking too). Its owner, mode and times are set through it before
 * it is closed (set-attributes.ts setDescriptorAttributes), as bacula-fd's set_mod_own_time does
 * (fchown, fchmod, futimes): the attributes reach the very file the data went into.
 */
export class DescriptorSink implements DataSink {
  private queued = false;
  /** Writes not yet done, in order; the first `writing` of them are on the pool. */
  private readonly pending: PendingWrite[] = [];
  private pendingBytes = 0;
  private writing = 0;
  private failure: Error | null = null;
  /** The restore waiting for the queue to shrink (write) or empty (flush). */
  private waiter: { bytes: number; wake: () => void } | null = null;

  constructor(readonly fd: number) {}

  /**
   * From now on writes go to the thread pool, one at a time and in order, and write() returns
   * once a write is queued (waiting only while more than QUEUED_WRITE_LIMIT bytes are): a large
   * file's data is copied into the page cache, and waits on the kernel's writeback throttling, off
   * the event loop, which meanwhile reads and decodes the next records and answers other
   * connections. A failed write is thrown by the next write() or by flush(): the file fails loudly.
   */
  queueWrites(): void {
    this.queued = true;
  }

  /** `done`: told once `buffer` is no longer needed (written, or failed), also when that comes after this returns. */
  async write(buffer: Buffer, offset: number, length: number, position: number | null, done?: () => void): Promise<void> {
    if (this.failure || !this.queued) {
      try {
        if (this.failure) throw this.failure;
        for (let at = 0; at < length; ) at += writeSync(this.fd, buffer, offset + at, length - at, position === null ? null : position + at);
      } finally {
        done?.();
      }
      return;
    }
    if (length === 0) return done?.();
    this.pending.push({ buffer, offset, length, position, done });
    this.pendingBytes += length;
    this.next();
    if (this.pendingBytes > QUEUED_WRITE_LIMIT) await this.until(QUEUED_WRITE_LIMIT / 2);
    if (this.failure) throw this.failure;
  }

  async flush(): Promise<void> {
    await this.until(0);
    if (this.failure) throw this.failure;
  }

  async truncate(length: number): Promise<void> {
    await this.until(0); // a failed write was reported by flush()
    ftruncateSync(this.fd, length);
  }

  /** Closes once the write on the pool (if any) is done; writes not started are dropped (flush first to keep them). */
  async close(): Promise<void> {
    this.pendingBytes -= this.pending.splice(this.writing).reduce((sum, write) => (write.done?.(), sum + write.length), 0);
    await this.until(0);
    closeSync(this.fd);
  }

  /** Start the pending writes that follow each other on the pool, in one writev, unless one is there already. */
  private next(): void {
    const head = this.pending[0];
    if (this.writing > 0 || !head) return;
    const batch = [head.buffer.subarray(head.offset, head.offset + head.length)];
    let bytes = head.length;
    for (let i = 1; i < this.pending.length && bytes < QUEUED_WRITE_BATCH; i++) {
      const write = this.pending[i]!;
      if (head.position === null ? write.position !== null : write.position !== head.position + bytes) break;
      batch.push(write.buffer.subarray(write.offset, write.offset + write.length));
      bytes += write.length;
    }
    this.writing = batch.length;
    writev(this.fd, batch, head.position, (error, written) => {
      this.writing = 0;
      if (error) {
        this.failure = error;
        for (const write of this.pending.splice(0)) write.done?.();
        this.pendingBytes = 0;
      } else {
        this.written(written);
      }
      if (this.waiter && this.pendingBytes <= this.waiter.bytes) this.waiter.wake();
      this.next();
    });
  }

  /** `bytes` of the first pending writes are on the file; a write cut short keeps its rest first, where it belongs. */
  private written(bytes: number): void {
    this.pendingBytes -= bytes;
    while (bytes > 0) {
      const head = this.pending[0]!;
      if (bytes < head.length) {
        Object.assign(head, { offset: head.offset + bytes, length: head.length - bytes, position: head.position === null ? null : head.position + bytes });
        return;
      }
      bytes -= head.length;
      this.pending.shift();
      head.done?.();
    }
  }

  /** Resolves once no more than `bytes` are pending (0: every write done, none on the pool). */
  private until(bytes: number): Promise<void> {
    if (this.pendingBytes <= bytes && !(bytes === 0 && this.writing > 0)) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiter = {
        bytes,
        wake: () => {
          if (bytes === 0 && this.writing > 0) return;
          this.waiter = null;
          resolve();
        },
      };
    });
  }
}

/** A file being written: its data records go here until the next attributes record. */
export interface OpenFile {
  target: string;
  stat: BaculaStat;
  handle: DataSink;
  fname: string;
  /** A fifo cannot seek: data goes in order, a skipped sparse block as zeros. */
  sequential: boolean;
  /** Where unpositioned data goes next, and the end of what was written. */
  cursor: number;
  end: number;
  /** A regular file that got sparse records: its size is set to st_size when shorter. */
  sized: boolean;
  regular: boolean;
  /** The record's attribsEx (a Windows FD's attributes, set by a Windows restore). */
  attribsEx: string;
}

export type FileKind = 'regular' | 'fifo' | 'device';

export function openedFile(target: string, fname: string, stat: BaculaStat, attribsEx: string, handle: DataSink, kind: FileKind): OpenFile {
  if (handle instanceof DescriptorSink && stat.size >= BigInt(QUEUED_WRITE_FILE_BYTES)) handle.queueWrites();
  return { target, stat, handle, fname, sequential: kind === 'fifo', cursor: 0, end: 0, sized: false, regular: kind === 'regular', attribsEx };
}

const DATA_STREAMS: ReadonlySet<number> = new Set([STREAM.FILE_DATA, STREAM.GZIP_DATA, STREAM.SPARSE_DATA, STREAM.SPARSE_GZIP_DATA, STREAM.COMPRESSED_DATA, STREAM.SPARSE_COMPRESSED_DATA]);
const SPARSE_STREAMS: ReadonlySet<number> = new Set([STREAM.SPARSE_DATA, STREAM.SPARSE_GZIP_DATA, STREAM.SPARSE_COMPRESSED_DATA]);

export function isDataStream(stream: number): boolean {
  return DATA_STREAMS.has(stream);
}

/**
 * The bytes one data record carries, and where they go (null: after the last ones). A record that
 * cannot be decoded (cut short, damaged, an algorithm agentfd lacks) throws UndecodableData: the
 * file it belongs to cannot be restored whole.
 */
export function decodeDataRecord(stream: number, record: Buffer): { data: Buffer; position: number | null } {
  let data = record;
  let position: number | null = null;
  if (SPARSE_STREAMS.has(stream)) {
    if (data.length < 8) throw new UndecodableData(`a sparse record of ${data.length} bytes has no 8-byte offset`);
    position = Number(data.readBigUInt64BE(0));
    data = data.subarray(8);
  }
  if (stream === STREAM.GZIP_DATA || stream === STREAM.SPARSE_GZIP_DATA) data = inflate(data);
  else if (stream === STREAM.COMPRESSED_DATA || stream === STREAM.SPARSE_COMPRESSED_DATA) data = readCompressedBlock(data);
  return { data, position };
}

/**
 * Room for one record's inflated bytes at once: bacula-fd compresses one read buffer (64 KiB by
 * default) per record, and the spare KiB lets zlib end the stream in the same call. zlib's
 * default 16 KiB output chunks were inflated into four buffers and concatenated, a copy and three
 * allocations per record; 128 KiB allocated twice what a record needs, and in a large restore
 * that memory outside the heap is what sets V8's full collections going (bsock.ts SlabReceiver).
 * More than this still works, in pieces.
 */
const INFLATE_CHUNK = 64 * 1024 + 1024;

function inflate(data: Buffer): Buffer {
  try {
    return inflateSync(data, { chunkSize: INFLATE_CHUNK });
  } catch (error) {
    throw new UndecodableData(`its GZIP record does not decompress (${(error as Error).message}): the record is damaged`);
  }
}

const ZEROS = Buffer.alloc(64 * 1024);

/**
 * Write one data record into `file`; returns the bytes written. `release`: told once `record` is
 * no longer needed (decoded into other memory, or written; SdRecord's release).
 */
export async function writeDataRecord(file: OpenFile, stream: number, record: Buffer, release?: () => void): Promise<number> {
  if (SPARSE_STREAMS.has(stream) && record.length >= 8) file.sized = true;
  const { data, position } = decodeDataRecord(stream, record);
  if (data.buffer !== record.buffer) release?.(); // inflated or decompressed: the record is read
  const at = position ?? file.cursor;
  if (file.sequential) {
    for (let gap = at - file.cursor; gap > 0; gap -= ZEROS.length) await file.handle.write(ZEROS, 0, Math.min(gap, ZEROS.length), null);
    await file.handle.write(data, 0, data.length, null);
  } else if (file.handle instanceof DescriptorSink) {
    await file.handle.write(data, 0, data.length, at, release);
  } else {
    await file.handle.write(data, 0, data.length, at);
  }
  file.cursor = (file.sequential ? Math.max(at, file.cursor) : at) + data.length;
  file.end = Math.max(file.end, file.cursor);
  return data.length;
}

/** The size `file` has once closed: what was written, or st_size when sparse data left a trailing hole. */
export function restoredSize(file: OpenFile): bigint {
  const written = BigInt(file.end);
  return file.regular && file.sized && written < file.stat.size ? file.stat.size : written;
}

/**
 * Close `file` once its data is done. Sparse data leaves the trailing hole unwritten when the last
 * block was skipped: st_size says how long the file was. `beforeClose` runs once the size is set
 * (or failed to be), while the file is still open. Throws (after closing) when that size cannot be
 * set.
 */
export async function closeFileData(file: OpenFile, beforeClose: () => void = () => undefined): Promise<void> {
  let sizeError: unknown = null;
  try {
    if (file.regular && file.sized && BigInt(file.end) < file.stat.size) await file.handle.truncate(Number(file.stat.size));
  } catch (error) {
    sizeError = error;
  }
  try {
    beforeClose();
  } finally {
    await file.handle.close();
  }
  if (sizeError !== null) throw sizeError;
}
