/**
 * One block compressed as a Bacula data record holds it (filed/backup.c): GZIP, each block its
 * own zlib stream at the FileSet's level; LZO, each block one LZO record (lzo-records.ts). The
 * same code runs inline and on serve's compression workers (frame-worker.ts), so a record is the
 * same bytes wherever it was made.
 *
 * GZIP is compressed with libdeflate where agentfd's addon is built (about twice zlib's speed at
 * the same level): its bytes differ from zlib's, but bacula-fd restores any valid zlib stream
 * (uncompress()). gzipRecord is the one place that picks the GZIP engine.
 */
import { deflateSync } from 'node:zlib';
import { libdeflateZlib } from '../../../pipeline/codecs.js';
import { lzoRecord, lzoRecordInto, lzoRecordRoom } from '../lzo-records.js';

/** A FileSet's compression: GZIP at `gzip` (1-9) or LZO; at most one is set. */
export interface FrameCodec {
  gzip: number | null;
  lzo: boolean;
}

/**
 * Whether a file's blocks are compressed on the job's workers: GZIP, yes (it costs ten times the
 * rest of the work); LZO, no: liblzo2 compresses a 64 KiB block in well under the cost of handing
 * it to a worker and back, so it runs inline, into one buffer per read.
 */
export function compressesOnWorkers(codec: FrameCodec): boolean {
  return codec.gzip !== null;
}

/** A GZIP record: `plain` as a zlib stream at `level`, after `headroom` bytes left for the caller. */
export function gzipRecord(plain: Uint8Array, level: number, headroom: number): Buffer {
  const libdeflate = libdeflateZlib();
  if (libdeflate) return libdeflate(plain, level, headroom);
  const packed = deflateSync(plain, { level });
  if (headroom === 0) return packed;
  const frame = Buffer.allocUnsafe(headroom + packed.length);
  packed.copy(frame, headroom);
  return frame;
}

/** `plain` compressed as one record, after `headroom` bytes left for the caller (a sparse offset). */
export function compressBlock(plain: Uint8Array, codec: FrameCodec, headroom: number): Buffer {
  if (codec.lzo) return lzoRecord(plain, headroom);
  return gzipRecord(plain, codec.gzip ?? 6, headroom);
}

/**
 * The records of several blocks of `data` (`parts`: offset, length, offset, length, ...), each
 * after `headroom` bytes. With LZO they are views of one buffer, written without a copy.
 */
export function compressBlocks(data: Uint8Array, parts: readonly number[], codec: FrameCodec, headroom: number): Buffer[] {
  const plains: Uint8Array[] = [];
  for (let i = 0; i < parts.length; i += 2) plains.push(data.subarray(parts[i]!, parts[i]! + parts[i + 1]!));
  if (!codec.lzo) return plains.map((plain) => compressBlock(plain, codec, headroom));
  const out = Buffer.allocUnsafeSlow(plains.reduce((n, plain) => n + lzoRecordRoom(plain.length, headroom), 0));
  const records: Buffer[] = [];
  let at = 0;
  for (const plain of plains) {
    const length = lzoRecordInto(plain, out, at, headroom);
    records.push(out.subarray(at, at + length));
    at += length;
  }
  return records;
}
