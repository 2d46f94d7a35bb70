/** entry-record.ts and undecodable.ts: what an attributes record says, and how an unknown stream is named. */
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { isAttributesStream, readEntryRecord } from '../../../src/bacula-fd/transfer/restore/entry-record.js';
import { undecodableStream } from '../../../src/bacula-fd/transfer/restore/undecodable.js';
import { encodeAttributes, decodeAttributes } from '../../../src/bacula-fd/attributes/lstat.js';
import { attrRecord } from '../records.js';

describe('the attributes record of one entry (restore/entry-record.ts)', () => {
  it('gives the name, type, stat and link; attribsEx only from a Windows FD record (stream 5)', () => {
    const record = attrRecord(7, FT.LNK, '/data/l', { mode: 0o120777, mtime: 1234n }, 'target');
    const unix = readEntryRecord(STREAM.UNIX_ATTRIBUTES, record.data);
    expect(unix).toMatchObject({ fname: '/data/l', type: FT.LNK, recordType: FT.LNK, link: 'target', attribsEx: '' });
    expect(unix.stat.mode).toBe(0o120777);
    expect(unix.stat.mtime).toBe(1234n);
    const withEx = encodeAttributes({ ...decodeAttributes(record.data), attribsEx: 'AAAA' });
    expect(readEntryRecord(STREAM.UNIX_ATTRIBUTES, withEx).attribsEx).toBe('');
    expect(readEntryRecord(STREAM.UNIX_ATTRIBUTES_EX, withEx).attribsEx).toBe('AAAA');
  });

  it('masks the type as create_file does, and keeps the record\'s own for an agent', () => {
    const record = encodeAttributes({ ...decodeAttributes(attrRecord(1, FT.REG, '/f', {}).data), type: FT.REG | 0x10000 });
    expect(readEntryRecord(STREAM.UNIX_ATTRIBUTES, record)).toMatchObject({ type: FT.REG, recordType: FT.REG | 0x10000 });
  });

  it('knows the attributes streams (1 and 5) from the others', () => {
    expect([STREAM.UNIX_ATTRIBUTES, STREAM.UNIX_ATTRIBUTES_EX, STREAM.FILE_DATA, STREAM.PLUGIN_NAME].map(isAttributesStream)).toEqual([true, true, false, false]);
  });
});

describe('a stream agentfd cannot decode (restore/undecodable.ts)', () => {
  it('names compressed Win32 data (31) by its header magic, and a stream no version knows by its number', () => {
    expect(undecodableStream(31, Buffer.from('LZOX....'))).toBe('stream 31 (STREAM_WIN32_COMPRESSED_DATA: Win32 BackupRead data, compressed with LZO ("LZOX")), which agentfd cannot decode');
    expect(undecodableStream(31, Buffer.from('ZSTD'))).toMatch(/compressed with "ZSTD"/);
    expect(undecodableStream(11, Buffer.alloc(0))).toBe('stream 11 (STREAM_WIN32_DATA), which agentfd cannot decode');
    expect(undecodableStream(4242, Buffer.alloc(0))).toBe('stream 4242, which this version of agentfd does not know');
  });
});
