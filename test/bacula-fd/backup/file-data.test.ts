/** A file's data as bacula-fd frames it (transfer/backup/file-data.ts): plain, GZIP, LZO, sparse; its digest. */
import { createHash } from 'node:crypto';
import { closeSync, openSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { FRAME, dataFrames, startDigest, type FrameOptions } from '../../../src/bacula-fd/transfer/backup/file-data.js';
import { readCompressedBlock } from '../../../src/bacula-fd/transfer/lzo-records.js';
import { ensureDebianPackage, LIBLZO2, skipNote } from '../../helpers/debian.js';
import { tempDir } from '../../helpers/native.js';
import { recordingJob } from './job.js';

const MISSING = ensureDebianPackage(LIBLZO2);

const BLOCK = FRAME - 8;

async function framesOf(content: Buffer, o: Partial<FrameOptions>) {
  const file = path.join(tempDir('frames'), 'f');
  writeFileSync(file, content);
  let read = 0;
  const handle = await open(file, 'r');
  try {
    const frames: Buffer[] = [];
    const options: FrameOptions = { sparse: false, gzip: null, lzo: false, size: BigInt(content.length), checkEveryBlock: false, hash: null, read: (n) => (read += n), ...o };
    for await (const frame of dataFrames(handle, options)) frames.push(Buffer.from(frame));
    return { frames, read };
  } finally {
    await handle.close();
  }
}

describe('serve backup file data', () => {
  it('frames a file in reads of 64 KiB, each compressed alone with GZIP', async () => {
    const content = Buffer.alloc(FRAME * 2 + 10, 'abc');
    const plain = await framesOf(content, {});
    expect(plain.frames.map((f) => f.length)).toEqual([FRAME, FRAME, 10]);
    expect(Buffer.concat(plain.frames).equals(content)).toBe(true);
    const gzip = await framesOf(content, { gzip: 6 });
    expect(Buffer.concat(gzip.frames.map((f) => inflateSync(f))).equals(content)).toBe(true);
    expect(gzip.read).toBe(content.length);
  });

  it('frames a file of several megabytes in 64 KiB reads back to back, whatever its size (read ahead a megabyte at a time)', async () => {
    for (const size of [FRAME * 16, FRAME * 16 * 3, FRAME * 16 * 3 + 12_345, FRAME * 40 + 1]) {
      const content = Buffer.alloc(size);
      for (let i = 0; i + 4 <= size; i += 4) content.writeUInt32LE(i, i); // every block differs
      const hash = createHash('md5');
      const { frames, read } = await framesOf(content, { hash });
      const expected = Array.from({ length: Math.ceil(size / FRAME) }, (_, i) => content.subarray(i * FRAME, Math.min(size, (i + 1) * FRAME)));
      expect(frames.map((f) => f.length)).toEqual(expected.map((f) => f.length));
      expect(frames.every((f, i) => f.equals(expected[i]!))).toBe(true);
      expect(read).toBe(size);
      expect(hash.digest('hex')).toBe(createHash('md5').update(content).digest('hex'));
    }
  });

  it('reads on past the size lstat gave when the file grew since (to the end, as bacula-fd)', async () => {
    const content = Buffer.alloc(FRAME * 20 + 7, 'grown ');
    const { frames } = await framesOf(content, { size: BigInt(FRAME * 3) });
    expect(frames.map((f) => f.length)).toEqual([...Array<number>(20).fill(FRAME), 7]);
    expect(Buffer.concat(frames).equals(content)).toBe(true);
  });

  it('sends what is left when the file is shorter than lstat said (cut since)', async () => {
    const content = Buffer.alloc(FRAME * 2 + 3, 'cut ');
    const { frames } = await framesOf(content, { size: BigInt(FRAME * 40) });
    expect(Buffer.concat(frames).equals(content)).toBe(true);
    expect(frames.map((f) => f.length)).toEqual([FRAME, FRAME, 3]);
  });

  it('leaves out whole all-zero blocks before the end with sparse, each frame led by its offset', async () => {
    const content = Buffer.alloc(BLOCK * 3 + 5);
    content.fill(1, 0, 100); // block 0 has data, blocks 1 and 2 are zeros, the short last one too
    const hash = createHash('sha1');
    const { frames, read } = await framesOf(content, { sparse: true, hash });
    expect(frames.map((f) => f.readBigUInt64BE(0))).toEqual([0n, BigInt(BLOCK * 3)]);
    expect(frames.map((f) => f.length - 8)).toEqual([BLOCK, 5]);
    expect(read).toBe(BLOCK + 5);
    const sent = createHash('sha1').update(content.subarray(0, BLOCK)).update(content.subarray(BLOCK * 3)).digest();
    expect(hash.digest().equals(sent)).toBe(true);
  });

  it.skipIf(process.platform !== 'linux')('skips the holes of a sparse file without reading them, sending what reading every block sends', async () => {
    const dir = tempDir('holes');
    const size = 300 * BLOCK + 77;
    const pieces: [number, Buffer][] = [[0, Buffer.alloc(5000, 'head')], [100 * BLOCK + 123, Buffer.alloc(3 * BLOCK, 'middle')], [size - 3, Buffer.from('end')]];
    const holey = path.join(dir, 'holey');
    const dense = path.join(dir, 'dense');
    writeFileSync(holey, '');
    truncateSync(holey, size); // all hole, then the pieces written in it
    const content = Buffer.alloc(size);
    for (const [at, bytes] of pieces) bytes.copy(content, at);
    const fd = openSync(holey, 'r+');
    for (const [at, bytes] of pieces) writeSync(fd, bytes, 0, bytes.length, at);
    closeSync(fd);
    writeFileSync(dense, content);
    const sparse = async (file: string) => {
      const handle = await open(file, 'r');
      const readAt: number[] = [];
      const readv = handle.readv.bind(handle);
      handle.readv = ((buffers: NodeJS.ArrayBufferView[], position: number) => (readAt.push(position), readv(buffers, position))) as typeof handle.readv;
      const hash = createHash('md5');
      const frames: Buffer[] = [];
      try {
        for await (const f of dataFrames(handle, { sparse: true, gzip: null, lzo: false, size: BigInt(size), checkEveryBlock: false, hash, read: () => undefined })) frames.push(Buffer.from(f));
      } finally {
        await handle.close();
      }
      return { frames, readAt, digest: hash.digest('hex') };
    };
    const [fromHoles, fromDense] = [await sparse(holey), await sparse(dense)];
    expect(fromHoles.frames.map((f) => f.readBigUInt64BE(0))).toEqual(fromDense.frames.map((f) => f.readBigUInt64BE(0)));
    expect(fromHoles.frames.every((f, i) => f.equals(fromDense.frames[i]!))).toBe(true);
    expect(fromHoles.digest).toBe(fromDense.digest);
    // The dense file is read throughout; the holey one only where its pieces are (and its last block).
    expect(fromDense.readAt.some((at) => at > 10 * BLOCK && at < 90 * BLOCK)).toBe(true);
    expect(fromHoles.readAt.some((at) => at > 10 * BLOCK && at < 90 * BLOCK)).toBe(false);
  });

  it.skipIf(MISSING !== null)(`makes each 64 KiB read one LZO record with LZO: its header, then the block, counting the plain bytes read${skipNote(MISSING)}`, async () => {
    const content = Buffer.concat([Buffer.alloc(FRAME, 'log line\n'), Buffer.from('the end\n')]);
    const { frames, read } = await framesOf(content, { lzo: true });
    expect(frames).toHaveLength(2);
    for (const frame of frames) {
      expect(frame.subarray(0, 4).toString('latin1')).toBe('LZOX');
      expect(frame.readUInt32BE(4)).toBe(frame.length - 12);
    }
    expect(frames[0]!.length).toBeLessThan(FRAME / 10);
    expect(Buffer.concat(frames.map(readCompressedBlock)).equals(content)).toBe(true);
    expect(read).toBe(content.length);
  });

  it.skipIf(MISSING !== null)(`puts the offset before the LZO header with sparse (stream 30), zero blocks left out${skipNote(MISSING)}`, async () => {
    const content = Buffer.alloc(BLOCK * 3 + 5);
    content.fill('a', BLOCK * 2, BLOCK * 2 + 1000); // blocks 0 and 1 are zeros; block 2 has data; the short last one is sent
    const { frames, read } = await framesOf(content, { sparse: true, lzo: true });
    expect(frames.map((f) => f.readBigUInt64BE(0))).toEqual([BigInt(BLOCK * 2), BigInt(BLOCK * 3)]);
    expect(frames.map((f) => f.subarray(8, 12).toString('latin1'))).toEqual(['LZOX', 'LZOX']);
    expect(readCompressedBlock(frames[0]!.subarray(8)).equals(content.subarray(BLOCK * 2, BLOCK * 3))).toBe(true);
    expect(readCompressedBlock(frames[1]!.subarray(8))).toEqual(Buffer.alloc(5));
    expect(read).toBe(BLOCK + 5);
  });

  it.skipIf(MISSING !== null)(`compresses a file's blocks on the job's workers into the very records compressed inline, in order, with the same digest${skipNote(MISSING)}`, async () => {
    const content = Buffer.alloc(FRAME * 37 + 999);
    for (let i = 0; i + 4 <= content.length; i += 4) content.writeUInt32LE(i % 7919 === 0 ? i : i % 251, i);
    content.fill(0, FRAME * 5, FRAME * 9); // zero blocks for sparse to leave out
    const job = recordingJob().job;
    try {
      for (const codec of [{ gzip: 6 }, { lzo: true }, { gzip: 1, sparse: true }, { lzo: true, sparse: true }]) {
        const [inline, pooled] = [createHash('sha1'), createHash('sha1')];
        const one = await framesOf(content, { ...codec, hash: inline });
        const other = await framesOf(content, { ...codec, hash: pooled, pool: job.framePool() });
        expect(other.frames.length).toBe(one.frames.length);
        expect(other.frames.every((f, i) => f.equals(one.frames[i]!))).toBe(true);
        expect([other.read, pooled.digest('hex')]).toEqual([one.read, inline.digest('hex')]);
      }
    } finally {
      await job.close();
    }
  });

  it.skipIf(MISSING !== null)(`digests a file of several reads on the job's digest thread: the same frames and digest as inline, zero blocks left out with sparse${skipNote(MISSING)}`, async () => {
    const content = Buffer.alloc(FRAME * 16 * 3 + 4321);
    for (let i = 0; i + 4 <= content.length; i += 4) content.writeUInt32LE(i % 4099 === 0 ? i : i % 251, i);
    content.fill(0, FRAME * 20, FRAME * 30); // zero blocks for sparse to leave out
    const job = recordingJob().job;
    try {
      for (const codec of [{}, { gzip: 6 }, { lzo: true }, { sparse: true }, { gzip: 1, sparse: true }]) {
        const inline = createHash('sha1');
        const threaded = job.digestThread().start('sha1');
        const one = await framesOf(content, { ...codec, hash: inline });
        const other = await framesOf(content, { ...codec, hash: threaded, pool: job.framePool() });
        expect(other.frames.length).toBe(one.frames.length);
        expect(other.frames.every((f, i) => f.equals(one.frames[i]!))).toBe(true);
        expect([other.read, (await threaded.digest()).toString('hex')]).toEqual([one.read, inline.digest('hex')]);
      }
    } finally {
      await job.close();
    }
  });

  it('starts the digest `signature =` names, on its stream, and none without one', () => {
    expect(startDigest(null)).toBeNull();
    const digest = startDigest('sha256')!;
    expect(digest.stream).toBe(STREAM.SHA256_DIGEST);
    expect(digest.hash.update('x').digest('hex')).toBe(createHash('sha256').update('x').digest('hex'));
    expect(startDigest('md5')!.stream).toBe(STREAM.MD5_DIGEST);
  });
});
