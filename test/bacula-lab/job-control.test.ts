/**
 * Job control and reporting of agentfd serve with a real Bacula 9.6 Director and Storage Daemon,
 * each compared with what the real bacula-fd does (measured in this lab): a Job's Maximum
 * Bandwidth and the console's setbandwidth hold the data to the SD to the limit; SIGTERM ends a
 * running job within 2 s and the Director reports it failed (Backup Error, FD and SD in error,
 * JobStatus f, as when bacula-fd is killed); status client shows the running job's files and
 * bytes; estimate listing writes the same lines as the real bacula-fd for the same files;
 * setdebug with trace=1 writes the trace file; checkfilechanges reports a file growing during
 * its backup ("mtime changed during backup", Backup OK -- with warnings).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkfifo } from '../../src/bacula-fd/attributes/special-files.js';
import { BaculaLab, LAB_SH } from '../helpers/bacula-lab.js';

const bacula = new BaculaLab('bacula-jobctl', {
  ports: { dir: 9231, fd: 9232, sd: 9233 },
  extraDirectorConf: (lab) =>
    [
      'FileSet {', '  Name = "BigSet"', '  Include {', '    Options { signature = MD5 }', `    File = "${lab}/big"`, '  }', '}',
      'Job {', '  Name = "Limited"', '  JobDefs = "LabJobDefs"', '  FileSet = "BigSet"', '  Maximum Bandwidth = 2mb/s', '}',
      'Job {', '  Name = "Slow"', '  JobDefs = "LabJobDefs"', '  FileSet = "BigSet"', '  Maximum Bandwidth = 500kb/s', '}',
      'Job { Name = "Unlimited"; JobDefs = "LabJobDefs"; FileSet = "BigSet" }',
      'FileSet {', '  Name = "ListSet"', '  Include {', '    Options { signature = MD5 }', `    File = "${lab}/list"`, '  }', '}',
      'Job { Name = "ListJob"; JobDefs = "LabJobDefs"; FileSet = "ListSet" }',
      'FileSet {', '  Name = "ChangeSet"', '  Include {', '    Options { signature = MD5; checkfilechanges = yes }', `    File = "${lab}/growing"`, '  }', '}',
      'Job {', '  Name = "Changing"', '  JobDefs = "LabJobDefs"', '  FileSet = "ChangeSet"', '  Maximum Bandwidth = 2mb/s',
      `  ClientRunBeforeJob = "/bin/sh ${lab}/grow.sh"`, '}',
    ].join('\n'),
});
const lab = bacula.dir;
/** 4 MB: 2 s at the Limited job's 2mb/s (2,000,000 bytes/s), 8 s at the Slow job's 500kb/s. */
const BIG = 4_000_000;

beforeAll(async () => {
  mkdirSync(path.join(lab, 'big'));
  writeFileSync(path.join(lab, 'big', 'data.bin'), Buffer.alloc(BIG, 'x'));
  makeListTree(path.join(lab, 'list'));
  mkdirSync(path.join(lab, 'growing'));
  // The Changing job's writer: a 4 MB file, appended to every 0.2 s for 4 s while it is sent (2 s).
  const grows = path.join(lab, 'growing', 'app.log');
  writeFileSync(
    path.join(lab, 'grow.sh'),
    `head -c ${BIG} /dev/zero > '${grows}'\n(for i in $(seq 20); do echo more >> '${grows}'; sleep 0.2; done) > /dev/null 2>&1 &\n`,
  );
  bacula.start();
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

/** Files of each kind the listing shows differently: setuid, setgid without x, sticky, a fifo, links, owners without names. */
function makeListTree(dir: string): void {
  mkdirSync(path.join(dir, 'sub'), { recursive: true });
  writeFileSync(path.join(dir, 'setuid'), 'x\n');
  chmodSync(path.join(dir, 'setuid'), 0o4755);
  writeFileSync(path.join(dir, 'setgid'), 'x\n');
  chmodSync(path.join(dir, 'setgid'), 0o2644);
  mkdirSync(path.join(dir, 'sticky'));
  chmodSync(path.join(dir, 'sticky'), 0o1777);
  linkSync(path.join(dir, 'setuid'), path.join(dir, 'hard'));
  symlinkSync('setuid', path.join(dir, 'link'));
  mkfifo(path.join(dir, 'fifo'), 0o644);
  writeFileSync(path.join(dir, 'sub', 'nobody'), 'owned by nobody\n');
  chownSync(path.join(dir, 'sub', 'nobody'), 65534, 65534);
  writeFileSync(path.join(dir, 'sub', 'numeric'), 'no name for these ids\n');
  chownSync(path.join(dir, 'sub', 'numeric'), 54321, 54321);
}

/** `lab.sh run-job JOB` in the background: its output once it ends. */
function runJobInBackground(job: string): Promise<string> {
  const child = spawn('bash', [LAB_SH, 'run-job', job], { env: bacula.env() });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve) => child.once('close', () => resolve(out)));
}

