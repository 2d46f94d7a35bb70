/**
 * The volume levels of a Verify job (transfer/verify/volume.ts, data-check.ts), on the records a
 * serve backup of a real tree sends (each frame one SD record, as a read session gives them back).
 */
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { parseFileSet } from '../../../src/bacula-fd/fileset/fileset.js';
import { sendBackup } from '../../../src/bacula-fd/transfer/backup.js';
import type { SdRecord } from '../../../src/bacula-fd/transfer/storage-daemon.js';
import { dataChecks } from '../../../src/bacula-fd/transfer/verify/data-check.js';
import { digestMessage } from '../../../src/bacula-fd/transfer/verify/director-records.js';
import { verifyData, verifyVolume } from '../../../src/bacula-fd/transfer/verify/volume.js';
import { tempDir } from '../../helpers/native.js';
import { recordingSd } from '../backup/job.js';
import { recordingVerify } from './run.js';

/** A tree: a GZIP-able text, a file with a hole, an empty file, a hard link. */
function makeTree(): string {
  const root = path.join(tempDir('verify-volume'), 'root');
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'text.txt'), 'line of text\n'.repeat(10_000));
  writeFileSync(path.join(root, 'holes.bin'), Buffer.concat([Buffer.alloc(200_000), Buffer.from('end')]));
  writeFileSync(path.join(root, 'empty'), '');
  linkSync(path.join(root, 'text.txt'), path.join(root, 'also.txt'));
  return root;
}

/** The records a backup of `root` with `letters` writes to the volume. */
async function backupRecords(root: string, letters: string): Promise<SdRecord[]> {
  const { sd, sent } = recordingSd();
  await sendBackup({ sd, fileset: parseFileSet(['I', `O ${letters}`, 'N', `F ${root}`, 'N']), since: null, log: () => undefined, isCancelled: () => false });
  return sent.flatMap((s) => s.frames.map((data) => ({ fileIndex: s.fileIndex, stream: s.stream, data })));
}

async function* each(records: SdRecord[]): AsyncGenerator<SdRecord> {
  yield* records;
}

const VERIFY_MD5 = ['I', 'O MVpins5:', 'N', 'F /x', 'N'];

describe('serve verify: VolumeToCatalog', () => {
  it('sends each attributes record as the volume holds it with options "pinsug5", and each digest with JobFiles', async () => {
    const root = makeTree();
    const records = await backupRecords(root, 'MZ6');
    const { run, totals, texts } = recordingVerify(parseFileSet(VERIFY_MD5));
    await verifyVolume(run, each(records), totals);
    const sent = texts();
    expect(totals.files).toBe(5);
    const attributes = sent.filter((t) => / 1 pinsug5 /.test(t));
    expect(attributes.map((t) => t.split('\0')[0])).toEqual(records.filter((r) => r.stream === STREAM.UNIX_ATTRIBUTES).map((r, i) => `${i + 1} 1 pinsug5 ${r.data.toString('latin1').split('\0')[0]!.replace(/^\d+ \d+ /, '')}`));
    // The LStat goes as it is (LinkFI and data stream included): the Director compares it with the catalog's.
    const first = records.find((r) => r.stream === STREAM.UNIX_ATTRIBUTES)!.data.toString('latin1').split('\0')[1];
    expect(attributes[0]!.split('\0')[1]).toBe(first);
    const digests = records.filter((r) => r.stream === STREAM.MD5_DIGEST);
    expect(sent.filter((t) => / 3 \S+ \*MD5-\d+\*$/.test(t))).toEqual(digests.map((d) => digestMessage(d.fileIndex, STREAM.MD5_DIGEST, d.data)));
  });

  it('sends a deleted file with FileIndex 0', async () => {
    const deleted: SdRecord = { fileIndex: 3, stream: STREAM.UNIX_ATTRIBUTES, data: Buffer.from(`3 ${FT.DELETED} /x/gone\0A A\0\0\x000\0`) };
    const { run, totals, texts } = recordingVerify(parseFileSet(VERIFY_MD5));
    await verifyVolume(run, each([deleted]), totals);
    expect(texts()).toEqual(['0 1 pinsug5 /x/gone\0A A\0\0']);
  });
});

