/**
 * The data records of `compression = LZO` as bacula-fd 9.6 writes them (filed/backup.c
 * do_lzo_compression) and reads them (filed/restore.c decompress_data): streams 29
 * (STREAM_COMPRESSED_DATA) and 30 (STREAM_SPARSE_COMPRESSED_DATA, the 8-byte offset first), each
 * record one block read from the file, compressed on its own with LZO1X-1 and preceded by a
 * comp_stream_header (ch.h) of 12 bytes, big-endian, in the order Bacula serialises it (not the
 * struct's): magic "LZOX", the compressed size (the header not counted), level (always 0: bacula-fd
 * never sets it) and version 1. A block that does not compress is still sent compressed, grown:
 * LZO has no stored blocks, and bacula-fd has no fallback (its buffer is sized for the growth).
 */
import { lzo, lzoBound, lzoMissing, LzoError, type Lzo } from '../../platform/lzo.js';

export const COMP_HEADER_SIZE = 12;
const LZO_MAGIC = 0x4c5a4f58; // "LZOX" (COMPRESS_LZO1X)
const COMP_HEAD_VERSION = 1;
/**
 * The most one block may decompress to: a block is one read of bacula-fd's network buffer, which
 * a Bacula message (1,000,000 bytes at most) must hold, so no real block comes near this.
 */
const MAX_BLOCK = 1024 * 1024;

/** A record whose data cannot be restored: what is wrong with it, in words for the job's error. */
export class UndecodableData extends Error {}

function lzoCodec(): Lzo {
  const codec = lzo();
  if (!codec) throw new Error(`LZO compression is not available: ${lzoMissing()}`);
  return codec;
}

/** `plain` as one LZO record's body, after `headroom` bytes left for a sparse offset. */
export function lzoRecord(plain: Uint8Array, headroom = 0): Buffer {
  const record = lzoCodec().compress(plain, headroom + COMP_HEADER_SIZE);
  writeHeader(record, headroom, record.length - headroom - COMP_HEADER_SIZE);
  return record;
}

/** The most room lzoRecordInto may need for a block of `length` bytes. */
export function lzoRecordRoom(length: number, headroom: number): number {
  return headroom + COMP_HEADER_SIZE + lzoBound(length);
}

/**
 * lzoRecord written into `out` at `at` (lzoRecordRoom bytes free there): the same bytes, without
 * an allocation or a copy per block. Returns the frame's length, headroom included.
 */
export function lzoRecordInto(plain: Uint8Array, out: Buffer, at: number, headroom: number): number {
  const packed = lzoCodec().compressInto(plain, out, at + headroom + COMP_HEADER_SIZE);
  writeHeader(out, at + headroom, packed);
  return headroom + COMP_HEADER_SIZE + packed;
}

/** The comp_stream_header at `at`, for `packed` compressed bytes. */
function writeHeader(record: Buffer, at: number, packed: number): void {
  record.writeUInt32BE(LZO_MAGIC, at);
  record.writeUInt32BE(packed, at + 4);
  record.writeUInt16BE(0, at + 8);
  record.writeUInt16BE(COMP_HEAD_VERSION, at + 10);
}

/** The plain block of one record body of stream 29 or 30 (after the offset); UndecodableData when it cannot be had. */
export function readCompressedBlock(body: Buffer): Buffer {
  if (body.length < COMP_HEADER_SIZE) throw new UndecodableData(`a record of ${body.length} bytes is too short for its ${COMP_HEADER_SIZE}-byte compression header`);
  const magic = body.readUInt32BE(0);
  const size = body.readUInt32BE(4);
  const version = body.readUInt16BE(10);
  if (version !== COMP_HEAD_VERSION) throw new UndecodableData(`its compression header has version ${version} where Bacula writes ${COMP_HEAD_VERSION}: the record is damaged`);
  if (size + COMP_HEADER_SIZE !== body.length) {
    throw new UndecodableData(`its compression header announces ${size} compressed bytes but the record holds ${body.length - COMP_HEADER_SIZE}: the record is damaged or cut short`);
  }
  if (magic !== LZO_MAGIC) throw new UndecodableData(`it is compressed with ${magicText(body)}, which agentfd cannot decompress`);
  const codec = lzo();
  if (!codec) throw new UndecodableData(`it is compressed with LZO and ${lzoMissing()}; install liblzo2 (Debian: liblzo2-2) and restore it again`);
  try {
    return codec.decompress(body.subarray(COMP_HEADER_SIZE), MAX_BLOCK);
  } catch (error) {
    if (error instanceof LzoError) throw new UndecodableData(`its LZO block does not decompress (${error.message}): the record is damaged`);
    throw error;
  }
}

/** A header's magic as Bacula's four letters ("GZIP", "LZOX") or, when not printable, in hex. */
export function magicText(body: Buffer): string {
  const magic = body.subarray(0, 4);
  const text = magic.toString('latin1');
  return /^[\x20-\x7e]{4}$/.test(text) ? `"${text}"` : `0x${magic.toString('hex')}`;
}
