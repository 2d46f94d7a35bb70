/**
 * Compression codecs, by the id stored in every record (so a reader always knows which decoder a
 * record needs, and no decoder is ever dropped): 0 none, 1 gzip, 2 zstd (zstd-napi, chosen
 * because it installs from npm without downloading binaries and wraps libzstd's stable API).
 * Where zstd-napi's addon is not built (Windows Node.js running a tree built on Linux), Node's own
 * zstd (node:zlib, Node 22.15 and later) writes and reads the same frames.
 *
 * gzip is compressed with libdeflate through agentfd's small addon (binding/src/afd_deflate.c)
 * where it was built, else with node:zlib; both write standard gzip, and node:zlib decompresses
 * either.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { gunzipSync, gzipSync, constants as zlibConstants } from 'node:zlib';
import { AgentfdError } from '../errors.js';

export const CODEC_IDS = { none: 0, gzip: 1, zstd: 2 } as const;
export type CodecName = keyof typeof CODEC_IDS;

export interface Compression {
  codec: CodecName;
  level: number;
}

const LEVELS: Record<CodecName, [number, number, number]> = { none: [0, 0, 0], gzip: [1, 9, 6], zstd: [1, 19, 3] };

/** Parse "none", "gzip", "gzip:6", "zstd", "zstd:19". */
export function parseCompression(spec: string): Compression {
  const match = /^(none|gzip|zstd)(?::(\d+))?$/.exec(spec.trim());
  if (!match) {
    throw new AgentfdError('E_CONFIG', `compression "${spec}" is not one of none, gzip:1-9, zstd:1-19`);
  }
  const codec = match[1] as CodecName;
  const [min, max, fallback] = LEVELS[codec];
  const level = match[2] === undefined ? fallback : Number(match[2]);
  if (codec === 'none') {
    if (match[2] !== undefined) throw new AgentfdError('E_CONFIG', 'compression "none" takes no level');
    return { codec, level: 0 };
  }
  if (level < min || level > max) {
    throw new AgentfdError('E_CONFIG', `compression level ${level} is out of range for ${codec} (${min}-${max})`);
  }
  return { codec, level };
}

export function formatCompression(c: Compression): string {
  return c.codec === 'none' ? 'none' : `${c.codec}:${c.level}`;
}

export function codecName(id: number): CodecName | undefined {
  return (Object.keys(CODEC_IDS) as CodecName[]).find((name) => CODEC_IDS[name] === id);
}

type Deflate = { gzip: (input: Uint8Array, level: number) => Buffer; zlib?: ZlibDeflate };
/** zlib-format (RFC 1950) compression of `input`, after `headroom` free bytes. */
export type ZlibDeflate = (input: Uint8Array, level: number, headroom: number) => Buffer;
let deflate: Deflate | null | undefined;

/** The libdeflate addon, or null where it was not built (no libdeflate-dev): then node:zlib. */
function libdeflate(): Deflate | null {
  if (deflate !== undefined) return deflate;
  // From src/pipeline or dist/pipeline alike: the package root is two levels up.
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'binding', 'build', 'Release', 'afd_deflate.node');
  try {
    deflate = existsSync(file) ? (createRequire(import.meta.url)(file) as Deflate) : null;
  } catch {
    deflate = null; // built for another Node, or its libdeflate is gone: zlib still works
  }
  return deflate;
}

type Zstd = { compress(data: Uint8Array, level: number): Uint8Array; decompress(data: Uint8Array, size: number): Uint8Array; engine: string };
let zstd: Zstd | undefined;

/** Node's own zstd (node:zlib), typed here because @types/node for Node 20 does not know it. */
type NodeZstd = {
  zstdCompressSync?: (data: Uint8Array, options: object) => Buffer;
  zstdDecompressSync?: (data: Uint8Array, options: object) => Buffer;
  constants: Record<string, number>;
};

/** zstd-napi, or node:zlib's zstd where zstd-napi's addon cannot be loaded. */
function zstdCodec(): Zstd {
  if (zstd) return zstd;
  try {
    const load = createRequire(import.meta.url);
    const napi = load('zstd-napi') as { compress(d: Uint8Array, o: object): Buffer };
    // Not napi.decompress(): it allocates the sum of the sizes every frame of the input declares,
    // or grows without bound when a frame declares none. ZSTD_decompressDCtx into a buffer of the
    // recorded size fails ("Destination buffer is too small") as soon as the output would exceed it.
    const binding = load('zstd-napi/binding') as { DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number } };
    const dctx = new binding.DCtx();
    zstd = {
      engine: 'zstd-napi',
      compress: (d, level) => napi.compress(d, { compressionLevel: level }),
      decompress: (d, size) => {
        const out = Buffer.allocUnsafe(size);
        return out.subarray(0, dctx.decompress(out, d));
      },
    };
  } catch (error) {
    const z = zlib as unknown as NodeZstd;
    if (!z.zstdCompressSync || !z.zstdDecompressSync) {
      throw new AgentfdError('E_CODEC', `zstd is not available: zstd-napi's addon cannot be loaded (${(error as Error).message}) and this Node.js (${process.version}) has no built-in zstd (Node 22.15 or later has). Run npm rebuild zstd-napi, or use gzip.`);
    }
    const { zstdCompressSync, zstdDecompressSync, constants } = z as Required<NodeZstd>;
    zstd = {
      engine: 'node:zlib',
      // The pledged size puts the content size in the frame header, as zstd-napi's one-shot call does.
      compress: (d, level) => zstdCompressSync(d, { params: { [constants.ZSTD_c_compressionLevel!]: level }, pledgedSrcSize: d.length }),
      decompress: (d, size) => zstdDecompressSync(d, { maxOutputLength: Math.max(size, 1) }),
    };
  }
  return zstd;
}

