/** file-data.ts: data records (plain, GZIP, sparse) written into a real file, and its size set at the end. */
import { openSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { STREAM, decodeAttributes, decodeLStat } from '../../../src/bacula-fd/attributes/lstat.js';
import { DescriptorSink, QUEUED_WRITE_FILE_BYTES, closeFileData, decodeDataRecord, isDataStream, openedFile, writeDataRecord } from '../../../src/bacula-fd/transfer/restore/file-data.js';
import { tempDir } from '../../helpers/native.js';
import { attrRecord } from '../records.js';

const sparse = (offset: number, data: Buffer) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(offset));
  return Buffer.concat([b, data]);
};

async function fileOf(size: bigint, kind: 'regular' | 'fifo') {
  const target = path.join(tempDir('file-data'), 'f');
  const stat = decodeLStat(decodeAttributes(attrRecord(1, 3, '/f', { size }).data).lstat);
  return openedFile(target, '/f', stat, '', await open(target, 'w'), kind);
}

describe('the data of one file (restore/file-data.ts)', () => {
  it('decodes plain, GZIP (zlib) and sparse records, and refuses a sparse record without its offset', () => {
    expect(decodeDataRecord(STREAM.FILE_DATA, Buffer.from('abc'))).toEqual({ data: Buffer.from('abc'), position: null });
    expect(decodeDataRecord(STREAM.GZIP_DATA, deflateSync('abc')).data.toString()).toBe('abc');
    expect(decodeDataRecord(STREAM.SPARSE_GZIP_DATA, sparse(9, deflateSync('x')))).toEqual({ data: Buffer.from('x'), position: 9 });
    expect(() => decodeDataRecord(STREAM.SPARSE_DATA, Buffer.alloc(4))).toThrow(/no 8-byte offset/);
    expect([STREAM.FILE_DATA, STREAM.SPARSE_DATA, STREAM.UNIX_ATTRIBUTES].map(isDataStream)).toEqual([true, true, false]);
  });

  it('writes sparse blocks at their offsets and sets the size from the stat when the last block did not come', async () => {
    const file = await fileOf(16n, 'regular');
    expect(await writeDataRecord(file, STREAM.SPARSE_DATA, sparse(4, Buffer.from('ab')))).toBe(2);
    await writeDataRecord(file, STREAM.SPARSE_DATA, sparse(0, Buffer.from('zz')));
    await closeFileData(file);
    expect(statSync(file.target).size).toBe(16);
    expect(readFileSync(file.target).subarray(0, 6)).toEqual(Buffer.from('zz\0\0ab'));
  });

  it('writes a large file on the thread pool: its records in place, sparse ones at their offsets, all on the file once flushed', async () => {
    const size = 3 * QUEUED_WRITE_FILE_BYTES + 5;
    const target = path.join(tempDir('file-data-queued'), 'big');
    const stat = decodeLStat(decodeAttributes(attrRecord(1, 3, '/big', { size: BigInt(size) }).data).lstat);
    const sink = new DescriptorSink(openSync(target, 'w'));
    const file = openedFile(target, '/big', stat, '', sink, 'regular');
    const expected = Buffer.alloc(size);
    // 64 KiB records as bacula-fd sends them, each filled with its number; then sparse records
    // out of order, one of them leaving the end a hole.
    for (let at = 0, n = 1; at < 2 * QUEUED_WRITE_FILE_BYTES; at += 65_536, n++) {
      const record = Buffer.alloc(65_536, n);
      record.copy(expected, at);
      await writeDataRecord(file, STREAM.FILE_DATA, record);
    }
    const late = Buffer.alloc(1000, 0xee);
    late.copy(expected, 2 * QUEUED_WRITE_FILE_BYTES + 4096);
    await writeDataRecord(file, STREAM.SPARSE_DATA, sparse(2 * QUEUED_WRITE_FILE_BYTES + 4096, late));
    await writeDataRecord(file, STREAM.SPARSE_DATA, sparse(100, Buffer.from('over')));
    Buffer.from('over').copy(expected, 100);
    await sink.flush();
    await closeFileData(file);
    expect(readFileSync(target).equals(expected)).toBe(true);
  });

  it('closes a large file while a batch of its writes is on the pool: the batch finishes, the rest is dropped, every buffer is given back once', async () => {
    const target = path.join(tempDir('file-data-close'), 'big');
    const sink = new DescriptorSink(openSync(target, 'w'));
    sink.queueWrites();
    const given = [0, 0, 0, 0];
    let closed: Promise<void> | null = null;
    const done = (i: number) => () => {
      given[i]!++;
      // Called on the pool's completion of the first write, just before the next batch (the 2nd
      // and 3rd) goes to the pool: the close comes while that batch is being written.
      if (i === 0) queueMicrotask(() => (closed = sink.close()));
    };
    for (let i = 0; i < 3; i++) await sink.write(Buffer.alloc(65_536, i + 1), 0, 65_536, i * 65_536, done(i));
    await sink.write(Buffer.alloc(10, 9), 0, 10, 5 * 65_536, done(3)); // not contiguous: not in that batch
    while (!closed) await new Promise((resolve) => setImmediate(resolve));
    await closed;
    expect(given).toEqual([1, 1, 1, 1]);
    expect(readFileSync(target).subarray(0, 65_536).equals(Buffer.alloc(65_536, 1))).toBe(true);
    expect(statSync(target).size).toBeLessThanOrEqual(3 * 65_536); // the dropped write never reached the file
  });

  it.skipIf(process.platform !== 'linux')('fails a large file loudly when a queued write fails: the next write and the flush throw its error', async () => {
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    const sink = new DescriptorSink(openSync('/dev/full', 'w'));
    sink.queueWrites();
    await sink.write(Buffer.alloc(65_536, 1), 0, 65_536, 0); // queued: the failure comes later
    await expect(sink.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(sink.write(Buffer.alloc(10), 0, 10, 65_536)).rejects.toMatchObject({ code: 'ENOSPC' });
    await sink.close();
  });

  it('writes a fifo\'s data in order, a skipped block as zeros', async () => {
    const file = await fileOf(0n, 'fifo');
    await writeDataRecord(file, STREAM.SPARSE_DATA, sparse(3, Buffer.from('x')));
    await writeDataRecord(file, STREAM.FILE_DATA, Buffer.from('y'));
    await closeFileData(file);
    expect(readFileSync(file.target)).toEqual(Buffer.from('\0\0\0xy'));
  });
});
