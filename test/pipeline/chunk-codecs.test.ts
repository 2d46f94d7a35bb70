/**
 * Every chunk codec, on its own: each round-trips byte for byte at the sizes where chunking turns
 * (empty, one byte, the inline-compression limit, a whole 1 MiB chunk); incompressible data is
 * stored as it is; and a zstd chunk cut short, mislabelled or forged fails loudly (E_CORRUPT_DATA,
 * E_CODEC), never yielding short or extra bytes.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CODEC_IDS, decompressChunk, packChunk, parseCompression, type Compression } from '../../src/pipeline/codecs.js';
import { CHUNK_SIZE } from '../../src/pipeline/stream-encoder.js';

const KiB = 1024;
const SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, CHUNK_SIZE - 1, CHUNK_SIZE];

/** Half text, half random: compressible, but not to nothing. */
function mixed(n: number): Buffer {
  const text = Buffer.from('INFO request served in 12 ms; '.repeat(Math.ceil(n / 60)));
  return Buffer.concat([text.subarray(0, n >> 1), randomBytes(n - (n >> 1))]);
}

describe('chunk codecs', () => {
  it.each(['none', 'gzip:1', 'gzip:9', 'zstd:1', 'zstd:19'])('%s round-trips every size where chunking turns', (spec) => {
    const compression = parseCompression(spec);
    for (const size of SIZES) {
      const plain = mixed(size);
      const packed = packChunk(plain, compression);
      if (compression.codec !== 'none' && size >= 64 * KiB) expect(packed.codecId, `${size}`).toBe(CODEC_IDS[compression.codec]);
      expect(Buffer.from(decompressChunk(packed.stored, packed.codecId, size)).equals(plain), `${spec} at ${size} bytes`).toBe(true);
    }
  });

  it('stores a chunk that does not shrink as it is, labelled none', () => {
    const plain = randomBytes(CHUNK_SIZE);
    for (const spec of ['gzip:6', 'zstd:3']) {
      const packed = packChunk(plain, parseCompression(spec));
      expect(packed.codecId).toBe(CODEC_IDS.none);
      expect(packed.stored).toBe(plain);
    }
  });

  it('refuses a zstd chunk that lies about its size, is cut short, or holds more than it declares, before or while decoding', () => {
    const zstd: Compression = { codec: 'zstd', level: 3 };
    const plain = mixed(200_000);
    const { stored } = packChunk(plain, zstd);
    const refused = (data: Uint8Array, length: number, message: RegExp) =>
      expect(() => decompressChunk(data, CODEC_IDS.zstd, length)).toThrow(expect.objectContaining({ code: 'E_CORRUPT_DATA', message: expect.stringMatching(message) }));
    refused(stored, plain.length + 1, /declares 200000 bytes where 200001 were recorded/);
    refused(stored.subarray(0, stored.length - 10), plain.length, /does not decompress/);
    refused(Buffer.concat([Buffer.from('FAKE'), stored.subarray(4)]), plain.length, /does not start with a zstd frame/);
    // A second frame after the first: its header declares the recorded size, the bytes are more.
    // Decoding stops at the recorded size instead of allocating what the frames hold.
    refused(Buffer.concat([stored, stored]), plain.length, /decompresses to more than the 200000 bytes recorded for it: it is damaged or forged; decoding was stopped there/);
    // (A byte altered inside a block can decode to other bytes of the same length: the stream's
    // SHA-256 catches that, where the session is read: test/sink/tamper.test.ts.)
  });

  it('refuses a chunk labelled with a codec it does not know, telling to upgrade', () => {
    expect(() => decompressChunk(Buffer.from('x'), 9, 1)).toThrow(expect.objectContaining({ code: 'E_CODEC', message: expect.stringContaining('written by a newer agentfd; upgrade to read it') }));
  });

  it('refuses a stored chunk whose length is not the recorded one (codec none)', () => {
    expect(() => decompressChunk(Buffer.alloc(10), CODEC_IDS.none, 11)).toThrow(expect.objectContaining({ code: 'E_CORRUPT_DATA', message: 'a none chunk decompressed to 10 bytes where 11 were recorded' }));
  });

  it('parses compression settings, refusing levels out of range', () => {
    expect(parseCompression('zstd')).toEqual({ codec: 'zstd', level: 3 });
    expect(parseCompression(' gzip:9 ')).toEqual({ codec: 'gzip', level: 9 });
    expect(() => parseCompression('zstd:20')).toThrow('compression level 20 is out of range for zstd (1-19)');
    expect(() => parseCompression('none:1')).toThrow('compression "none" takes no level');
    expect(() => parseCompression('lz4')).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
