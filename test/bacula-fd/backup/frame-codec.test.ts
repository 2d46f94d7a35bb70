/** frame-codec.ts: GZIP records, each block its own zlib stream, with libdeflate where agentfd's addon is built. */
import { randomBytes } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compressBlocks, gzipRecord } from '../../../src/bacula-fd/transfer/backup/frame-codec.js';
import { libdeflateZlib } from '../../../src/pipeline/codecs.js';

const TEXT = Buffer.from(Array.from({ length: 3000 }, (_, i) => `line ${i} of a text that compresses\n`).join('')).subarray(0, 65536);

describe('serve GZIP records', () => {
  it('makes each block a zlib stream (what bacula-fd uncompress()es) after the headroom asked for', () => {
    for (const block of [TEXT, randomBytes(65536), Buffer.from('x')]) {
      const record = gzipRecord(block, 6, 8);
      expect(record.readUInt8(8) & 0x0f).toBe(8); // CMF: deflate, the zlib header bacula-fd's uncompress() wants
      expect(inflateSync(record.subarray(8))).toEqual(block);
    }
  });

  it.skipIf(libdeflateZlib() === null)('compresses with libdeflate where the addon is built: its bytes, not zlib\'s, about as small', () => {
    const record = gzipRecord(TEXT, 6, 0);
    expect(record).toEqual(libdeflateZlib()!(TEXT, 6, 0));
    expect(record).not.toEqual(deflateSync(TEXT, { level: 6 }));
    expect(record.length).toBeLessThanOrEqual(deflateSync(TEXT, { level: 6 }).length * 1.02);
  });

  it('compresses the parts of a read given as offset and length, in order', () => {
    const read = Buffer.concat([Buffer.alloc(8), TEXT, Buffer.alloc(8), TEXT.subarray(0, 100)]);
    const records = compressBlocks(read, [8, TEXT.length, TEXT.length + 16, 100], { gzip: 6, lzo: false }, 8);
    expect(records.map((r) => inflateSync(r.subarray(8)))).toEqual([TEXT, TEXT.subarray(0, 100)]);
  });
});
