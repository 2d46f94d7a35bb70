/**
 * agentfd serve against a real, unmodified Bacula 9.6 Director and Storage Daemon on 127.0.0.1
 * (scripts/bacula/lab.sh; npm run test:bacula). Every job is started through bconsole and must end
 * "Backup OK" or "Restore OK" in the Director's own report: a full backup and restore of a tree
 * (contents, modes, times, symlinks), GZIP6 with MD5, an incremental after a change, two jobs at
 * once, and the cross-checks: the real bacula-fd restores agentfd's backup, and agentfd restores
 * the real bacula-fd's.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, lstatSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab, LAB_SH, describeTree, restoredPath } from '../helpers/bacula-lab.js';

let lab: string;
let data: string;
let store: string;
let dumpSource: string;
// Heartbeats every 200 ms: every job below also proves the Director takes them wherever it waits.
const bacula = new BaculaLab('bacula-lab', { extraDirectorConf: () => extraDirectorConf(), serveSettings: ['heartbeat_interval = "200ms"'] });
const labSh = (args: string[], mayFail = false) => bacula.sh(args, mayFail);
const runJob = (job: string, ...options: string[]) => bacula.runJob(job, ...options);
const restoreJob = (jobId: number, where: string) => bacula.restore(jobId, where);
const startServe = (withoutAgents = false) => bacula.startServe('', withoutAgents);
const stopServe = () => bacula.stopServe();

/** FileSets with Plugin lines: the sample Exchange agent, and Debian's bpipe through the adapter. */
function extraDirectorConf(): string {
  return [
    'FileSet {', '  Name = "ExchangeSet"', '  Include {', '    Options { signature = MD5; compression = GZIP6 }',
    `    Plugin = "MicrosoftExchange:store=${store}:truncate_logs=no"`, '  }', '}',
    'Job { Name = "ExchangeBackup"; JobDefs = "LabJobDefs"; FileSet = "ExchangeSet" }',
    'FileSet {', '  Name = "BpipeSet"', '  Include {', '    Options { signature = MD5 }',
    `    Plugin = "bpipe:/@bpipe@/dump.sql:cat ${dumpSource}:sh -c 'cat > %w/dump-restored.sql'"`, '  }', '}',
    'Job { Name = "BpipeBackup"; JobDefs = "LabJobDefs"; FileSet = "BpipeSet" }',
    // An agent that waits until it is cancelled: a job to cancel from the Director.
    'FileSet {', '  Name = "HangSet"', '  Include {', '    Plugin = "FaultInjector:fault=hang-cancellable"', '  }', '}',
    'Job { Name = "HangBackup"; JobDefs = "LabJobDefs"; FileSet = "HangSet" }',
  ].join('\n');
}

