/**
 * Client run scripts through a real, unmodified Bacula 9.6 Director and Storage Daemon
 * (scripts/bacula/lab.sh; npm run test:bacula), with `agentfd serve` as the client. The Director
 * sends ClientRunBeforeJob / ClientRunAfterJob (the older RunBeforeJob / RunAfterJob commands) and
 * RunScript { RunsOnClient = yes } (Run ... + RunBeforeNow); agentfd runs them and the Director's
 * own job report must show it: script output, the failure that fails a job, what ran after.
 * This lab uses ports 9121-9123, so it can run beside the other lab files.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab, restoredPath } from '../helpers/bacula-lab.js';

const bacula = new BaculaLab('bacula-scripts', { ports: { dir: 9121, fd: 9122, sd: 9123 }, extraDirectorConf: (lab) => jobs(lab) });
const lab = bacula.dir;
const data = path.join(lab, 'data');
const madeByBefore = path.join(data, 'made-by-before.txt');
const afterFile = path.join(lab, 'after.txt');
const onFailureFile = path.join(lab, 'on-failure.txt');
const restoreAfterFile = path.join(lab, 'restore-after.txt');

/** The test's Jobs (Bacula config strings: the commands use single quotes for their sh -c). */
function jobs(dir: string): string {
  const d = path.join(dir, 'data');
  return `
Job {
  Name = "ScriptedBackup"; JobDefs = "LabJobDefs"
  ClientRunBeforeJob = "/bin/sh -c 'echo before-ran for %n; echo made-by-job-%i > ${d}/made-by-before.txt'"
  ClientRunAfterJob = "/bin/sh -c 'echo %i %n %l %t %e %F > ${dir}/after.txt'"
  RunScript { RunsWhen = AfterVSS; RunsOnClient = yes; Command = "/bin/echo after-vss %t %e" }
}
Job {
  Name = "ScriptedFailure"; JobDefs = "LabJobDefs"
  RunScript { RunsWhen = Before; RunsOnClient = yes; Command = "/bin/sh -c 'echo cannot prepare the database; exit 3'" }
  RunScript { RunsWhen = After; RunsOnClient = yes; Command = "/bin/sh -c 'echo ran > ${dir}/after-on-success.txt'" }
  RunScript {
    RunsWhen = After; RunsOnClient = yes; RunsOnSuccess = no; RunsOnFailure = yes
    Command = "/bin/sh -c 'echo cleaning up after %i: %e; echo %i %n %e > ${dir}/on-failure.txt'"
  }
}
Job {
  Name = "OldStyleFailure"; JobDefs = "LabJobDefs"
  ClientRunBeforeJob = "/bin/false"
}
Job {
  Name = "ScriptWarning"; JobDefs = "LabJobDefs"
  RunScript { RunsWhen = Before; RunsOnClient = yes; FailJobOnError = no; Command = "/nonexistent/prepare --now" }
}
Job {
  Name = "ScriptedRestore"; Type = Restore; Client = agentfd-fd; Storage = File1; FileSet = "LabSet"; Pool = LabPool
  Messages = Standard; Where = "${dir}/restore"
  RunScript { RunsWhen = After; RunsOnClient = yes; Command = "/bin/sh -c 'echo %i %t %e > ${dir}/restore-after.txt'" }
}
`;
}

