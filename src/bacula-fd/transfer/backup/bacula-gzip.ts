/**
 * `[serve] gzip_like_bacula_fd = true`: a job's GZIP blocks compressed as bacula-fd 9.6 compresses
 * them (filed/backup.c), so the records, and the byte counts of the Director's report, are
 * bacula-fd's to the byte. bacula-fd opens one zlib stream per job (deflateInit at the default
 * level), sets each file's level on it (deflateParams), and for each block read deflates to the
 * end (Z_FINISH) into its compression buffer, then resets the stream (deflateReset); all with the
 * system's zlib (platform/zlib.ts), not the one Node bundles, whose bytes differ. Done here the
 * same way: the system's zlib, one stream, one block after another on the main thread, in the
 * order the blocks are sent (so on one core; serve's default compresses on every core).
 */
import { resetDeflater, type ResetDeflater } from '../../../platform/zlib.js';
import { compressBlock, type FrameCodec } from './frame-codec.js';

/** How a block becomes its record: compressBlock's signature. */
export type BlockCompressor = (plain: Uint8Array, codec: FrameCodec, headroom: number) => Buffer;

/** bacula-fd's read size (Maximum Network Buffer Size, 64 KiB by default: file-data.ts's FRAME). */
const BUF_SIZE = 64 * 1024;
/** LZO1X's own header (Bacula's comp_stream_header, 12 bytes), which sizes the buffer when bacula-fd links liblzo2. */
const COMP_STREAM_HEADER = 12;
/**
 * bacula-fd's compression buffer (jcr->compress_buf_size), built with LZO as Debian's is: the
 * larger of LZO's worst case and zlib's. A block's deflate output must fit in it, less the
 * sparse offset when there is one (max_compress_len); at 64 KiB it always does (zlib's worst
 * case, deflateBound, is 64 KiB + 33 bytes).
 */
export const COMPRESS_BUF_SIZE = Math.max(BUF_SIZE + Math.floor(BUF_SIZE / 16) + 67 + COMP_STREAM_HEADER, BUF_SIZE + Math.floor((BUF_SIZE + 999) / 1000) + 30);

/** One job's GZIP stream, opened at its first GZIP block. */
export class BaculaGzip {
  private deflater: ResetDeflater | null = null;

  /**
   * A block's record: GZIP through the job's stream, `headroom` bytes (the sparse offset) first;
   * LZO as usual (LZO keeps no state between blocks). A block whose output would not fit the
   * buffer throws, as bacula-fd ends the job ("Compression deflate error"); it never sends such a
   * block uncompressed.
   */
  readonly compress: BlockCompressor = (plain, codec, headroom) => {
    if (codec.gzip === null) return compressBlock(plain, codec, headroom);
    this.deflater ??= resetDeflater();
    return this.deflater.block(plain, codec.gzip, COMPRESS_BUF_SIZE - headroom, headroom);
  };

  /** Frees the stream (the job ended). */
  end(): void {
    this.deflater?.end();
    this.deflater = null;
  }
}
