/**
 * One block compressed as a Bacula data record holds it (filed/backup.c): GZIP, each block its
 * own zlib stream at the FileSet's level; LZO, each block one LZO record (lzo-records.ts). The
 * same code runs inline and on serve's compression workers (frame-worker.ts), so a record is the
 * same bytes wherever it was made.
 */
import { deflateSync } from 'node:zlib';
import { lzoRecord } from '../lzo-records.js';

/** A FileSet's compression: GZIP at `gzip` (1-9) or LZO; at most one is set. */
export interface FrameCodec {
  gzip: number | null;
  lzo: boolean;
}

/** `plain` compressed as one record, after `headroom` bytes left for the caller (a sparse offset). */
export function compressBlock(plain: Uint8Array, codec: FrameCodec, headroom: number): Buffer {
  if (codec.lzo) return lzoRecord(plain, headroom);
  const packed = deflateSync(plain, { level: codec.gzip ?? undefined });
  if (headroom === 0) return packed;
  const frame = Buffer.allocUnsafe(headroom + packed.length);
  packed.copy(frame, headroom);
  return frame;
}
