/**
 * The compression worker pool on its own: many chunks in flight on few workers each come back as
 * their own chunk compressed (whatever order the workers finish in), an incompressible chunk comes
 * back as it was, and a chunk's buffer is moved to the worker, not copied.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CODEC_IDS, decompressChunk } from '../../src/pipeline/codecs.js';
import { CompressPool } from '../../src/pipeline/compress-pool.js';

const pool = new CompressPool(2);
afterAll(() => pool.close());

/** A chunk only its own index makes: compressible to a size that differs from chunk to chunk. */
function chunk(i: number): Uint8Array {
  const text = Buffer.from(`chunk ${i}: ${'abcdefghij'.repeat(1 + (i % 7))}\n`.repeat(4000 + i * 150));
  return Uint8Array.from(text); // a buffer of its own (transferable)
}

describe('compress pool', () => {
  it('hands each of many concurrent chunks back compressed as itself', async () => {
    const originals = Array.from({ length: 40 }, (_, i) => chunk(i));
    const copies = originals.map((c) => Buffer.from(c));
    const results = await Promise.all(originals.map((c) => pool.compress(c, { codec: 'zstd', level: 3 })));
    results.forEach((result, i) => {
      expect(result.raw).toBe(false);
      expect(Buffer.from(decompressChunk(result.data, CODEC_IDS.zstd, copies[i]!.length)).equals(copies[i]!), `chunk ${i}`).toBe(true);
    });
  });

  it('moves a chunk to its worker (the caller\'s view is emptied) and gives an incompressible one back as it was', async () => {
    const data = Uint8Array.from(randomBytes(256 * 1024));
    const copy = Buffer.from(data);
    const pending = pool.compress(data, { codec: 'gzip', level: 6 });
    expect(data.byteLength).toBe(0); // transferred, not copied
    const result = await pending;
    expect(result.raw).toBe(true);
    expect(Buffer.from(result.data).equals(copy)).toBe(true);
  });
});
