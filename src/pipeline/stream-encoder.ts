/**
 * Backup side of the pipeline for one stream: cut the agent's bytes into chunks, hash the
 * plaintext (SHA-256 of the whole stream), and compress chunks on the worker pool, several at
 * once, while keeping their order. Encryption happens when a chunk becomes a record (the record's
 * header is part of what the cipher authenticates), in the session writer.
 *
 * At most `inFlight` chunks are being compressed at a time, and a chunk is only read from the
 * agent when the consumer pulls: memory stays bounded at about (inFlight + 1) x chunkSize.
 */
import { createHash } from 'node:crypto';
import { AgentfdError } from '../errors.js';
import { CODEC_IDS, packChunk, type Compression } from './codecs.js';
import type { CompressPool } from './compress-pool.js';
import { prefetch } from './prefetch.js';
import type { StreamHasher } from './stream-hasher.js';

export const CHUNK_SIZE = 1024 * 1024;
/** Chunks smaller than this are compressed on the calling thread (small files, stream tails). */
const INLINE_LIMIT = 64 * 1024;

export interface EncodedChunk {
  index: number;
  plainLength: number;
  /** The codec actually used: chunks that do not shrink are stored as they are. */
  codecId: number;
  stored: Uint8Array;
}

export interface StreamSummary {
  bytes: number;
  chunks: number;
  sha256: string;
}

/** Regroup arbitrary pieces into chunks of exactly `size` bytes (the last one shorter). */
async function* rechunk(data: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const piece of data) {
    let offset = 0;
    if (pendingBytes === 0 && piece.length === size) {
      yield piece; // the common case (agents read exactly a chunk): no copy
      continue;
    }
    while (offset < piece.length) {
      const take = Math.min(size - pendingBytes, piece.length - offset);
      pending.push(piece.subarray(offset, offset + take));
      pendingBytes += take;
      offset += take;
      if (pendingBytes === size) {
        yield Buffer.concat(pending, size);
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

export interface EncodeOptions {
  compression: Compression;
  pool: CompressPool | null;
  /** Hash on this thread instead of the calling one (large streams). */
  hasher?: StreamHasher | null;
  chunkSize?: number;
  inFlight?: number;
}

/**
 * Encode a stream; the generator's return value is the stream's summary (size, chunk count,
 * digest), available once every chunk has been consumed.
 */
export async function* encodeStream(data: AsyncIterable<Uint8Array>, options: EncodeOptions): AsyncGenerator<EncodedChunk, StreamSummary> {
  const hasher = options.hasher ?? null;
  const hash = hasher ? null : createHash('sha256');
  const hashed = hasher?.begin() ?? 0;
  const size = options.chunkSize ?? CHUNK_SIZE;
  const inFlight = options.inFlight ?? 4;
  const compress = options.compression.codec !== 'none' && options.pool !== null;
  const queue: Promise<EncodedChunk>[] = [];
  let bytes = 0;
  let index = 0;

  const submit = (chunk: Uint8Array, i: number): Promise<EncodedChunk> => {
    if (!compress) return Promise.resolve({ index: i, plainLength: chunk.length, codecId: CODEC_IDS.none, stored: chunk });
    if (chunk.length < INLINE_LIMIT) {
      // A small chunk compresses in microseconds: cheaper here than a round trip to a worker.
      return Promise.resolve({ index: i, plainLength: chunk.length, ...packChunk(chunk, options.compression) });
    }
    // The pool takes the chunk's buffer (transferred, not copied: the chunk is unusable here
    // afterwards) and gives it back when the chunk does not shrink.
    const plainLength = chunk.length;
    return options.pool!.compress(chunk, options.compression).then(({ data, raw }) => ({
      index: i,
      plainLength,
      codecId: raw ? CODEC_IDS.none : CODEC_IDS[options.compression.codec],
      stored: data,
    }));
  };

  try {
    // Two reads ahead: the agent reads while this stream's last chunk is hashed and written.
    for await (const chunk of rechunk(prefetch(data, 2), size)) {
      bytes += chunk.length;
      const i = index++;
      if (hash) {
        hash.update(chunk); // before submit(): the pool may take the chunk's buffer away
        queue.push(submit(chunk, i));
      } else {
        // The hashing thread takes the chunk and gives it back; the chunks queued behind it keep it busy.
        const length = chunk.length;
        queue.push(
          hasher!.update(hashed, chunk).then((back) => {
            // A chunk that came back shorter would be saved short and called complete: never.
            if (back.length !== length) throw new AgentfdError('E_INTERNAL', `chunk ${i} came back from the hashing thread as ${back.length} bytes, not ${length}`);
            return submit(back, i);
          }),
        );
      }
      if (queue.length >= inFlight) yield await queue.shift()!;
    }
    while (queue.length > 0) yield await queue.shift()!;
  } finally {
    // Do not leave rejected promises unobserved when the consumer or the agent gave up.
    for (const pending of queue) pending.catch(() => undefined);
  }
  return { bytes, chunks: index, sha256: hash ? hash.digest('hex') : await hasher!.digest(hashed) };
}
