/**
 * How a session's records are sealed and opened (records.ts), on their own, encrypted and plain:
 * a chunk opens only at its place (record header, job, file, stream and position); a chunk or a
 * whole-file record that claims more plaintext than agentfd ever writes is refused before anything
 * is decompressed; a whole-file record cut short, or with bytes after its last stream, fails loudly.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CODEC_IDS } from '../../src/pipeline/codecs.js';
import { CHUNK_PREFIX_SIZE, MAX_CHUNK_PLAINTEXT, SessionCodec, metaPlain, type WholeFile } from '../../src/pipeline/records.js';
import { RecordType } from '../../src/volume/index.js';

const chunkFields = (seq: number) => ({ type: RecordType.CHUNK, codec: CODEC_IDS.none, cipher: 1, flags: 0, session: 7, seq });

describe('session records', () => {
  it('opens a sealed chunk at its place only: another sequence number, job or prefix fails its tag', () => {
    const codec = new SessionCodec(randomUUID(), randomBytes(32));
    const stored = randomBytes(5000);
    const payload = Buffer.concat(codec.sealChunk(chunkFields(3), { fileIndex: 1, streamIndex: 0, chunkIndex: 2, plainLength: 5000 }, stored));
    const opened = codec.openChunk(chunkFields(3), payload, 'chunk');
    expect(opened.prefix).toEqual({ fileIndex: 1, streamIndex: 0, chunkIndex: 2, plainLength: 5000 });
    expect(opened.stored.equals(stored)).toBe(true);
    expect(() => codec.openChunk(chunkFields(4), payload, 'chunk')).toThrow(expect.objectContaining({ code: 'E_AUTH' }));
    expect(() => new SessionCodec(randomUUID(), codec.key).openChunk(chunkFields(3), payload, 'chunk')).toThrow(expect.objectContaining({ code: 'E_AUTH' }));
    const moved = Buffer.from(payload);
    moved.writeUInt32LE(2, 0); // the same chunk claimed for file 2
    expect(() => codec.openChunk(chunkFields(3), moved, 'chunk')).toThrow(expect.objectContaining({ code: 'E_AUTH' }));
  });

  it('refuses a chunk claiming more than the largest chunk agentfd writes, before opening it', () => {
    const codec = new SessionCodec(randomUUID(), null);
    const fields = { ...chunkFields(0), cipher: 0 };
    const payload = Buffer.concat(codec.sealChunk(fields, { fileIndex: 0, streamIndex: 0, chunkIndex: 0, plainLength: MAX_CHUNK_PLAINTEXT + 1 }, Buffer.alloc(10)));
    expect(() => codec.openChunk(fields, payload, 'chunk 0')).toThrow(expect.objectContaining({ code: 'E_CORRUPT_DATA', message: expect.stringContaining('claims 1048577 bytes of plaintext') }));
    expect(() => codec.openChunk(fields, payload.subarray(0, CHUNK_PREFIX_SIZE - 1), 'chunk 0')).toThrow(expect.objectContaining({ code: 'E_CORRUPT_DATA' }));
    const honest = Buffer.concat(codec.sealChunk(fields, { fileIndex: 0, streamIndex: 0, chunkIndex: 0, plainLength: 10 }, Buffer.alloc(10)));
    expect(codec.openChunk(fields, honest, 'chunk 0').stored.length).toBe(10);
    // A plain session's chunk relabelled as encrypted is refused, not opened as either.
    expect(() => codec.openChunk({ ...fields, cipher: 1 }, honest, 'chunk 0')).toThrow(/chunk 0: the record says cipher 1, the session 0/);
  });

  it('opens a whole-file record as it was sealed, and refuses one cut short, padded, or claiming too much', () => {
    const codec = new SessionCodec(randomUUID(), null);
    const fields = { type: RecordType.FILE_WHOLE, codec: 0, cipher: 0, flags: 0, session: 7, seq: 1 };
    const streams = [randomBytes(10), randomBytes(300)];
    const whole = (plainLengths: number[]): WholeFile => ({
      file: { fileIndex: 0, path: '/a', kind: 'regular', mode: 0o644, mtimeNs: '0', size: 310, linkTarget: null, seen: false, winAttributes: 0, agent: { name: 'x', version: null, abi: 0 }, streams: [] },
      streams: streams.map((s, index) => ({ index, codec: 0, plainLength: plainLengths[index]!, storedLength: s.length, sha256: '' })),
    });
    const sealed = codec.sealWhole(fields, metaPlain(whole([10, 300])), streams);
    const opened = codec.openWhole(fields, sealed, 'whole');
    expect(opened.stored.map((s) => s.length)).toEqual([10, 300]);
    expect(opened.stored[1]!.equals(streams[1]!)).toBe(true);
    expect(() => codec.openWhole(fields, sealed.subarray(0, sealed.length - 1), 'whole')).toThrow(/stream 1 claims more bytes than the record holds/);
    expect(() => codec.openWhole(fields, Buffer.concat([sealed, Buffer.from([0])]), 'whole')).toThrow(/1 bytes after the last stream/);
    expect(() => codec.openWhole(fields, sealed.subarray(0, 3), 'whole')).toThrow(/the whole-file record is cut short/);
    const greedy = codec.sealWhole(fields, metaPlain(whole([10, MAX_CHUNK_PLAINTEXT + 1])), streams);
    expect(() => codec.openWhole(fields, greedy, 'whole')).toThrow(expect.objectContaining({ code: 'E_CORRUPT_DATA', message: expect.stringContaining('stream 1 of the whole-file record claims') }));
  });
});