/** The report's line of a job message from agentfd (the lab prints "<time> <daemon> JobId N: <text>"). */
function fdMessage(jobId: number, text: string): RegExp {
  return new RegExp(`agentfd-fd JobId ${jobId}: ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
}

function jobIdOf(report: string): number {
  return Number(/jobid=(\d+) termination=/.exec(report)![1]);
}

beforeAll(async () => {
  mkdirSync(data, { recursive: true });
  writeFileSync(path.join(data, 'hello.txt'), 'hello scripts\n');
  bacula.start();
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

describe('client run scripts with a real Bacula 9.6 Director', () => {
  let backupId = 0;
  it('runs ClientRunBeforeJob before the backup (its file is saved) with its output in the report, and ClientRunAfterJob after, %-codes expanded', () => {
    rmSync(madeByBefore, { force: true });
    const { report, jobId } = bacula.runJob('ScriptedBackup');
    backupId = jobId;
    expect(report).toMatch(fdMessage(jobId, `shell command: run ClientRunBeforeJob "/bin/sh -c 'echo before-ran for ScriptedBackup;`));
    expect(report).toMatch(fdMessage(jobId, 'ClientRunBeforeJob: before-ran for ScriptedBackup'));
    // The before-script made a file in the FileSet: the backup has it, so it ran first.
    expect(readFileSync(madeByBefore, 'utf8')).toBe(`made-by-job-${jobId}\n`);
    expect(bacula.console(`list files jobid=${jobId}`)).toContain(madeByBefore);
    expect(report).toMatch(/FD Files Written:\s+3\b/); // data/, hello.txt, made-by-before.txt
    // The after-script saw the finished job: its JobId, name, level, type, status and file count.
    expect(readFileSync(afterFile, 'utf8')).toBe(`${jobId} ScriptedBackup Full Backup OK 3\n`);
    expect(report).toMatch(fdMessage(jobId, `shell command: run ClientAfterJob "/bin/sh -c 'echo ${jobId} ScriptedBackup Full Backup OK 3 > ${afterFile}'"`));
    // bacula-fd 9.6 runs AfterVSS scripts on Linux too, once the SD took the data (the job is Blocked then).
    expect(report).toMatch(fdMessage(jobId, 'ClientAfterVSS: after-vss Backup Unknown term code'));
  });

  it('restores the file the before-script made, and runs the restore job\'s After script', () => {
    expect(backupId).toBeGreaterThan(0);
    rmSync(madeByBefore);
    const where = path.join(lab, 'restore-scripted');
    const queued = bacula.console(`restore jobid=${backupId} client=agentfd-fd restorejob=ScriptedRestore where="${where}" all done yes`);
    const restoreId = Number(/Job queued\. JobId=(\d+)/.exec(queued)?.[1]);
    expect(restoreId, queued).toBeGreaterThan(0);
    bacula.console(`wait jobid=${restoreId}`);
    const log = bacula.console(`list joblog jobid=${restoreId}`);
    expect(log).toMatch(/Termination:\s+Restore OK/);
    expect(readFileSync(restoredPath(where, madeByBefore), 'utf8')).toBe(`made-by-job-${backupId}\n`);
    expect(readFileSync(restoreAfterFile, 'utf8')).toBe(`${restoreId} Restore OK\n`);
  });

  it('fails the job when a RunScript Before script fails (AbortOnError by default), says why, and runs the On Failure script', () => {
    const report = bacula.runJobAnyEnd('ScriptedFailure');
    const jobId = jobIdOf(report);
    expect(report).toMatch(/Termination:\s+\*\*\* Backup Error \*\*\*/);
    expect(report).toMatch(fdMessage(jobId, 'ClientBeforeJob: cannot prepare the database'));
    expect(report).toMatch(fdMessage(jobId, 'Error: Runscript: ClientBeforeJob returned non-zero status=3. ERR=Child exited with code 3'));
    expect(report).toMatch(/Bad response to RunBeforeNow command: wanted 2000 OK RunBeforeNow\s+, got 2905 Bad RunBeforeNow command\./);
    expect(report).toMatch(/Client "agentfd-fd" RunScript failed\./);
    expect(report).toMatch(/FD termination status:\s+Error/);
    // Only the On Failure after-script ran, and it saw the job in error.
    expect(report).toMatch(fdMessage(jobId, `ClientAfterJob: cleaning up after ${jobId}: Error`));
    expect(readFileSync(onFailureFile, 'utf8')).toBe(`${jobId} ScriptedFailure Error\n`);
    expect(existsSync(path.join(lab, 'after-on-success.txt'))).toBe(false);
  });

  it('fails the job when a ClientRunBeforeJob fails', () => {
    const report = bacula.runJobAnyEnd('OldStyleFailure');
    const jobId = jobIdOf(report);
    expect(report).toMatch(/Termination:\s+\*\*\* Backup Error \*\*\*/);
    expect(report).toMatch(fdMessage(jobId, 'Error: Runscript: ClientRunBeforeJob returned non-zero status=1. ERR=Child exited with code 1'));
    expect(report).toMatch(/Bad response to ClientRunBeforeJob command: wanted 2000 OK RunBefore\s+, got 2905 Bad RunBeforeJob command\./);
  });

  it('only warns about a failing script with FailJobOnError = no', () => {
    const report = bacula.runJobAnyEnd('ScriptWarning');
    const jobId = jobIdOf(report);
    expect(report).toMatch(fdMessage(jobId, 'Error: Runscript: ClientBeforeJob returned non-zero status=208. ERR=No such file or directory'));
    expect(report).toMatch(/Termination:\s+Backup OK -- with warnings/);
  });

  it('goes on serving ordinary jobs', () => {
    expect(bacula.runJob('LabBackup').report).toMatch(/Backup OK/);
  });
});
