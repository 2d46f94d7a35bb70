/**
 * `status client` lines (director/status.ts) against what the real bacula-fd 9.6 printed in the
 * lab for the same jobs: its Terminated Jobs rows, number formats and Running Jobs block.
 */
import { describe, expect, it } from 'vitest';
import { newJobRecord, type JobRecord } from '../../src/bacula-fd/director/job-record.js';
import { jobName, runningJobLines, terminatedLine, withCommas, withSuffix } from '../../src/bacula-fd/director/status.js';

/** 07-Dec-26 22:14 local time, as bacula-fd prints its dates. */
const at = (minute: number, second = 0) => new Date(2026, 11, 7, 22, minute, second);

function ended(over: Partial<JobRecord>): JobRecord {
  return { ...newJobRecord(1, 'BwJob.2026-12-07_22.14.34_03', 0), level: 'F', kind: 'backup', ended: at(14), termCode: 84, ...over };
}

describe('status client as bacula-fd writes it', () => {
  it("edits numbers as Bacula's edit_uint64_with_commas and edit_uint64_with_suffix", () => {
    expect(withCommas(5_636_096)).toBe('5,636,096');
    expect(withCommas(999)).toBe('999');
    expect(withSuffix(20_000_000)).toBe('20.00 M');
    expect(withSuffix(4_000_012)).toBe('4.000 M');
    expect(withSuffix(65_536)).toBe('65.53 K');
    expect(withSuffix(1_234_567_890_123)).toBe('1.234 T');
    expect(withSuffix(999)).toBe('999 ');
  });

  it('names a job without the date parts of its unique name', () => {
    expect(jobName('BwJob.2026-12-07_22.14.34_03')).toBe('BwJob');
    expect(jobName('Lab.Backup.2026-12-07_22.14.34_03')).toBe('Lab.Backup');
  });

  it('writes the Terminated Jobs rows the real bacula-fd wrote: level names, Rest for restores, suffixed bytes', () => {
    expect(terminatedLine(ended({ jobId: 1, files: 2, bytes: 20_000_000 }))).toBe('     1  Full          2    20.00 M  OK       07-Dec-26 22:14 BwJob\n');
    expect(terminatedLine(ended({ jobId: 6, job: 'LabRestore.2026-12-07_22.18.45_13', kind: 'restore', level: '-', files: 1, bytes: 65_536, termCode: 65, ended: at(18) })))
      .toBe('     6  Rest          1    65.53 K  Cancel   07-Dec-26 22:18 LabRestore\n');
    expect(terminatedLine(ended({ jobId: 12, level: 'I', files: 1234, bytes: 5, termCode: 102 }))).toBe('    12  Incr      1,234         5   Error    07-Dec-26 22:14 BwJob\n');
  });

  it('shows a running backup with its files, bytes, rates, limit and the file being sent', () => {
    const job = ended({ jobId: 3, job: 'BwJob.2026-12-07_22.15.02_11', ended: null, termCode: null, started: at(15, 0) });
    job.throttle!.limit = 4_000_000;
    job.progress = () => ({ files: 1, bytes: 5_636_096, readBytes: 5_701_632, examined: 1, lastFile: '/tmp/jc-lab/big/f1', sd: { readSeqNo: 6, tls: false } });
    expect(runningJobLines(job, at(15, 1).getTime())).toEqual([
      'JobId 3 Job BwJob.2026-12-07_22.15.02_11 is running.\n',
      '    Full Backup Job started: 07-Dec-26 22:15\n',
      '    Files=1 Bytes=5,636,096 AveBytes/sec=5,636,096 LastBytes/sec=5,636,096 Errors=0\n',
      '    Bwlimit=4,000,000 ReadBytes=5,701,632\n',
      '    Files: Examined=1 Backed up=1\n',
      '    Processing file: /tmp/jc-lab/big/f1\n',
      '    SDReadSeqNo=6 SDtls=0\n',
    ]);
  });

  it('shows a running restore with no level, and restored against expected files', () => {
    const job = ended({ jobId: 6, job: 'LabRestore.2026-12-07_22.18.45_13', kind: 'restore', level: '-', ended: null, termCode: null, started: at(18, 45), expectedFiles: 2 });
    job.progress = () => ({ files: 0, bytes: 0, readBytes: 0, examined: 1, lastFile: '/r/tmp/big/f1', sd: null });
    const lines = runningJobLines(job, at(18, 49).getTime());
    expect(lines[1]).toBe('      Restore Job started: 07-Dec-26 22:18\n');
    expect(lines).toContain('    Files: Restored=1 Expected=2 Completed=50%\n');
    expect(lines.at(-1)).toBe('    SDSocket closed.\n');
  });
});
