/**
 * The backup side of the pipeline for one stream, with real codecs, the real worker pool and the
 * real hashing thread: an agent's pieces of any size become chunks of exactly CHUNK_SIZE (the last
 * shorter), in order, whose bytes and digest are the stream's; the agent is read only as far ahead
 * as the encoder's bound; and a stream that breaks off fails the encoder loudly, with no summary.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CODEC_IDS, decompressChunk, parseCompression } from '../../src/pipeline/codecs.js';
import { CompressPool } from '../../src/pipeline/compress-pool.js';
import { CHUNK_SIZE, encodeStream, type EncodedChunk, type EncodeOptions, type StreamSummary } from '../../src/pipeline/stream-encoder.js';
import { StreamHasher } from '../../src/pipeline/stream-hasher.js';

const pool = new CompressPool(2);
const hasher = new StreamHasher();
afterAll(async () => {
  await pool.close();
  await hasher.close();
});

/** The agent's side: `data` delivered in pieces of the sizes given in turn. */
async function* pieces(data: Buffer, sizes: number[], read: { pieces: number } = { pieces: 0 }): AsyncGenerator<Uint8Array> {
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - at);
    read.pieces++;
    yield Uint8Array.from(data.subarray(at, at + n));
    at += n;
  }
}

async function encodeAll(source: AsyncIterable<Uint8Array>, options: EncodeOptions): Promise<{ chunks: EncodedChunk[]; summary: StreamSummary }> {
  const chunks: EncodedChunk[] = [];
  const encoder = encodeStream(source, options);
  for (let step = await encoder.next(); ; step = await encoder.next()) {
    if (step.done) return { chunks, summary: step.value };
    chunks.push(step.value);
  }
}

/** Half text, half random, so that chunks compress to different sizes and take different times. */
function stream(bytes: number): Buffer {
  const text = Buffer.from('2026-11-26 12:00:00 INFO worker=3 status=200\n'.repeat(Math.ceil(bytes / 90)));
  return Buffer.concat([text.subarray(0, bytes >> 1), randomBytes(bytes - (bytes >> 1))]);
}

describe('stream encoder', () => {
  it.each([
    ['zstd:3, hashed here', { compression: parseCompression('zstd:3'), pool }],
    ['gzip:1, hashed on the hashing thread', { compression: parseCompression('gzip:1'), pool, hasher }],
    ['none, hashed on the hashing thread', { compression: parseCompression('none'), pool: null, hasher }],
  ])('cuts odd pieces into exact chunks, in order, that decode to the stream (%s)', async (_name, options: EncodeOptions) => {
    const data = stream(5 * CHUNK_SIZE + 12_345);
    const { chunks, summary } = await encodeAll(pieces(data, [1, 70_000, CHUNK_SIZE, 3 * CHUNK_SIZE + 7, 999]), options);
    expect(chunks.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(chunks.map((c) => c.plainLength)).toEqual([...Array(5).fill(CHUNK_SIZE), 12_345]);
    const decoded = Buffer.concat(chunks.map((c) => decompressChunk(c.stored, c.codecId, c.plainLength)));
    expect(decoded.equals(data)).toBe(true);
    expect(summary).toEqual({ bytes: data.length, chunks: 6, sha256: createHash('sha256').update(data).digest('hex') });
    if (options.compression.codec !== 'none') expect(chunks.some((c) => c.codecId === CODEC_IDS[options.compression.codec as 'zstd' | 'gzip'])).toBe(true);
  });

  it('encodes an empty stream as no chunk, with the digest of nothing', async () => {
    const { chunks, summary } = await encodeAll(pieces(Buffer.alloc(0), [1]), { compression: parseCompression('zstd:3'), pool, hasher });
    expect(chunks).toEqual([]);
    expect(summary).toEqual({ bytes: 0, chunks: 0, sha256: createHash('sha256').digest('hex') });
  });

  it('reads the agent only as far ahead as its bound while the consumer waits', async () => {
    const read = { pieces: 0 };
    const encoder = encodeStream(pieces(stream(40 * CHUNK_SIZE), [CHUNK_SIZE], read), { compression: parseCompression('zstd:1'), pool, inFlight: 4 });
    await encoder.next();
    await new Promise((r) => setTimeout(r, 200));
    // One chunk handed out, at most four in flight and two reads ahead: far from all forty.
    expect(read.pieces).toBeLessThanOrEqual(1 + 4 + 2);
    await encoder.return(undefined as never);
  });

  it('fails when the stream breaks off, and gives no summary that would pass it off as whole', async () => {
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Uint8Array.from(randomBytes(CHUNK_SIZE + 10));
      throw new Error('EIO: i/o error, read');
    }
    await expect(encodeAll(broken(), { compression: parseCompression('zstd:3'), pool, hasher })).rejects.toThrow('EIO: i/o error, read');
  });
});