/** A copy of the data as it is now, to compare a later restore of this backup with. */
function snapshot(name: string): string {
  const copy = path.join(lab, 'snapshots', name);
  cpSync(data, copy, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  return copy;
}

function restored(where: string): string {
  return restoredPath(where, data);
}

beforeAll(async () => {
  lab = bacula.dir;
  store = path.join(lab, 'exchange-store');
  mkdirSync(path.join(store, 'SG1', 'logs'), { recursive: true });
  writeFileSync(path.join(store, 'SG1', 'DB1.edb'), Buffer.concat([randomBytes(400_000), Buffer.from('page '.repeat(100_000))]));
  writeFileSync(path.join(store, 'SG1', 'logs', 'E00000001.log'), 'transaction log\n'.repeat(1000));
  dumpSource = path.join(lab, 'dump.sql');
  writeFileSync(dumpSource, Array.from({ length: 50_000 }, (_, i) => `INSERT INTO t VALUES (${i}, 'row ${i}');\n`).join(''));
  data = path.join(lab, 'data');
  mkdirSync(path.join(data, 'sub', 'deeper'), { recursive: true });
  writeFileSync(path.join(data, 'hello.txt'), 'hello bacula\n');
  writeFileSync(path.join(data, 'random.bin'), randomBytes(3_000_000));
  writeFileSync(path.join(data, 'log.txt'), Array.from({ length: 60_000 }, (_, i) => `2026-11-27 line ${i} of a log that compresses well\n`).join(''));
  writeFileSync(path.join(data, 'empty'), '');
  writeFileSync(path.join(data, 'sub', 'deeper', 'file with space.txt'), 'deep\n');
  symlinkSync('hello.txt', path.join(data, 'link-to-hello'));
  symlinkSync('../hello.txt', path.join(data, 'sub', 'uplink'));
  chmodSync(path.join(data, 'hello.txt'), 0o640);
  chmodSync(path.join(data, 'sub'), 0o750);
  utimesSync(path.join(data, 'random.bin'), new Date('2020-02-02T02:02:02Z'), new Date('2020-02-02T02:02:02Z'));
  bacula.start();
  await startServe();
}, 300_000);

afterAll(() => bacula.destroy());

describe('agentfd serve with a real Bacula 9.6 Director and Storage Daemon', () => {
  it('answers status client', () => {
    const { out } = labSh(['console', 'status client=agentfd-fd']);
    expect(out).toMatch(/agentfd-fd Version: agentfd \S+ \(Bacula FD protocol 213\)/);
    expect(out).toContain('No Jobs running.');
  });

  it('estimates a job from the FileSet, listing its files', () => {
    const { out } = labSh(['console', 'estimate job=LabBackup listing']);
    expect(out).toMatch(/-rw-r-----\s+1 .* \/\S+\/data\/hello\.txt/);
    // 10 entries, and the bytes of the regular files (3,000,000 + the log + 13 + 5).
    const totals = /2000 OK estimate files=(\d+) bytes=([\d,]+)/.exec(out);
    expect(totals, out).not.toBeNull();
    expect(Number(totals![1])).toBe(10);
  });

  let fullId = 0;
  it('backs up a tree (Backup OK) and restores it byte for byte, with modes, times and symlinks (Restore OK)', () => {
    const before = snapshot('full');
    const { report, jobId } = runJob('LabBackup');
    fullId = jobId;
    expect(report).toMatch(/FD Files Written:\s+10\b/);
    const where = path.join(lab, 'restore-full');
    restoreJob(jobId, where);
    expect(describeTree(restored(where))).toEqual(describeTree(before));
  });

  it('compresses with GZIP6 and digests with MD5 as the FileSet asks, and restores it', () => {
    const before = snapshot('gzip');
    const { report, jobId } = runJob('LabBackupGzip');
    expect(report).toMatch(/Software Compression:\s+\d+\.\d+% [\d.]+:1/);
    const where = path.join(lab, 'restore-gzip');
    restoreJob(jobId, where);
    expect(describeTree(restored(where))).toEqual(describeTree(before));
  });

  it('saves only what changed in an incremental', () => {
    writeFileSync(path.join(data, 'hello.txt'), 'hello again\n');
    writeFileSync(path.join(data, 'sub', 'new.txt'), 'new\n');
    const { report, jobId } = runJob('LabBackup', 'level=Incremental');
    expect(report).toMatch(/Backup Level:\s+Incremental/);
    // hello.txt (rewritten in place), sub/new.txt, and sub/, whose entries changed.
    expect(report).toMatch(/FD Files Written:\s+3\b/);
    const where = path.join(lab, 'restore-incremental');
    restoreJob(jobId, where);
    expect(readFileSync(path.join(restored(where), 'hello.txt'), 'utf8')).toBe('hello again\n');
    expect(readFileSync(path.join(restored(where), 'sub', 'new.txt'), 'utf8')).toBe('new\n');
    expect(() => lstatSync(path.join(restored(where), 'random.bin'))).toThrow(); // unchanged: not in this job
    expect(fullId).toBeGreaterThan(0);
  });

  it('saves everything changed since the full in a differential (the Director gives the full\'s since-time)', () => {
    writeFileSync(path.join(data, 'sub', 'deeper', 'another.txt'), 'after the incremental\n');
    const { report, jobId } = runJob('LabBackup', 'level=Differential');
    expect(report).toMatch(/Backup Level:\s+Differential/);
    // The incremental's three (hello.txt, sub/new.txt, sub/) again, and sub/deeper/another.txt with sub/deeper/.
    expect(report).toMatch(/FD Files Written:\s+5\b/);
    const listed = labSh(['console', `list files jobid=${jobId}`]).out;
    for (const name of ['hello.txt', 'sub/new.txt', 'sub/deeper/another.txt']) expect(listed).toContain(`${data}/${name}`);
    expect(listed).not.toContain(`${data}/random.bin`);
  });

  it('runs two jobs at once, each to Backup OK', async () => {
    const run = (job: string) =>
      new Promise<string>((resolve) => {
        const child = spawn('bash', [LAB_SH, 'run-job', job], { env: bacula.env() });
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (out += c.toString()));
        child.on('exit', () => resolve(out));
      });
    const [a, b] = await Promise.all([run('LabBackup'), run('LabBackupGzip')]);
    expect(a).toMatch(/Termination:\s+Backup OK/);
    expect(b).toMatch(/Termination:\s+Backup OK/);
  });

  it('backs up an agent from a FileSet Plugin line and restores it through the same agent', () => {
    const { report, jobId } = runJob('ExchangeBackup');
    expect(report).toMatch(/FD Files Written:\s+2\b/);
    const listed = labSh(['console', `list files jobid=${jobId}`]).out;
    expect(listed).toContain('/@exchange/SG1/DB1.edb');
    const where = path.join(lab, 'restore-exchange');
    restoreJob(jobId, where);
    // The agent restored its store under where (the Exchange sample puts SG1/ there).
    expect(readFileSync(path.join(where, 'SG1', 'DB1.edb')).equals(readFileSync(path.join(store, 'SG1', 'DB1.edb')))).toBe(true);
    expect(readFileSync(path.join(where, 'SG1', 'logs', 'E00000001.log'), 'utf8')).toBe('transaction log\n'.repeat(1000));
  });

  it('restores an agent file as a plain file under where when the agent is not installed', async () => {
    const { jobId } = runJob('ExchangeBackup');
    await stopServe();
    await startServe(true);
    try {
      const where = path.join(lab, 'restore-exchange-plain');
      restoreJob(jobId, where);
      expect(readFileSync(path.join(where, '@exchange', 'SG1', 'DB1.edb')).equals(readFileSync(path.join(store, 'SG1', 'DB1.edb')))).toBe(true);
    } finally {
      await stopServe();
      await startServe();
    }
  });

  it("runs Debian's bpipe plugin from a Plugin line through the Bacula adapter, both ways", () => {
    const { jobId } = runJob('BpipeBackup');
    const where = path.join(lab, 'restore-bpipe');
    mkdirSync(where, { recursive: true });
    restoreJob(jobId, where);
    expect(readFileSync(path.join(where, 'dump-restored.sql')).equals(readFileSync(dumpSource))).toBe(true);
  });

  it('cancels a running job from the Director, and goes on serving', async () => {
    const child = spawn('bash', [LAB_SH, 'run-job', 'HangBackup'], { env: bacula.env() });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const ended = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Wait until agentfd reports the job running, then cancel it through the Director.
    let jobId: string | undefined;
    for (let i = 0; i < 60 && !jobId; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      jobId = /JobId (\d+) Job HangBackup\S* is running/.exec(labSh(['console', 'status client=agentfd-fd']).out)?.[1];
    }
    expect(jobId, out).toBeDefined();
    labSh(['console', `cancel jobid=${jobId}`]);
    await ended;
    expect(out).toMatch(/Termination:\s+Backup Canceled/);
    expect(runJob('LabBackup').report).toMatch(/Backup OK/);
  });

  it("restores what the real bacula-fd saved, and the real bacula-fd restores agentfd's backup", async () => {
    const before = snapshot('cross');
    const ours = runJob('LabBackupGzip').jobId;
    await stopServe();
    labSh(['start-real-fd']);
    let theirs: number;
    try {
      theirs = runJob('LabBackupGzip').jobId;
      const whereReal = path.join(lab, 'restore-by-real-fd');
      restoreJob(ours, whereReal);
      expect(describeTree(restored(whereReal))).toEqual(describeTree(before));
    } finally {
      labSh(['stop-real-fd'], true);
    }
    await startServe();
    const whereOurs = path.join(lab, 'restore-by-agentfd');
    restoreJob(theirs, whereOurs);
    expect(describeTree(restored(whereOurs))).toEqual(describeTree(before));
  });
});
