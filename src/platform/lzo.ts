/**
 * agentfd's binding of liblzo2 (the LZO library Bacula links), through koffi: LZO1X-1, the one
 * variant bacula-fd 9.6 writes (lzo1x_1_compress) and reads (lzo1x_decompress_safe), for serve's
 * `compression = LZO`. The same library gives the same bytes as bacula-fd for the same block.
 *
 * Loaded on first use, by its usual name or from AGENTFD_LZO_LIBRARY (a path, for an lzo2.dll kept
 * beside agentfd on Windows, say). Where the library is not installed (Debian: liblzo2-2; Windows
 * has no lzo2.dll unless one is installed), lzo() is null and lzoMissing() says why: callers then
 * send plain data with a warning, or fail a file they cannot decode.
 */
import koffi from 'koffi';
import { IS_WINDOWS } from './os.js';

/** LZO1X-1, one block at a time. */
export interface Lzo {
  /**
   * The LZO1X-1 compression of `plain` (longer than `plain` when it does not compress: LZO has no
   * stored blocks), after `headroom` bytes left for the caller's header.
   */
  compress(plain: Uint8Array, headroom?: number): Buffer;
  /**
   * The same, written into `out` at `at`, where lzoBound(plain.length) bytes must be free (liblzo2
   * does not check: it relies on that room); returns the compressed length. No copy, no allocation.
   */
  compressInto(plain: Uint8Array, out: Uint8Array, at: number): number;
  /**
   * The block `packed` decompresses to, at most `limit` bytes; throws LzoError when it is damaged,
   * does not end where its input ends, or would be longer than `limit`.
   */
  decompress(packed: Uint8Array, limit: number): Buffer;
}

/** A block liblzo2 refused, with its LZO_E_* code. */
export class LzoError extends Error {
  constructor(readonly code: number) {
    super(`LZO error ${code} (${LZO_ERRORS[code] ?? 'unknown'})`);
  }
}

const LZO_E_OK = 0;
const LZO_E_OUTPUT_OVERRUN = -5;
const LZO_ERRORS: Record<number, string> = {
  [-1]: 'LZO_E_ERROR',
  [-4]: 'LZO_E_INPUT_OVERRUN: the block ends too early',
  [LZO_E_OUTPUT_OVERRUN]: 'LZO_E_OUTPUT_OVERRUN: the block decompresses to more than allowed',
  [-6]: 'LZO_E_LOOKBEHIND_OVERRUN: the block refers to data before its start',
  [-7]: 'LZO_E_EOF_NOT_FOUND: the block has no end marker',
  [-8]: 'LZO_E_INPUT_NOT_CONSUMED: bytes follow the end of the block',
};

/** LZO 2.10's lzo_init(): the library checks that our idea of its types matches its own. */
const LZO_VERSION = 0x20a0;
const POINTER = 8; // koffi runs on 64-bit Node only here: lzo_uint, pointers and the dict are 8 bytes
const WORK_MEMORY = 16384 * POINTER; // LZO1X_1_MEM_COMPRESS
/** A bacula-fd block is 64 KiB unless its Maximum Network Buffer Size says more. */
const FIRST_OUTPUT = 256 * 1024;

interface Bound {
  compress: (src: Uint8Array, srcLen: number, dst: Uint8Array, dstLen: [number], work: Uint8Array) => number;
  decompress: (src: Uint8Array, srcLen: number, dst: Uint8Array, dstLen: [number], work: null) => number;
}

let bound: Bound | null | undefined;
let missing = '';
let work: Buffer | null = null;

function bind(): Bound | null {
  if (bound !== undefined) return bound;
  const name = process.env.AGENTFD_LZO_LIBRARY || (IS_WINDOWS ? 'lzo2.dll' : process.platform === 'darwin' ? 'liblzo2.2.dylib' : 'liblzo2.so.2');
  try {
    const lib = koffi.load(name);
    const init = lib.func('int __lzo_init_v2(unsigned int v, int s1, int s2, int s3, int s4, int s5, int s6, int s7, int s8, int s9)') as (...args: number[]) => number;
    const long = IS_WINDOWS ? 4 : 8;
    const status = init(LZO_VERSION, 2, 4, long, 4, POINTER, POINTER, POINTER, POINTER, 6 * POINTER);
    if (status !== LZO_E_OK) throw new Error(`lzo_init() returned ${status}`);
    bound = {
      compress: lib.func('int lzo1x_1_compress(const uint8_t *src, size_t src_len, _Out_ uint8_t *dst, _Inout_ size_t *dst_len, uint8_t *wrkmem)') as Bound['compress'],
      decompress: lib.func('int lzo1x_decompress_safe(const uint8_t *src, size_t src_len, _Out_ uint8_t *dst, _Inout_ size_t *dst_len, void *wrkmem)') as Bound['decompress'],
    };
  } catch (error) {
    missing = `${name} cannot be loaded (${(error as Error).message})`;
    bound = null;
  }
  return bound;
}

/** The worst case of LZO1X-1's output for `n` bytes (lzo's own formula, which Bacula sizes its buffer with). */
export function lzoBound(n: number): number {
  return n + Math.floor(n / 16) + 64 + 3;
}

/** Buffers kept between calls (the calls are synchronous): the results are copied out of them. */
let scratch = Buffer.alloc(0);
function scratchOf(size: number): Buffer {
  if (scratch.length < size) scratch = Buffer.allocUnsafe(size);
  return scratch;
}

const api: Lzo = {
  compress(plain, headroom = 0) {
    const lib = bind()!;
    work ??= Buffer.alloc(WORK_MEMORY);
    const out = scratchOf(lzoBound(plain.length));
    const length: [number] = [out.length];
    const status = lib.compress(plain, plain.length, out, length, work);
    if (status !== LZO_E_OK) throw new LzoError(status);
    const result = Buffer.allocUnsafe(headroom + length[0]);
    out.copy(result, headroom, 0, length[0]);
    return result;
  },
  compressInto(plain, out, at) {
    const lib = bind()!;
    const room = out.length - at;
    if (at < 0 || room < lzoBound(plain.length)) throw new RangeError(`LZO needs ${lzoBound(plain.length)} bytes of room for ${plain.length} bytes, ${room} given`);
    work ??= Buffer.alloc(WORK_MEMORY);
    const length: [number] = [room];
    const status = lib.compress(plain, plain.length, out.subarray(at), length, work);
    if (status !== LZO_E_OK) throw new LzoError(status);
    return length[0];
  },
  decompress(packed, limit) {
    const lib = bind()!;
    // Bacula grows its buffer while the block does not fit; so do we, up to `limit`.
    for (let size = Math.min(limit, FIRST_OUTPUT); ; size = Math.min(limit, size * 2)) {
      const out = scratchOf(size);
      const length: [number] = [size];
      const status = lib.decompress(packed, packed.length, out, length, null);
      if (status === LZO_E_OUTPUT_OVERRUN && size < limit) continue;
      if (status !== LZO_E_OK) throw new LzoError(status);
      return Buffer.from(out.subarray(0, length[0]));
    }
  },
};

/** LZO1X-1 through liblzo2, or null where the library cannot be loaded (lzoMissing() says why). */
export function lzo(): Lzo | null {
  return bind() ? api : null;
}

/** Why lzo() is null: the library's name and the loader's error; '' when it is there. */
export function lzoMissing(): string {
  bind();
  return missing;
}