/** status client, polled until `pattern` matches; the status text. */
async function statusUntil(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = bacula.console('status client=agentfd-fd');
    if (pattern.test(status) || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The SD's transfer rate for the job (its own clock: the append session's data), in MB/s. */
function sdRate(report: string): number {
  return Number(/lab-sd JobId \d+: Elapsed time=[\d:]+, Transfer rate=([\d.]+) M Bytes\/second/.exec(report)?.[1] ?? NaN);
}

const jobIdOf = (report: string) => Number(/jobid=(\d+)/.exec(report)?.[1] ?? /JobId=(\d+)/.exec(report)?.[1]);

/** The estimate listing's file lines, as the console prints them. */
function listing(): string[] {
  return bacula.console('estimate job=ListJob listing client=agentfd-fd').split('\n').filter((line) => line.includes(`${lab}/list`));
}

describe('agentfd serve job control with a real Bacula 9.6 Director', () => {
  it("holds a job to its Maximum Bandwidth: 4 MB at 2mb/s in 2 s, as bacula-fd (the SD's rate 2.000 MB/s)", () => {
    const started = Date.now();
    const { report } = bacula.runJob('Limited');
    expect(report).toMatch(/FD Bytes Written:\s+4,000,000/);
    const rate = sdRate(report);
    expect(rate).toBeGreaterThanOrEqual(1.3); // 3 s by the SD's whole seconds at worst
    expect(rate).toBeLessThanOrEqual(2.05);
    expect(Date.now() - started).toBeGreaterThan(2_000);
    // Without a limit the same data goes many times faster.
    expect(sdRate(bacula.runJob('Unlimited').report)).not.toBeLessThan(4);
  });

  it("takes the console's setbandwidth for a running job, and for the client's future jobs", async () => {
    const ended = runJobInBackground('Slow'); // 8 s at 500kb/s
    const status = await statusUntil(/Slow\.\S+ is running[\s\S]*Bytes=[1-9]/);
    const jobId = Number(/JobId (\d+) Job Slow\./.exec(status)?.[1]);
    const started = Date.now();
    expect(bacula.console(`setbandwidth limit=10mb/s jobid=${jobId}`)).toMatch(/2000 OK Limiting bandwidth to 10.00 MB\/s/);
    expect(await ended).toMatch(/Termination:\s+Backup OK/);
    expect(Date.now() - started).toBeLessThan(5_000); // the rest at 10 MB/s, not 500 kB/s
    // Client-wide: the next job without a limit of its own gets it.
    expect(bacula.console('setbandwidth limit=1mb/s client=agentfd-fd')).toMatch(/2000 OK Limiting bandwidth to 1.000 MB\/s on running and future jobs/);
    try {
      const rate = sdRate(bacula.runJob('Unlimited').report);
      expect(rate).toBeLessThanOrEqual(1.05);
    } finally {
      bacula.console('setbandwidth limit=0 client=agentfd-fd');
    }
  });

  it('shows a running job in status client: its files, bytes, rates, limit and the file being sent', async () => {
    const ended = runJobInBackground('Slow');
    const status = await statusUntil(/Files=1 Bytes=[1-9]/);
    expect(status).toMatch(/JobId \d+ Job Slow\.\S+ is running\.\n {4}Full Backup Job started: \d\d-\w{3}-\d\d \d\d:\d\d\n/);
    expect(status).toMatch(/ {4}Files=1 Bytes=[\d,]+ AveBytes\/sec=[\d,]+ LastBytes\/sec=[\d,]+ Errors=0\n {4}Bwlimit=500,000 ReadBytes=[\d,]+\n/);
    expect(status).toMatch(/ {4}Files: Examined=1 Backed up=1\n {4}Processing file: .*\/big\/data\.bin\n/);
    expect(status).not.toContain('No Jobs running.');
    expect(await ended).toMatch(/Termination:\s+Backup OK/);
  });

  it('ends a running job within 2 s of SIGTERM; the Director reports it failed, FD and SD in error, as when bacula-fd is killed', async () => {
    const ended = runJobInBackground('Slow');
    await statusUntil(/Slow\.\S+ is running[\s\S]*Bytes=[1-9]/);
    const signalled = Date.now();
    await bacula.stopServe(); // SIGTERM, and waits for the process to end
    expect(Date.now() - signalled).toBeLessThan(2_000);
    const report = await ended;
    expect(report).toMatch(/agentfd-fd JobId \d+: Fatal error: agentfd-fd received SIGTERM and is shutting down/);
    expect(report).toMatch(/FD termination status:\s+Error/);
    expect(report).toMatch(/SD termination status:\s+Error/);
    expect(report).toMatch(/Termination:\s+\*\*\* Backup Error \*\*\*/);
    const jobId = jobIdOf(report);
    const db = path.join(lab, 'work-dir', 'bacula.db');
    const status = spawnSync('sqlite3', [db, `SELECT JobStatus FROM Job WHERE JobId = ${jobId};`], { encoding: 'utf8' });
    expect(status.stdout.trim()).toBe('f');
    await bacula.startServe();
  });

  it("writes the estimate listing line for line as the real bacula-fd writes it for the same files", async () => {
    const ours = listing();
    expect(ours.length).toBe(10);
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    let theirs: string[];
    try {
      theirs = listing();
    } finally {
      bacula.sh(['stop-real-fd']);
      await bacula.startServe();
    }
    expect(ours).toEqual(theirs);
    expect(ours.some((line) => line.startsWith('-rwsr-xr-x   2 ') && line.endsWith('/list/setuid'))).toBe(true);
    expect(ours.some((line) => line.endsWith('/list/link -> setuid'))).toBe(true);
    expect(ours.some((line) => / nobody +nogroup /.test(line))).toBe(true);
  });

  it('writes debug output to <working directory>/agentfd-fd.trace after setdebug trace=1: commands, files, streams', () => {
    const trace = path.join(lab, 'agentfd-state', 'agentfd-fd.trace');
    expect(bacula.console('setdebug level=200 trace=1 client=agentfd-fd')).toMatch(/2000 OK setdebug=200 trace=1 hangup=0 blowup=0 options= tags=/);
    try {
      const { jobId } = bacula.runJob('Unlimited');
      const text = readFileSync(trace, 'utf8');
      expect(text).toMatch(new RegExp(`^agentfd-fd: director-${jobId} <dird: backup FileIndex=0$`, 'm'));
      expect(text).toMatch(new RegExp(`^agentfd-fd: backup-${jobId} FT=3 saving: ${lab}/big/data\\.bin$`, 'm'));
      expect(text).toMatch(new RegExp(`^agentfd-fd: storage-${jobId} >stored: 1 2 ${BIG}$`, 'm'));
    } finally {
      bacula.console('setdebug level=0 trace=0 client=agentfd-fd');
    }
    const size = readFileSync(trace).length;
    bacula.runJob('Unlimited');
    expect(readFileSync(trace).length).toBe(size); // level 0: nothing more
    expect(existsSync(trace)).toBe(true);
  });

  it('reports a file growing during its backup with checkfilechanges: mtime changed during backup, OK -- with warnings', () => {
    const report = bacula.runJobAnyEnd('Changing');
    const jobId = jobIdOf(report);
    expect(report).toMatch(new RegExp(`agentfd-fd JobId ${jobId}: Error: ${lab}/growing/app\\.log mtime changed during backup\\.`));
    expect(report).toMatch(/Non-fatal FD errors:\s+1\n/);
    expect(report).toMatch(/FD termination status:\s+OK\n/);
    expect(report).toMatch(/Termination:\s+Backup OK -- with warnings/);
  });
});
