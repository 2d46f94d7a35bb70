/**
 * Client run scripts as bacula-fd 9.6 runs them (src/bacula-fd/director/run-scripts.ts): the four
 * commands, bpipe's word splitting, the FD's %-codes, which scripts each phase runs, AbortOnError,
 * output forwarded as job messages, and a cancel that kills a running script. Every script here is
 * a real child process. The last test drives `agentfd serve` over a socket the way a Director does.
 * With a real Director and Storage Daemon: test/bacula-lab/run-scripts.test.ts.
 */
import { readFileSync, existsSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BNET, Bsock, bashSpaces } from '../../src/bacula-fd/wire/bsock.js';
import { cramAccepts, cramResponse, directorKey, makeChallenge } from '../../src/bacula-fd/wire/cram-md5.js';
import type { JobRecord } from '../../src/bacula-fd/director/job-record.js';
import { JobScripts, WHEN, expandCodes, jobCodes, parseScriptCommand, runCommand, shouldRun, splitArgv, type RunScript } from '../../src/bacula-fd/director/run-scripts.js';
import { FileDaemonServer } from '../../src/bacula-fd/director/server.js';
import { tempDir } from '../helpers/native.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('run-scripts');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function makeJob(over: Partial<JobRecord> = {}): JobRecord {
  return { jobId: 7, job: 'Nightly.2026-11-27_10.00.00_05', kind: 'unknown', level: 'F', started: new Date(), ended: null, files: 0, bytes: 0, termCode: null, errors: [], cancelled: false, ...over };
}

/** A job's scripts with a session that records the job messages it would send the Director. */
function harness(job = makeJob()) {
  const messages: { type: number; text: string }[] = [];
  const scripts = new JobScripts(() => ({ clientName: 'client-fd', directorName: 'the-dir', previousJob: '', job, message: (type, text) => void messages.push({ type, text }) }));
  const texts = () => messages.map((m) => m.text);
  return { job, messages, scripts, texts };
}

/** The Director's RunScript command for `command` (spaces bashed, as dird/fd_cmds.c sends it). */
function runCmd(command: string, { onSuccess = 1, onFailure = 0, abort = 1, when = WHEN.before as number }: { onSuccess?: number; onFailure?: number; abort?: number; when?: number } = {}): string {
  return `Run OnSuccess=${onSuccess} OnFailure=${onFailure} AbortOnError=${abort} When=${when} Command=${bashSpaces(command)}\n`;
}