describe('serve verify: Data', () => {
  it('decodes GZIP and sparse records, and finds the digests and sizes the volume holds: no difference, hard links included', async () => {
    const root = makeTree();
    const records = await backupRecords(root, 'MZ6s');
    const { run, totals, infos, logs } = recordingVerify(parseFileSet(['I', 'O MVpins5:', 'N', `F ${root}`, 'N']));
    await verifyData(run, each(records), totals);
    expect(infos).toEqual([]);
    expect(logs).toEqual([]);
    expect(totals).toMatchObject({ files: 5, differences: false, failed: false, jobBytes: 130_000 + (200_003 - 3 * 65_528) });
    // The hole's three whole blocks of zeros were left out of the volume: the data is its last block.
  });

  it('reports a digest that differs from the data, and a size that differs from st_size, as bacula-fd words them', async () => {
    const root = path.join(tempDir('verify-data'), 'root');
    mkdirSync(root);
    writeFileSync(path.join(root, 'a.txt'), 'the data\n');
    const records = await backupRecords(root, 'M');
    const data = records.find((r) => r.stream === STREAM.FILE_DATA)!;
    data.data = Buffer.from('the date\n');
    const { run, totals, infos } = recordingVerify(parseFileSet(['I', 'O MVpins5:', 'N', `F ${root}`, 'N']));
    await verifyData(run, each(records), totals);
    const computed = createHash('md5').update('the date\n').digest('base64').replace(/=+$/, '');
    const stored = createHash('md5').update('the data\n').digest('base64').replace(/=+$/, '');
    expect(infos).toEqual([`   MD5 digest differs on "${root}/a.txt". File=${computed} Vol=${stored}`]);
    expect(totals.differences).toBe(true);

    data.data = Buffer.from('the data, longer\n');
    const sized = recordingVerify(parseFileSet(['I', 'O MVs:', 'N', `F ${root}`, 'N']));
    await verifyData(sized.run, each(records), sized.totals);
    expect(sized.infos).toEqual([`   st_size  differs on "${root}/a.txt". Vol: 17 File: 9`]);
  });

  it('data it cannot decode ends the job in error, naming the file', async () => {
    const attributes: SdRecord = { fileIndex: 1, stream: STREAM.UNIX_ATTRIBUTES, data: Buffer.from(`1 ${FT.REG} /x/a\0A A A A A A A J A A A A A A A C\0\0\x000\0`) };
    const bad = recordingVerify(parseFileSet(VERIFY_MD5));
    await verifyData(bad.run, each([attributes, { fileIndex: 1, stream: STREAM.GZIP_DATA, data: Buffer.from('not zlib') }]), bad.totals);
    expect(bad.totals.failed).toBe(true);
    expect(bad.logs).toEqual([expect.stringMatching(/^error: Uncompression error on file \/x\/a\. ERR=/)]);
    // A damaged LZO record (a header that does not add up) is an uncompression error too.
    const lzo = recordingVerify(parseFileSet(VERIFY_MD5));
    await verifyData(lzo.run, each([attributes, { fileIndex: 1, stream: 29, data: Buffer.from('LZOX....') }, { fileIndex: 1, stream: STREAM.MD5_DIGEST, data: Buffer.alloc(16) }]), lzo.totals);
    expect(lzo.totals).toMatchObject({ failed: true, differences: false });
    expect(lzo.logs).toEqual([expect.stringMatching(/^error: Uncompression error on file \/x\/a\. ERR=/)]);
    // Compressed Win32 BackupRead data (31) agentfd does not decode: the file is named, not verified.
    const win32 = recordingVerify(parseFileSet(VERIFY_MD5));
    await verifyData(win32.run, each([attributes, { fileIndex: 1, stream: 31, data: Buffer.from('LZOX....') }, { fileIndex: 1, stream: STREAM.MD5_DIGEST, data: Buffer.alloc(16) }]), win32.totals);
    expect(win32.totals).toMatchObject({ failed: true, differences: false });
    expect(win32.logs).toEqual([expect.stringMatching(/^error: "\/x\/a" cannot be verified: its data is in stream 31/)]);
  });

  it('what is checked comes from the FileSet as scan_fileset reads it', () => {
    expect(dataChecks(parseFileSet(['I', 'O MVpins5:', 'N', 'F /x', 'N']))).toEqual({ size: true, digest: 'md5', warning: null });
    expect(dataChecks(parseFileSet(['I', 'O M', 'N', 'F /x', 'N']))).toEqual({ size: false, digest: null, warning: null });
    expect(dataChecks(parseFileSet(['I', 'O Vpins5:', 'N', 'F /x', 'N']))).toEqual({ size: true, digest: null, warning: expect.stringMatching(/no Signature found/) });
  });
});
