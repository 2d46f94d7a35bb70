/** The saver of one entry (transfer/backup/entry.ts): files with data, hard links, special files. */
import { createHash } from 'node:crypto';
import { appendFileSync, linkSync, lstatSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { mkfifo } from '../../../src/bacula-fd/attributes/special-files.js';
import { defaultOptions } from '../../../src/bacula-fd/fileset/fileset.js';
import { sendEntry } from '../../../src/bacula-fd/transfer/backup/entry.js';
import { tempDir } from '../../helpers/native.js';
import { recordingJob } from './job.js';

const stat = (p: string) => lstatSync(p, { bigint: true });

describe('serve backup: one entry', () => {
  it('sends a file, then its further hard link as FT_LNKSAVED with LinkFI and the digest again', async () => {
    const dir = tempDir('entry-links');
    const [a, b] = [path.join(dir, 'a'), path.join(dir, 'b')];
    writeFileSync(a, 'hello');
    linkSync(a, b);
    const { job, sent, attributes } = recordingJob();
    const options = { ...defaultOptions(), digest: 'md5' as const };
    await sendEntry(job, a, stat(a), options, false);
    await sendEntry(job, b, stat(b), options, false);
    await sendEntry(job, a, stat(a), options, true); // the same name again: skipped
    const md5 = createHash('md5').update('hello').digest();
    expect(attributes().map((r) => [r.fileIndex, r.type, r.fname, r.link, r.stat.linkFI])).toEqual([
      [1, FT.REG, a, '', 0],
      [2, FT.LNKSAVED, b, a, 1],
    ]);
    expect(sent.filter((s) => s.stream === STREAM.MD5_DIGEST).map((s) => [s.fileIndex, s.frames[0]!.equals(md5)])).toEqual([[1, true], [2, true]]);
    expect(Buffer.concat(sent.filter((s) => s.stream === STREAM.FILE_DATA).flatMap((s) => s.frames)).toString()).toBe('hello');
    expect([job.totals.files, job.totals.readBytes]).toEqual([2, 5]);
  });

  it('digests a file holding much data on the job\'s digest thread, a sparse one holding little inline, each its own digest', async () => {
    const dir = tempDir('entry-digests');
    const [holey, dense] = [path.join(dir, 'holey'), path.join(dir, 'dense')];
    const data = Buffer.alloc(40 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    writeFileSync(holey, data.subarray(0, 1024 * 1024));
    truncateSync(holey, data.length); // 40 MiB, of which 1 MiB is data
    writeFileSync(dense, data);
    const { job, sent } = recordingJob();
    const options = { ...defaultOptions(), digest: 'md5' as const };
    const digests = () => sent.filter((s) => s.stream === STREAM.MD5_DIGEST).map((s) => s.frames[0]!.toString('hex'));
    try {
      await sendEntry(job, holey, stat(holey), options, false);
      expect(job.hasDigestThread()).toBe(lstatSync(holey).blocks * 512 > 32 * 1024 * 1024); // no thread unless the file system filled the holes
      await sendEntry(job, dense, stat(dense), options, false);
      expect(job.hasDigestThread()).toBe(true);
      const holeyContent = Buffer.concat([data.subarray(0, 1024 * 1024), Buffer.alloc(data.length - 1024 * 1024)]);
      expect(digests()).toEqual([createHash('md5').update(holeyContent).digest('hex'), createHash('md5').update(data).digest('hex')]);
    } finally {
      await job.close();
    }
  });

  it('sends an empty world-readable file as FT_REGE without opening it, a fifo below a File line as FT_SPEC', async () => {
    const dir = tempDir('entry-kinds');
    const [empty, fifo] = [path.join(dir, 'empty'), path.join(dir, 'fifo')];
    writeFileSync(empty, '', { mode: 0o644 });
    mkfifo(fifo, 0o644);
    const { job, sent, attributes } = recordingJob();
    const options = { ...defaultOptions(), readFifo: true };
    await sendEntry(job, empty, stat(empty), options, false);
    await sendEntry(job, fifo, stat(fifo), options, false); // not top: readfifo does not apply
    expect(attributes().map((r) => [r.type, r.fname])).toEqual([[FT.REGE, empty], [FT.SPEC, fifo]]);
    expect(sent.every((s) => s.stream === STREAM.UNIX_ATTRIBUTES)).toBe(true);
  });

  it('reports a file it cannot open and sends nothing of it', async () => {
    const dir = tempDir('entry-gone');
    const file = path.join(dir, 'f');
    writeFileSync(file, 'data');
    const st = stat(file);
    rmSync(file);
    const { job, sent } = recordingJob();
    await sendEntry(job, file, st, defaultOptions(), false);
    expect(sent).toEqual([]);
    expect(job.totals.errors).toEqual([expect.stringMatching(new RegExp(`^Cannot open "${file}": .*ENOENT`))]);
    expect(job.totals.files).toBe(0);
  });
});

describe('serve backup: checkfilechanges', () => {
  /** A job whose SD, while it takes a file's data, appends to the file (a writer busy during the backup). */
  function jobWithWriter(p: string) {
    const recording = recordingJob();
    const sink = recording.job.run.sd;
    recording.job.run.sd = {
      async sendStream(fileIndex, stream, length, frames) {
        if (stream === STREAM.FILE_DATA) appendFileSync(p, 'more\n');
        return sink.sendStream(fileIndex, stream, length, frames);
      },
    };
    return recording;
  }

  it('reports a file whose mtime changed while it was sent, as an error that leaves the job OK', async () => {
    const p = path.join(tempDir('check-changes'), 'growing.log');
    writeFileSync(p, 'line\n');
    utimesSync(p, new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    const { job, logs } = jobWithWriter(p);
    await sendEntry(job, p, stat(p), { ...defaultOptions(), checkChanges: true }, true);
    expect(logs).toEqual([`error: ${p} mtime changed during backup.`]);
    expect(job.totals.warnings).toEqual([`${p} mtime changed during backup.`]);
    expect(job.totals.errors).toEqual([]);
  });

  it('says nothing without checkfilechanges, or when the file did not change', async () => {
    const p = path.join(tempDir('check-changes-off'), 'growing.log');
    writeFileSync(p, 'line\n');
    utimesSync(p, new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    const { job, logs } = jobWithWriter(p);
    await sendEntry(job, p, stat(p), defaultOptions(), true);
    const still = path.join(tempDir('check-changes-still'), 'still.log');
    writeFileSync(still, 'line\n');
    const quiet = recordingJob();
    await sendEntry(quiet.job, still, stat(still), { ...defaultOptions(), checkChanges: true }, true);
    expect([...logs, ...quiet.logs]).toEqual([]);
  });
});
