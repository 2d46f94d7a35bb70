/**
 * The text of `status client` as bacula-fd 9.6 writes it (filed/status.c, lib/status.h): its
 * Running Jobs with live files, bytes, rates, bandwidth limit and the file being processed, and
 * its Terminated Jobs table with Bacula's number formats. Pure functions of the job records, so
 * each line can be checked on its own.
 */
import type { JobProgress, JobRecord } from './job-record.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** bstrftime_nc: "07-Dec-26 22:15", local time. */
export function baculaDate(d: Date): string {
  return `${two(d.getDate())}-${MONTHS[d.getMonth()]}-${two(d.getFullYear() % 100)} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** edit_uint64_with_commas: 5,636,096. */
export function withCommas(n: number | bigint): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const SUFFIXES = ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];

/**
 * edit_uint64_with_suffix: the number with commas, the first comma made a point and the rest cut
 * off at five characters, then the suffix of the commas' count: 20,000,000 is "20.00 M", 999 "999 ".
 */
export function withSuffix(n: number | bigint): string {
  const groups = withCommas(n).split(',');
  if (groups.length === 1) return `${groups[0]} `;
  return `${`${groups[0]}.${groups[1]}`.slice(0, 5)} ${SUFFIXES[Math.min(groups.length - 1, SUFFIXES.length - 1)]}`;
}

/** The Termination bacula-fd's table shows for a job status character (lib/status.h). */
export function termText(code: number | null): string {
  switch (code) {
    case 84: return 'OK';
    case 69: case 102: return 'Error';
    case 65: return 'Cancel';
    case 68: return 'Diffs';
    case 101: return 'OK -- with warnings';
    case null: return 'Created';
    default: return 'Other';
  }
}

/** job_level_to_str (lib/util.c), by the level letter the job record keeps (verify levels: transfer/verify.ts). */
const LEVEL_NAMES: Record<string, string> = {
  F: 'Full', I: 'Incremental', D: 'Differential', V: 'Init Catalog', C: 'Verify Catalog', d: 'Disk to Catalog', O: 'Volume to Catalog', A: 'Data',
};

/** job_level_to_str; a restore has no level (' '). */
function levelName(job: JobRecord): string {
  return job.kind === 'restore' ? ' ' : LEVEL_NAMES[job.level] ?? job.level;
}

/** The job name without the three dotted parts of its date (BwJob.2026-12-07_22.14.34_03: BwJob). */
export function jobName(job: string): string {
  let name = job;
  for (let i = 0; i < 3; i++) {
    const dot = name.lastIndexOf('.');
    if (dot >= 0) name = name.slice(0, dot);
  }
  return name;
}

/** One row of the Terminated Jobs table: "%6d  %-6s %8s %10s  %-7s  %-8s %s". */
export function terminatedLine(job: JobRecord): string {
  const level = job.kind === 'restore' ? 'Rest' : (LEVEL_NAMES[job.level] ?? job.level).slice(0, 4);
  return `${String(job.jobId).padStart(6)}  ${level.padEnd(6)} ${withCommas(job.files).padStart(8)} ${withSuffix(job.bytes).padStart(10)}  ${termText(job.termCode).padEnd(7)}  ${baculaDate(job.ended ?? job.started).padEnd(8)} ${jobName(job.job)}\n`;
}

const NOTHING_YET: JobProgress = { files: 0, bytes: 0, readBytes: 0, examined: 0, lastFile: '', sd: null };

/**
 * The lines of one running job (list_running_jobs_plain). The rates are bacula-fd's: the average
 * over the whole job, and a last rate smoothed with the one before, its base moved every 10 s.
 * `nowMs` is the time of this status; the job's rate state is updated as bacula-fd updates it.
 */
export function runningJobLines(job: JobRecord, nowMs: number): string[] {
  const p = job.progress?.() ?? { ...NOTHING_YET, files: job.files, bytes: job.bytes };
  const now = Math.floor(nowMs / 1000);
  const started = Math.floor(job.started.getTime() / 1000);
  const rate = (job.rate ??= { at: started, bytes: 0, smoothed: 0 });
  const instant = Math.floor((p.bytes - rate.bytes) / Math.max(1, now - rate.at));
  if (rate.smoothed <= 0) rate.smoothed = instant;
  const last = Math.floor((2 * rate.smoothed + instant) / 3);
  const average = Math.floor(p.bytes / Math.max(1, now - started));
  const lines = [
    `JobId ${job.jobId} Job ${job.job} is running.\n`,
    `    ${levelName(job)} ${job.kind === 'restore' ? 'Restore' : job.kind === 'verify' ? 'Verify' : 'Backup'} Job started: ${baculaDate(job.started)}\n`,
    `    Files=${withCommas(p.files)} Bytes=${withCommas(p.bytes)} AveBytes/sec=${withCommas(average)} LastBytes/sec=${withCommas(last)} Errors=${job.errors.length}\n`,
    `    Bwlimit=${withCommas(job.throttle?.limit ?? 0)} ReadBytes=${withCommas(p.readBytes)}\n`,
  ];
  if (job.kind === 'restore') {
    const expected = job.expectedFiles ?? 0;
    lines.push(expected > 0
      ? `    Files: Restored=${withCommas(p.examined)} Expected=${withCommas(expected)} Completed=${Math.floor((100 * p.examined) / expected)}%\n`
      : `    Files: Restored=${withCommas(p.examined)}\n`);
  } else {
    lines.push(`    Files: Examined=${withCommas(p.examined)} Backed up=${withCommas(p.files)}\n`);
  }
  if (now - rate.at > 10) Object.assign(rate, { at: now, bytes: p.bytes, smoothed: last });
  if (p.files > 0) lines.push(`    Processing file: ${p.lastFile}\n`);
  lines.push(p.sd ? `    SDReadSeqNo=${p.sd.readSeqNo} SDtls=${p.sd.tls ? 1 : 0}\n` : '    SDSocket closed.\n');
  return lines;
}
