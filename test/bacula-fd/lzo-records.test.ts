/**
 * lzo-records.ts: the records of `compression = LZO` (streams 29 and 30) as bacula-fd 9.6 writes
 * them, checked against bytes the real bacula-fd 9.6.7 sent (read back from the lab's volume), and
 * every way a record can fail to decode, each a clear error rather than data.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { COMP_HEADER_SIZE, lzoRecord, lzoRecordInto, lzoRecordRoom, readCompressedBlock, UndecodableData } from '../../src/bacula-fd/transfer/lzo-records.js';
import { ensureDebianPackage, LIBLZO2, skipNote } from '../helpers/debian.js';

const MISSING = ensureDebianPackage(LIBLZO2);

/** The record bacula-fd 9.6.7 sent for a file holding "hello lzo\n" (a literal-only LZO1X block). */
const BACULA_HELLO = Buffer.from('4c5a4f580000000e000000011b68656c6c6f206c7a6f0a110000', 'hex');

/** The first 64 KiB of a log, and the SHA-256 of the record bacula-fd 9.6.7 sent for it (8,484 bytes). */
const LOG = Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i} of a log that compresses well\n`).join('')).subarray(0, 65536);
const BACULA_LOG_RECORD_SHA256 = '2810dffa30f56fa48bb9fb916e868fab7e1b9f7ed3ba29de93b3a6baca9db003';

function header(magic: string, size: number, level: number, version: number): Buffer {
  const b = Buffer.alloc(COMP_HEADER_SIZE);
  b.write(magic, 0, 'latin1');
  b.writeUInt32BE(size, 4);
  b.writeUInt16BE(level, 8);
  b.writeUInt16BE(version, 10);
  return b;
}

describe.skipIf(MISSING !== null)(`LZO records as bacula-fd writes them${skipNote(MISSING)}`, () => {
  it('puts the 12-byte header first: magic "LZOX", compressed size, level 0, version 1, big-endian', () => {
    const record = lzoRecord(Buffer.from('hello lzo\n'));
    expect(record).toEqual(BACULA_HELLO);
    expect(record.subarray(0, 4).toString('latin1')).toBe('LZOX');
    expect(record.readUInt32BE(4)).toBe(record.length - COMP_HEADER_SIZE);
    expect(record.readUInt16BE(8)).toBe(0);
    expect(record.readUInt16BE(10)).toBe(1);
  });

  it('compresses a 64 KiB block to the very bytes bacula-fd sent for it (LZO1X-1)', () => {
    const record = lzoRecord(LOG);
    expect(record.length).toBe(8484);
    expect(createHash('sha256').update(record).digest('hex')).toBe(BACULA_LOG_RECORD_SHA256);
  });

  it('leaves room before the header for a sparse block\'s offset', () => {
    const record = lzoRecord(Buffer.from('hello lzo\n'), 8);
    expect(record.subarray(8)).toEqual(BACULA_HELLO);
  });

  it('sends a block that does not compress compressed all the same, grown, as bacula-fd does', () => {
    const random = randomBytes(65536);
    const record = lzoRecord(random);
    expect(record.length).toBeGreaterThan(65536 + COMP_HEADER_SIZE);
    expect(readCompressedBlock(record)).toEqual(random);
  });

  it('writes the same records into one shared buffer, back to back, each after its headroom, touching nothing past them', () => {
    const blocks = [LOG, randomBytes(65536), Buffer.from('hello lzo\n')];
    const out = Buffer.alloc(blocks.reduce((n, b) => n + lzoRecordRoom(b.length, 8), 0) + 16, 0xee);
    let at = 0;
    for (const block of blocks) {
      const length = lzoRecordInto(block, out, at, 8);
      expect(out.subarray(at + 8, at + length)).toEqual(lzoRecord(block));
      at += length;
    }
    expect(out.subarray(out.length - 16).every((b) => b === 0xee)).toBe(true);
    expect(() => lzoRecordInto(LOG, Buffer.alloc(1000), 0, 8)).toThrow(/needs \d+ bytes of room/);
  });
});

describe.skipIf(MISSING !== null)(`reading LZO records${skipNote(MISSING)}`, () => {
  it("reads bacula-fd's records", () => {
    expect(readCompressedBlock(BACULA_HELLO).toString()).toBe('hello lzo\n');
  });

  it('round-trips blocks of every kind: text, random, zeros, one byte', () => {
    for (const block of [LOG, randomBytes(65536), Buffer.alloc(65528), Buffer.from('x'), randomBytes(1000)]) {
      expect(readCompressedBlock(lzoRecord(block))).toEqual(block);
    }
  });

  it('refuses a record cut short, or with bytes after its block, by the size its header announces', () => {
    const record = lzoRecord(LOG);
    expect(() => readCompressedBlock(record.subarray(0, record.length - 100))).toThrow(
      new UndecodableData('its compression header announces 8472 compressed bytes but the record holds 8372: the record is damaged or cut short'),
    );
    expect(() => readCompressedBlock(Buffer.concat([record, Buffer.from('junk')]))).toThrow(/announces 8472 compressed bytes but the record holds 8476/);
    expect(() => readCompressedBlock(record.subarray(0, 7))).toThrow(new UndecodableData('a record of 7 bytes is too short for its 12-byte compression header'));
  });

  it('refuses a header of another version, and another algorithm by its magic', () => {
    const block = BACULA_HELLO.subarray(COMP_HEADER_SIZE);
    expect(() => readCompressedBlock(Buffer.concat([header('LZOX', block.length, 0, 2), block]))).toThrow(/version 2 where Bacula writes 1/);
    expect(() => readCompressedBlock(Buffer.concat([header('ZSTD', block.length, 0, 1), block]))).toThrow(
      new UndecodableData('it is compressed with "ZSTD", which agentfd cannot decompress'),
    );
  });

  it('refuses a damaged LZO block with the library\'s error, never returning part of it', () => {
    const record = lzoRecord(LOG);
    // The block's last bytes are its end marker (0x11 0x00 0x00): without them the block never ends.
    const damaged = Buffer.from(record);
    damaged.fill(0xff, damaged.length - 3);
    expect(() => readCompressedBlock(damaged)).toThrow(UndecodableData);
    expect(() => readCompressedBlock(damaged)).toThrow(/its LZO block does not decompress \(LZO error -\d+ \(LZO_E_\w+.*\)\): the record is damaged/);
    // A block that refers back to data before its start.
    const lookbehind = Buffer.concat([header('LZOX', 6, 0, 1), Buffer.from([0x12, 0x41, 0x20, 0xff, 0xff, 0x00])]);
    expect(() => readCompressedBlock(lookbehind)).toThrow(/LZO error/);
  });
});
