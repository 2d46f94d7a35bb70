/**
 * Where liblzo2 cannot be loaded (a machine without liblzo2-2, Windows without an lzo2.dll; here
 * AGENTFD_LZO_LIBRARY names a library that is not there): a FileSet asking for LZO is sent
 * uncompressed, as a bacula-fd built without LZO sends it, but with a job warning saying so; and an
 * LZO record in a restore fails its file loudly instead of restoring it empty.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FT, STREAM } from '../../src/bacula-fd/attributes/lstat.js';
import { tempDir } from '../helpers/native.js';
import { filesetOf, recordingSd, sentAttributes } from './backup/job.js';
import { attrRecord } from './records.js';

const saved = process.env.AGENTFD_LZO_LIBRARY;

beforeEach(() => {
  process.env.AGENTFD_LZO_LIBRARY = path.join(tempDir('no-lzo'), 'liblzo2.so.2');
  vi.resetModules(); // the binding is loaded once per module instance: a fresh one sees the setting
});

afterEach(() => {
  if (saved === undefined) delete process.env.AGENTFD_LZO_LIBRARY;
  else process.env.AGENTFD_LZO_LIBRARY = saved;
  vi.resetModules();
});

describe('compression = LZO without liblzo2', () => {
  it('sends the files uncompressed (stream 2, LStat data stream 2) with one job warning naming the library and the package', async () => {
    const { sendBackup, newTotals } = await import('../../src/bacula-fd/transfer/backup.js');
    const data = tempDir('lzo-missing-data');
    const content = Buffer.alloc(100_000, 'compressible ');
    writeFileSync(path.join(data, 'a.txt'), content);
    writeFileSync(path.join(data, 'b.txt'), 'small\n');
    const { sd, sent } = recordingSd();
    const logs: string[] = [];
    const totals = await sendBackup({ sd, fileset: filesetOf('MZo', [data]), since: null, isCancelled: () => false, log: (level, m) => logs.push(`${level}: ${m}`) }, newTotals());
    expect(totals.errors).toEqual([]);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^warning: The FileSet asks for compression = LZO, but .*liblzo2\.so\.2 cannot be loaded \(.*\): its files are sent uncompressed\. Install liblzo2 \(Debian: liblzo2-2\) to compress them\.$/);
    const dataStreams = sent.filter((s) => s.stream !== STREAM.UNIX_ATTRIBUTES && s.stream !== STREAM.MD5_DIGEST).map((s) => s.stream);
    expect(dataStreams).toEqual([STREAM.FILE_DATA, STREAM.FILE_DATA]);
    expect(new Set(sentAttributes(sent).map((a) => a.stat.dataStream))).toEqual(new Set([STREAM.FILE_DATA]));
    expect(totals.jobBytes).toBe(totals.readBytes);
  });

  it('fails a restored file whose data is LZO, saying liblzo2 is missing, and leaves nothing of it', async () => {
    // What bacula-fd 9.6.7 sent for a file holding "hello lzo\n".
    const record = Buffer.from('4c5a4f580000000e000000011b68656c6c6f206c7a6f0a110000', 'hex');
    const { receiveRestore } = await import('../../src/bacula-fd/transfer/restore.js');
    const where = tempDir('lzo-missing-restore');
    const logs: string[] = [];
    const totals = await receiveRestore({
      records: (async function* () {
        yield attrRecord(1, FT.REG, '/data/hello.txt', { size: 10n, dataStream: 29 });
        yield { fileIndex: 1, stream: 29, data: record };
        yield attrRecord(2, FT.REG, '/data/plain.txt', { size: 6n });
        yield { fileIndex: 2, stream: STREAM.FILE_DATA, data: Buffer.from('plain\n') };
      })(),
      where,
      log: (level, m) => logs.push(`${level}: ${m}`),
    });
    expect(totals.errors).toHaveLength(1);
    expect(totals.errors[0]).toMatch(/^"\/data\/hello\.txt" is not restored: its stream 29 record cannot be decoded: it is compressed with LZO and .*liblzo2\.so\.2 cannot be loaded \(.*\); install liblzo2 \(Debian: liblzo2-2\) and restore it again; .*hello\.txt was removed$/);
    expect(existsSync(path.join(where, 'data', 'hello.txt'))).toBe(false);
    expect(readFileSync(path.join(where, 'data', 'plain.txt'), 'utf8')).toBe('plain\n');
  });
});