/** Which library compresses zstd here (for reports and the Windows lane). */
export function zstdEngine(): string {
  return zstdCodec().engine;
}

/** libdeflate's zlib format (serve's GZIP records), or null where the addon is not built: then node:zlib. */
export function libdeflateZlib(): ZlibDeflate | null {
  return libdeflate()?.zlib ?? null;
}

/** Which library compresses gzip here (for benchmarks and reports). */
export function gzipEngine(): 'libdeflate' | 'zlib' {
  return libdeflate() ? 'libdeflate' : 'zlib';
}

/** Compress one chunk (runs inside the compression workers). */
export function compressChunk(data: Uint8Array, c: Compression): Uint8Array {
  switch (c.codec) {
    case 'none':
      return data;
    case 'gzip':
      return libdeflate()?.gzip(data, c.level) ?? gzipSync(data, { level: c.level });
    case 'zstd':
      return zstdCodec().compress(data, c.level);
  }
}

/**
 * `plain` compressed when that makes it smaller, else as it is, with the codec id that says which
 * (incompressible data is stored as it is rather than grown).
 */
export function packChunk(plain: Uint8Array, c: Compression): { codecId: number; stored: Uint8Array } {
  if (c.codec === 'none' || plain.length === 0) return { codecId: CODEC_IDS.none, stored: plain };
  const out = compressChunk(plain, c);
  return out.length < plain.length ? { codecId: CODEC_IDS[c.codec], stored: out } : { codecId: CODEC_IDS.none, stored: plain };
}

/**
 * Decompress one chunk whose plaintext is `expectedLength` bytes. A result of any other length is
 * corruption; the output is capped at `expectedLength` for every codec (decoding stops there, it
 * is not buffered), so a hostile record cannot make us allocate more than it claims. The claim
 * itself is capped where the record is decoded (MAX_CHUNK_PLAINTEXT, records.ts).
 */
export function decompressChunk(data: Uint8Array, codecId: number, expectedLength: number): Uint8Array {
  const codec = codecName(codecId);
  let out: Uint8Array;
  try {
    switch (codec) {
      case 'none':
        out = data;
        break;
      case 'gzip':
        out = gunzipSync(data, { maxOutputLength: Math.max(expectedLength, 1), finishFlush: zlibConstants.Z_SYNC_FLUSH });
        break;
      case 'zstd':
        checkZstdContentSize(data, expectedLength);
        out = zstdCodec().decompress(data, expectedLength);
        break;
      default:
        throw new AgentfdError('E_CODEC', `unknown compression codec id ${codecId}: this volume was written by a newer agentfd; upgrade to read it`);
    }
  } catch (error) {
    if (error instanceof AgentfdError) throw error;
    const message = (error as Error).message;
    if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' || /Destination buffer is too small|Maximum output length/i.test(message)) {
      throw new AgentfdError(
        'E_CORRUPT_DATA',
        `a ${codec} chunk decompresses to more than the ${expectedLength} bytes recorded for it: it is damaged or forged; decoding was stopped there`,
        { cause: error },
      );
    }
    throw new AgentfdError('E_CORRUPT_DATA', `a ${codec} chunk does not decompress (${message})`, { cause: error });
  }
  if (out.length !== expectedLength) {
    throw new AgentfdError('E_CORRUPT_DATA', `a ${codec} chunk decompressed to ${out.length} bytes where ${expectedLength} were recorded`);
  }
  return out;
}

/**
 * A zstd frame declares its decompressed size in its header; libzstd allocates that much. Check it
 * against the recorded length first, so a crafted frame cannot ask for gigabytes.
 */
function checkZstdContentSize(data: Uint8Array, expected: number): void {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length < 6 || bytes.readUInt32LE(0) !== 0xfd2fb528) {
    throw new AgentfdError('E_CORRUPT_DATA', 'a zstd chunk does not start with a zstd frame');
  }
  const descriptor = bytes[4]!;
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const dictIdBytes = [0, 1, 2, 4][descriptor & 3]!;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  const at = 5 + (singleSegment ? 0 : 1) + dictIdBytes;
  if (fcsBytes === 0 || bytes.length < at + fcsBytes) {
    throw new AgentfdError('E_CORRUPT_DATA', 'a zstd chunk does not declare its size (agentfd always writes it)');
  }
  const size =
    fcsBytes === 1 ? bytes[at]! : fcsBytes === 2 ? bytes.readUInt16LE(at) + 256 : fcsBytes === 4 ? bytes.readUInt32LE(at) : Number(bytes.readBigUInt64LE(at));
  if (size !== expected) {
    throw new AgentfdError('E_CORRUPT_DATA', `a zstd chunk declares ${size} bytes where ${expected} were recorded`);
  }
}