/** A command that appends `word` to the file `log` (to see what ran, and in which order). */
function note(log: string, word: string): string {
  return `/bin/sh -c 'echo ${word} >> ${log}'`;
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

/** Whether a process still runs (a zombie waiting for a reaper does not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('bpipe word splitting (no shell)', () => {
  it('splits at spaces, skipping runs of blanks, with quotes only at the start of a word', () => {
    expect(splitArgv('/bin/echo a  b\t c')).toEqual(['/bin/echo', 'a', 'b\t', 'c']);
    expect(splitArgv(`  /bin/sh -c 'echo "a b"; exit 3'`)).toEqual(['/bin/sh', '-c', 'echo "a b"; exit 3']);
    // The real 9.6.7 FD echoed this as: always two spaces quoted arg single q mid"dle x" end
    expect(splitArgv(`/bin/echo always  two   spaces "quoted arg" 'single q' mid"dle x" end`)).toEqual([
      '/bin/echo', 'always', 'two', 'spaces', 'quoted arg', 'single q', 'mid"dle', 'x"', 'end',
    ]);
    expect(splitArgv('"/opt/my tools/run" ""')).toEqual(['/opt/my tools/run', '']);
    expect(splitArgv(`echo 'unclosed quote runs on`)).toEqual(['echo', 'unclosed quote runs on']);
    expect(splitArgv(`echo "`)).toEqual(['echo']);
    expect(splitArgv(' \t ')).toEqual([]);
    expect(splitArgv(`a | b > c`)).toEqual(['a', '|', 'b', '>', 'c']); // no shell: plain words
    expect(splitArgv(Array.from({ length: 150 }, (_, i) => `w${i}`).join(' '))).toHaveLength(100);
  });

  it('keeps a tab inside a word: only a space ends one', () => {
    expect(splitArgv('a\tb c')).toEqual(['a\tb', 'c']);
  });
});

describe("the FD's %-codes", () => {
  it('expands what bacula-fd knows of its job, leaves unknown codes, and %% is %', () => {
    const host = { clientName: 'client-fd', directorName: 'the-dir', previousJob: 'Nightly.2026-11-26_23.05.00_03', job: makeJob({ files: 12, bytes: 3456 }), message: () => undefined };
    const codes = jobCodes(host, 'C');
    expect(expandCodes('%c %d %D %i %j %n %l %t %e %s %S %v %F %b %R %E [%x] 100%% %', codes)).toBe(
      `client-fd client-fd the-dir 7 Nightly.2026-11-27_10.00.00_05 Nightly Full System or Console Created *none* Nightly.2026-11-26_23.05.00_03  12 3456 3456 0 [%x] 100% %`,
    );
    expect(expandCodes('%P', codes)).toBe(String(process.pid));
  });

  it('names job status, type and level as bacula-fd does', () => {
    const job = makeJob({ kind: 'restore', level: '-' });
    const host = { clientName: 'c', directorName: null, previousJob: '', job, message: () => undefined };
    expect(expandCodes('[%l] %t %e %D', jobCodes(host, 'T'))).toBe('[ ] Restore OK %D');
    job.errors.push('one');
    expect(expandCodes('%e %E', jobCodes(host, 'T'))).toBe('OK -- with warnings 1');
    expect(expandCodes('%e', jobCodes(host, 'E'))).toBe('Error');
    expect(expandCodes('%e', jobCodes(host, 'f'))).toBe('Fatal Error');
    expect(expandCodes('%e', jobCodes(host, 'A'))).toBe('Canceled');
    expect(expandCodes('%e', jobCodes(host, 'B'))).toBe('Unknown term code');
    expect(expandCodes('%l %t', jobCodes({ ...host, job: makeJob({ kind: 'backup', level: 'I' }) }, 'B'))).toBe('Incremental Backup');
    expect(expandCodes('%n', jobCodes({ ...host, job: makeJob({ job: 'My.Job.2026-11-27_10.00.00_05' }) }, 'C'))).toBe('My.Job');
  });
});

describe('the four commands', () => {
  it('parses them as bacula-fd does, unbashing the command and leaving its %-codes', () => {
    expect(parseScriptCommand(runCmd('/bin/echo %i done', { onSuccess: 0, onFailure: 1, abort: 0, when: 3 }))).toEqual({
      kind: 'keep', ok: '2000 OK RunScript\n', script: { command: '/bin/echo %i done', onSuccess: false, onFailure: true, abortOnError: false, when: 3 },
    });
    expect(parseScriptCommand(`RunBeforeJob ${bashSpaces('/usr/bin/prep --now')}\n`)).toMatchObject({
      kind: 'runNow', ok: '2000 OK RunBefore\n', bad: '2905 Bad RunBeforeJob command.\n', script: { command: '/usr/bin/prep --now', abortOnError: true, when: WHEN.before },
    });
    expect(parseScriptCommand(`RunAfterJob ${bashSpaces('/usr/bin/done %e')}\n`)).toMatchObject({
      kind: 'keep', ok: '2000 OK RunAfter\n', script: { command: '/usr/bin/done %e', onSuccess: true, onFailure: false, abortOnError: true, when: WHEN.after },
    });
    expect(parseScriptCommand('RunBeforeNow\n')).toEqual({ kind: 'beforeNow', ok: '2000 OK RunBeforeNow\n', bad: '2905 Bad RunBeforeNow command.\n' });
  });

  it('refuses malformed ones with 2905, and is not concerned by other commands', () => {
    expect(parseScriptCommand('Run Command=/bin/true\n')).toMatchObject({ kind: 'bad', bad: '2905 Bad RunScript command.\n', fatal: 'Bad RunScript command: Run Command=/bin/true' });
    expect(parseScriptCommand('Runaway\n')).toMatchObject({ kind: 'bad', bad: '2905 Bad RunScript command.\n' });
    expect(parseScriptCommand('RunAfterJob \n')).toMatchObject({ kind: 'bad', bad: '2905 Bad RunAfterJob command.\n' });
    expect(parseScriptCommand('RunBeforeJob\n')).toMatchObject({ kind: 'bad', bad: '2905 Bad RunBeforeJob command.\n' });
    expect(parseScriptCommand('status\n')).toBeNull();
    expect(parseScriptCommand('restore files=1 replace=a prelinks=0 where=/x\n')).toBeNull();
  });

  it('cuts the command at a tab, as sscanf("%s") does', () => {
    expect(parseScriptCommand(runCmd('/bin/echo a\tb'))).toMatchObject({ script: { command: '/bin/echo a' } });
  });
});

describe('which scripts a phase runs (run_scripts)', () => {
  const script = (over: Partial<RunScript>): RunScript => ({ command: 'x', onSuccess: true, onFailure: false, abortOnError: true, when: WHEN.before, ...over });
  it('runs Before scripts while the job is fine, After ones by its end, and On Failure ones on failure', () => {
    expect(shouldRun(script({}), 'before', 'C')).toBe(true);
    expect(shouldRun(script({}), 'before', 'E')).toBe(false);
    expect(shouldRun(script({ onSuccess: false, onFailure: true }), 'before', 'A')).toBe(true);
    expect(shouldRun(script({ when: WHEN.after }), 'before', 'C')).toBe(false);
    expect(shouldRun(script({ when: WHEN.after }), 'after', 'T')).toBe(true);
    expect(shouldRun(script({ when: WHEN.after }), 'after', 'W')).toBe(true);
    for (const failed of ['E', 'f', 'A']) {
      expect(shouldRun(script({ when: WHEN.after }), 'after', failed)).toBe(false);
      expect(shouldRun(script({ when: WHEN.after, onFailure: true }), 'after', failed)).toBe(true);
    }
    expect(shouldRun(script({ when: WHEN.before | WHEN.after }), 'after', 'T')).toBe(true); // Always
    expect(shouldRun(script({ when: WHEN.afterVss }), 'afterVss', 'B')).toBe(true);
    expect(shouldRun(script({ when: WHEN.afterVss }), 'before', 'C')).toBe(false);
  });
});

describe('running a command', () => {
  it('gives stdout and stderr lines, and the exit code', async () => {
    const out: string[] = [];
    const result = await runCommand(`/bin/sh -c 'echo one; echo two >&2; printf "no newline"; exit 3'`, (l) => void out.push(l));
    expect(result).toEqual({ status: 3, text: 'Child exited with code 3', killed: false });
    expect(out.sort()).toEqual(['no newline', 'one', 'two']);
  });

  it('reports a signal, a missing program and a file that cannot run as bacula-fd does', async () => {
    expect(await runCommand(`/bin/sh -c 'kill -TERM $$'`, () => undefined)).toMatchObject({ status: 15, text: 'Child died from signal 15: Termination' });
    expect(await runCommand('/nonexistent/prog arg', () => undefined)).toMatchObject({ status: 208, text: 'No such file or directory' });
    const notExecutable = path.join(dir, 'not-executable');
    writeFileSync(notExecutable, '#!/bin/sh\necho hi\n');
    chmodSync(notExecutable, 0o644);
    expect(await runCommand(notExecutable, () => undefined)).toMatchObject({ status: 200, text: 'Permission denied' });
    expect(await runCommand('   ', () => undefined)).toMatchObject({ status: -1, text: 'No such file or directory' });
    expect((await runCommand('/bin/echo a\0b', () => undefined)).status).toBe(-1);
  });

  it('hands lines over one at a time, in order, all before the result', async () => {
    const out: string[] = [];
    let busy = false;
    const result = await runCommand('seq 1 200', async (l) => {
      expect(busy).toBe(false); // the next line waits for this one
      busy = true;
      await new Promise((resolve) => setTimeout(resolve, 1));
      out.push(l);
      busy = false;
    });
    expect(result.status).toBe(0);
    expect(out).toEqual(Array.from({ length: 200 }, (_, i) => String(i + 1)));
  });

  it('sends a long line in pieces of 499 bytes', async () => {
    const out: string[] = [];
    await runCommand(`/bin/sh -c 'head -c 1200 /dev/zero | tr "\\\\0" x; echo; echo after'`, (l) => void out.push(l));
    expect(out.map((l) => l.length)).toEqual([499, 499, 202, 5]);
  });
});

describe("a job's scripts", () => {
  it('runs Before scripts at RunBeforeNow and After scripts by the TermCode, with their output as job messages', async () => {
    const log = path.join(dir, 'phases.log');
    const { scripts, messages, texts } = harness();
    expect(await scripts.command(runCmd(`/bin/sh -c 'echo to-stdout; echo to-stderr >&2; echo before >> ${log}'`))).toEqual({ reply: '2000 OK RunScript\n', goOn: true });
    await scripts.command(runCmd(note(log, 'after-ok'), { when: WHEN.after }));
    await scripts.command(runCmd(note(log, 'after-failed'), { when: WHEN.after, onSuccess: 0, onFailure: 1 }));
    await scripts.command(runCmd(note(log, 'always-%e'), { when: WHEN.before | WHEN.after, onFailure: 1 }));
    expect(lines(log)).toEqual([]); // kept, not run
    expect(await scripts.command('RunBeforeNow\n')).toEqual({ reply: '2000 OK RunBeforeNow\n', goOn: true });
    expect(lines(log)).toEqual(['before', 'always-Created']);
    expect(messages[0]).toEqual({ type: 6, text: `shell command: run ClientBeforeJob "/bin/sh -c 'echo to-stdout; echo to-stderr >&2; echo before >> ${log}'"` });
    expect(texts()).toEqual(expect.arrayContaining(['ClientBeforeJob: to-stdout', 'ClientBeforeJob: to-stderr']));
    expect(messages.every((m) => m.type === 6)).toBe(true);
    expect(await scripts.after(84)).toBe(84);
    expect(lines(log)).toEqual(['before', 'always-Created', 'after-ok', 'always-OK']);
    expect(texts()).toContain(`shell command: run ClientAfterJob "/bin/sh -c 'echo after-ok >> ${log}'"`);
  });

  it('runs On Failure After scripts when the job failed or was cancelled, and not the others', async () => {
    const log = path.join(dir, 'failure.log');
    const { scripts } = harness();
    await scripts.command(runCmd(note(log, 'after-ok'), { when: WHEN.after }));
    await scripts.command(runCmd(note(log, 'after-failed-%e'), { when: WHEN.after, onSuccess: 0, onFailure: 1 }));
    expect(await scripts.after(69)).toBe(69);
    expect(await scripts.after(65)).toBe(65);
    expect(lines(log)).toEqual(['after-failed-Error', 'after-failed-Canceled']);
  });

  it('fails the job when a Before script with AbortOnError fails: 2905, no further Before script, On Failure ones after', async () => {
    const log = path.join(dir, 'abort.log');
    const { scripts, messages, job } = harness();
    await scripts.command(runCmd(`/bin/sh -c 'echo failing; exit 4'`));
    await scripts.command(runCmd(note(log, 'second-before')));
    await scripts.command(runCmd(note(log, 'after-failed-%e'), { when: WHEN.after, onSuccess: 0, onFailure: 1 }));
    await scripts.command(runCmd(note(log, 'after-ok'), { when: WHEN.after }));
    expect(await scripts.command('RunBeforeNow\n')).toEqual({ reply: '2905 Bad RunBeforeNow command.\n', goOn: false });
    const error = 'Runscript: ClientBeforeJob returned non-zero status=4. ERR=Child exited with code 4';
    expect(messages).toContainEqual({ type: 6, text: 'ClientBeforeJob: failing' });
    expect(messages).toContainEqual({ type: 4, text: error });
    expect(job.errors).toEqual([error]);
    expect(scripts.warnings).toBe(0);
    expect(lines(log)).toEqual([]);
    expect(await scripts.after(69)).toBe(69);
    expect(lines(log)).toEqual(['after-failed-Error']);
  });

  it('only warns when FailJobOnError is off', async () => {
    const { scripts, job, messages } = harness();
    await scripts.command(runCmd('/nonexistent/prog', { abort: 0 }));
    expect(await scripts.command('RunBeforeNow\n')).toEqual({ reply: '2000 OK RunBeforeNow\n', goOn: true });
    expect(messages).toContainEqual({ type: 4, text: 'Runscript: ClientBeforeJob returned non-zero status=208. ERR=No such file or directory' });
    expect(job.errors).toHaveLength(1);
    expect(scripts.warnings).toBe(1);
    await scripts.command(runCmd('/bin/false', { abort: 0, when: WHEN.after }));
    expect(await scripts.after(84)).toBe(84); // OK, with the errors as warnings
    expect(scripts.warnings).toBe(2);
  });

  it('turns an OK job into an error when an After script with AbortOnError fails (ClientRunAfterJob has it)', async () => {
    const { scripts, job } = harness();
    expect(await scripts.command(`RunAfterJob ${bashSpaces('/bin/sh -c "exit 1"')}\n`)).toEqual({ reply: '2000 OK RunAfter\n', goOn: true });
    expect(await scripts.after(84)).toBe(69);
    expect(job.errors).toEqual(['Runscript: ClientAfterJob returned non-zero status=1. ERR=Child exited with code 1']);
    expect(await harness().scripts.after(102)).toBe(102); // nothing kept: the TermCode as it was
  });

  it('runs RunBeforeJob (ClientRunBeforeJob) at once, and ends the job if it fails', async () => {
    const log = path.join(dir, 'old.log');
    const { scripts, texts } = harness();
    expect(await scripts.command(`RunBeforeJob ${bashSpaces(note(log, 'job-%i'))}\n`)).toEqual({ reply: '2000 OK RunBefore\n', goOn: true });
    expect(lines(log)).toEqual(['job-7']);
    expect(texts()[0]).toBe(`shell command: run ClientRunBeforeJob "/bin/sh -c 'echo job-7 >> ${log}'"`);
    expect(await scripts.command(`RunBeforeJob ${bashSpaces('/bin/false')}\n`)).toEqual({ reply: '2905 Bad RunBeforeJob command.\n', goOn: false });
    expect(texts()).toContain('Runscript: ClientRunBeforeJob returned non-zero status=1. ERR=Child exited with code 1');
  });

  it('runs AfterVSS scripts in their own phase, and a failing one fails the job', async () => {
    const log = path.join(dir, 'vss.log');
    const { scripts } = harness(makeJob({ kind: 'backup' }));
    await scripts.command(runCmd(note(log, 'vss-%t'), { when: WHEN.afterVss }));
    expect(await scripts.command('RunBeforeNow\n')).toEqual({ reply: '2000 OK RunBeforeNow\n', goOn: true });
    expect(lines(log)).toEqual([]);
    expect(await scripts.afterVss()).toBe(true);
    expect(lines(log)).toEqual(['vss-Backup']);
    await scripts.command(runCmd('/bin/false', { when: WHEN.afterVss }));
    expect(await scripts.afterVss()).toBe(false);
  });

  it('answers a malformed command with 2905 and a fatal job message', async () => {
    const { scripts, messages, job } = harness();
    expect(await scripts.command('Run OnSuccess=1\n')).toEqual({ reply: '2905 Bad RunScript command.\n', goOn: false });
    expect(messages).toEqual([{ type: 3, text: 'Bad RunScript command: Run OnSuccess=1' }]);
    expect(job.errors).toHaveLength(1);
    expect(await scripts.command('estimate listing=0\n')).toBeNull();
  });

  it('kills a running Before script, children included, when the job is cancelled', async () => {
    const pidFile = path.join(dir, 'grandchild.pid');
    const { scripts, job, texts } = harness();
    await scripts.command(runCmd(`/bin/sh -c 'sleep 60 & echo $! > ${pidFile}; wait'`));
    const started = Date.now();
    setTimeout(() => (job.cancelled = true), 500);
    expect(await scripts.command('RunBeforeNow\n')).toEqual({ reply: '2905 Bad RunBeforeNow command.\n', goOn: false });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(texts()).toContain('Runscript: ClientBeforeJob was killed: the job was canceled');
    expect(texts()).toContain('Runscript: ClientBeforeJob returned non-zero status=15. ERR=Child died from signal 15: Termination');
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(alive(grandchild)).toBe(false);
  });

  it('lets an On Failure script of an already cancelled job run', async () => {
    const log = path.join(dir, 'cancelled.log');
    const { scripts } = harness(makeJob({ cancelled: true }));
    await scripts.command(runCmd(`/bin/sh -c 'sleep 0.3; echo ran-%e >> ${log}'`, { when: WHEN.after, onSuccess: 0, onFailure: 1 }));
    expect(await scripts.after(65)).toBe(65);
    expect(lines(log)).toEqual(['ran-Canceled']);
  });
});

describe('agentfd serve, as a Director sends run scripts', () => {
  let server: FileDaemonServer;
  let port: number;
  beforeAll(async () => {
    server = new FileDaemonServer({ name: 'agentfd-fd', address: '127.0.0.1', port: 0, maxJobs: 5, directors: [{ name: 'test-dir', password: 'pw' }], log: () => undefined });
    port = await server.listen();
  });
  afterAll(() => server.close());

  it('fails the job at RunBeforeNow, runs the On Failure script, and ends the job with TermCode E', async () => {
    const log = path.join(dir, 'serve.log');
    const socket = await new Promise<net.Socket>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    });
    const bs = new Bsock(socket, 'agentfd serve');
    await bs.send('Hello Director test-dir calling 103\n');
    const challenge = /^auth cram-md5 (<[^>]+>) ssl=0/.exec(await bs.receiveText())![1]!;
    await bs.send(`${cramResponse(challenge, directorKey('pw'))}\0`);
    expect(await bs.receiveText()).toBe('1000 OK auth\n');
    const ours = makeChallenge('test-dir');
    await bs.send(`auth cram-md5 ${ours} ssl=0\n`);
    expect(cramAccepts(ours, directorKey('pw'), await bs.receiveText())).toBe(true);
    await bs.send('1000 OK auth\n');
    expect(await bs.receiveText()).toMatch(/^2000 OK Hello/);

    await bs.send('JobId=42 Job=Scripted.2026-11-27_10.00.00_07 SDid=1 SDtime=1 Authorization=dummy\n');
    expect(await bs.receiveText()).toMatch(/^2000 OK Job /);
    await bs.send(runCmd(`/bin/sh -c 'echo cannot prepare; exit 2'`));
    expect(await bs.receiveText()).toBe('2000 OK RunScript\n');
    await bs.send(runCmd(note(log, '%D:%c:%i:%n:%e'), { when: WHEN.after, onSuccess: 0, onFailure: 1 }));
    expect(await bs.receiveText()).toBe('2000 OK RunScript\n');
    await bs.send('RunBeforeNow\n');
    const received: string[] = [];
    for (;;) {
      const m = await bs.receive();
      if (m.kind === 'signal') {
        expect(m.signal).toBe(BNET.TERMINATE);
        break;
      }
      received.push(m.data.toString());
    }
    bs.destroy();
    const jmsg = (type: number, text: string) => expect.stringMatching(new RegExp(`^Jmsg JobId=42 type=${type} level=\\d+ agentfd-fd JobId 42: ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`));
    expect(received).toEqual([
      jmsg(6, `shell command: run ClientBeforeJob "/bin/sh -c 'echo cannot prepare; exit 2'"`),
      jmsg(6, 'ClientBeforeJob: cannot prepare'),
      jmsg(4, 'Error: Runscript: ClientBeforeJob returned non-zero status=2. ERR=Child exited with code 2'),
      '2905 Bad RunBeforeNow command.\n',
      jmsg(6, `shell command: run ClientAfterJob "/bin/sh -c 'echo test-dir:agentfd-fd:42:Scripted:Error >> ${log}'"`),
      expect.stringMatching(/^2800 End Job TermCode=69 JobFiles=0 .* Errors=1 /),
    ]);
    expect(lines(log)).toEqual(['test-dir:agentfd-fd:42:Scripted:Error']);
  });
});
