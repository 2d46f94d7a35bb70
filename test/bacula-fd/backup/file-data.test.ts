/** A file's data as bacula-fd frames it (transfer/backup/file-data.ts): plain, GZIP, sparse; its digest. */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { FRAME, dataFrames, startDigest, type FrameOptions } from '../../../src/bacula-fd/transfer/backup/file-data.js';
import { tempDir } from '../../helpers/native.js';

const BLOCK = FRAME - 8;

async function framesOf(content: Buffer, o: Partial<FrameOptions>) {
  const file = path.join(tempDir('frames'), 'f');
  writeFileSync(file, content);
  let read = 0;
  const handle = await open(file, 'r');
  try {
    const frames: Buffer[] = [];
    const options: FrameOptions = { sparse: false, gzip: null, size: BigInt(content.length), checkEveryBlock: false, hash: null, read: (n) => (read += n), ...o };
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

  it('starts the digest `signature =` names, on its stream, and none without one', () => {
    expect(startDigest(null)).toBeNull();
    const digest = startDigest('sha256')!;
    expect(digest.stream).toBe(STREAM.SHA256_DIGEST);
    expect(digest.hash.update('x').digest('hex')).toBe(createHash('sha256').update('x').digest('hex'));
    expect(startDigest('md5')!.stream).toBe(STREAM.MD5_DIGEST);
  });
});
