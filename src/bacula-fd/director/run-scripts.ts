/**
 * Client run scripts (Client Run Before/After Job, RunScript { RunsOnClient = yes }), run as Bacula
 * 9.6's bacula-fd runs them; checked against the real 9.6.7 FD in the lab.
 *
 * - The Director sends each script before `backup`/`restore` (dird/fd_cmds.c): `Run OnSuccess=
 *   OnFailure= AbortOnError= When= Command=` is kept for later, `RunBeforeNow` then runs the kept
 *   Before scripts; the older `RunBeforeJob` (ClientRunBeforeJob) runs at once and `RunAfterJob`
 *   (ClientRunAfterJob) is kept. The command has its spaces bashed to 0x01 and its %-codes
 *   unexpanded: the FD expands them (lib/util.c edit_job_codes), with its own view of the job.
 * - A command is split into words as lib/bpipe.c does (no shell) and run with stdout and stderr
 *   on one pipe; each output line becomes a job message `<label>: <line>`.
 * - Which scripts a phase runs depends on the job status (lib/runscript.c run_scripts): Before
 *   ones while the job is fine, AfterVSS ones once the SD took the data session, After ones
 *   before the FD's `2800 End Job`, by the job's TermCode. A failure with AbortOnError puts the
 *   job in error, which fails the job in the Director's report.
 *
 * Unlike bacula-fd, whose cancel leaves a running script alone (close_bpipe waits for it), a
 * cancel kills a running script and its whole process group: the job then ends at once.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { messageOf } from '../../errors.js';
import { unbashSpaces } from '../wire/bsock.js';
import type { JobRecord } from './job-record.js';

/** RUNSCRIPT->when bits (lib/runscript.h): RunsWhen = After 1, Before 2, Always 3, AfterVSS 4. */
export const WHEN = { after: 1, before: 2, afterVss: 4 } as const;

export interface RunScript {
  /** As the Director sent it, unbashed; %-codes are expanded only when it runs. */
  command: string;
  onSuccess: boolean;
  onFailure: boolean;
  /** FailJobOnError: a failure puts the job in error (always so for ClientRunBeforeJob). */
  abortOnError: boolean;
  when: number;
}

export type Phase = 'before' | 'afterVss' | 'after';

/** The label bacula-fd gives each phase; it starts every job message of the phase's scripts. */
export const PHASE_LABEL: Record<Phase, string> = { before: 'ClientBeforeJob', afterVss: 'ClientAfterVSS', after: 'ClientAfterJob' };

// ----------------------------------------------------------------------------- the commands

/** One of the four run-script commands, parsed; the replies are bacula-fd's (filed/job.c). */
export type ScriptCommand =
  | { kind: 'keep'; script: RunScript; ok: string }
  | { kind: 'runNow'; script: RunScript; ok: string; bad: string }
  | { kind: 'beforeNow'; ok: string; bad: string }
  | { kind: 'bad'; bad: string; fatal: string };

// sscanf's %s stops at C's isspace characters, so a command reaches at most the first of them
// (the Director bashes only spaces: a tab cuts the command there in bacula-fd too).
const WORD = '([^ \\t\\n\\v\\f\\r]+)';
const NUMBER = '\\s*([-+]?\\d+)';
// A space in a scanf format matches any run of white space, none included.
const RUN = new RegExp(`^Run\\s*OnSuccess=${NUMBER}\\s*OnFailure=${NUMBER}\\s*AbortOnError=${NUMBER}\\s*When=${NUMBER}\\s*Command=\\s*${WORD}`);
const RUN_BEFORE = new RegExp(`^RunBeforeJob\\s*${WORD}`);
const RUN_AFTER = new RegExp(`^RunAfterJob\\s*${WORD}`);

/**
 * The run-script command `command` is, or null if it is none. Prefixes are tried in bacula-fd's
 * order, so anything else starting with "Run" is a bad RunScript command, as there.
 */
export function parseScriptCommand(command: string): ScriptCommand | null {
  let m: RegExpExecArray | null;
  const shown = command.replace(/\n$/, '');
  if (command.startsWith('RunBeforeNow')) return { kind: 'beforeNow', ok: '2000 OK RunBeforeNow\n', bad: '2905 Bad RunBeforeNow command.\n' };
  if (command.startsWith('RunBeforeJob')) {
    if (!(m = RUN_BEFORE.exec(command))) return { kind: 'bad', bad: '2905 Bad RunBeforeJob command.\n', fatal: `Bad RunBeforeJob command: ${shown}` };
    // The old protocol carries no flags: bacula-fd's defaults, AbortOnError included.
    const script = { command: unbashSpaces(m[1]!), onSuccess: true, onFailure: false, abortOnError: true, when: WHEN.before };
    return { kind: 'runNow', script, ok: '2000 OK RunBefore\n', bad: '2905 Bad RunBeforeJob command.\n' };
  }
  if (command.startsWith('RunAfterJob')) {
    if (!(m = RUN_AFTER.exec(command))) return { kind: 'bad', bad: '2905 Bad RunAfterJob command.\n', fatal: `Bad RunAfter command: ${shown}` };
    // AbortOnError stays at its default (yes): a failing ClientRunAfterJob fails the job, as with bacula-fd.
    const script = { command: unbashSpaces(m[1]!), onSuccess: true, onFailure: false, abortOnError: true, when: WHEN.after };
    return { kind: 'keep', script, ok: '2000 OK RunAfter\n' };
  }
  if (command.startsWith('Run')) {
    if (!(m = RUN.exec(command))) return { kind: 'bad', bad: '2905 Bad RunScript command.\n', fatal: `Bad RunScript command: ${shown}` };
    const script = { command: unbashSpaces(m[5]!), onSuccess: Number(m[1]) !== 0, onFailure: Number(m[2]) !== 0, abortOnError: Number(m[3]) !== 0, when: Number(m[4]) };
    return { kind: 'keep', script, ok: '2000 OK RunScript\n' };
  }
  return null;
}

// ----------------------------------------------------------------------------- words and codes

/** lib/bpipe.c MAX_ARGV: words past it are dropped. */
const MAX_ARGV = 100;

/**
 * A command line split into words as lib/bpipe.c build_argc_argv does, for an exec without a
 * shell: words end at a space (a tab is skipped only between words); a word that starts with " or
 * ' runs to the same quote, which is dropped; quotes elsewhere are plain characters; there are no
 * escapes. So `sh -c 'echo "a b"'` gives sh, -c, echo "a b"; pipes and redirections need a shell.
 */
export function splitArgv(line: string): string[] {
  const argv: string[] = [];
  let at = 0;
  let quote = '';
  // Blanks between words, then an opening quote if the next word has one.
  const nextWord = () => {
    while (line[at] === ' ' || line[at] === '\t') at++;
    quote = line[at] === '"' || line[at] === "'" ? line[at++]! : '';
  };
  nextWord();
  while (at < line.length && argv.length < MAX_ARGV) {
    let end = line.indexOf(quote || ' ', at);
    if (end < 0) end = line.length; // an unclosed quote runs to the end
    argv.push(line.slice(at, end));
    at = end + 1;
    nextWord();
  }
  return argv;
}

/**
 * `template` with its %-codes replaced from `codes` (one letter each), as edit_job_codes does: %%
 * is %, a code with no value is left as it is, and a lone % at the end stays.
 */
export function expandCodes(template: string, codes: Readonly<Record<string, string>>): string {
  return template.replace(/%(.?)/gs, (whole, code: string) => (code === '%' ? '%' : Object.hasOwn(codes, code) ? codes[code]! : whole));
}

/** JobStatus characters (jcr.h) that job_canceled() counts: canceled, error, fatal error. */
const FAILED = new Set(['A', 'E', 'f']);

/** lib/util.c job_status_to_str: %e. */
function statusText(status: string, errors: number): string {
  switch (status) {
    case 'T': return errors > 0 ? 'OK -- with warnings' : 'OK';
    case 'W': return 'OK -- with warnings';
    case 'E': case 'e': return 'Error';
    case 'f': return 'Fatal Error';
    case 'A': return 'Canceled';
    case 'D': return 'Differences';
    case 'C': return 'Created';
    case 'I': return 'Incomplete';
    default: return 'Unknown term code'; // also Running and Blocked, as in bacula-fd
  }
}

/** job_level_to_str: %l. A job without a level (a restore) is L_NONE, which prints as a space. */
function levelText(level: string): string {
  const known: Record<string, string> = { F: 'Full', I: 'Incremental', D: 'Differential', base: 'Base', B: 'Base', since: 'Since', '-': ' ' };
  return known[level] ?? 'Unknown Job Level';
}

/** job_type_to_str: %t. Before `backup`/`restore` arrives the FD's job is still JT_SYSTEM. */
function typeText(kind: JobRecord['kind']): string {
  return kind === 'backup' ? 'Backup' : kind === 'restore' ? 'Restore' : 'System or Console';
}

/** The Job name without its ".date_time_seq" tail (%n: three dots cut from the right). */
function plainJobName(job: string): string {
  let name = job;
  for (let i = 0; i < 3; i++) {
    const dot = name.lastIndexOf('.');
    if (dot >= 0) name = name.slice(0, dot);
  }
  return name;
}

/** The session a job's scripts belong to: names, the job, and the way to the Director. */
export interface ScriptHost {
  /** This FD's name: %c, and %d (bacula-fd's my_name is its own name). */
  clientName: string;
  /** The Director's name (%D), if known; unknown leaves %D as it is. */
  directorName: string | null;
  /** The job an incremental or differential builds on (%S; the level command's prev_job=), or ''. */
  previousJob: string;
  /** The job (null before `JobId=`: bacula-fd's placeholder job then). */
  job: JobRecord | null;
  /** A job message to the Director: 6 info, 4 error, 3 fatal. */
  message(type: number, text: string): Promise<void> | void;
}

/** The codes bacula-fd knows when its job is in `status` (9.6.7: %s is never set in the FD). */
export function jobCodes(host: ScriptHost, status: string): Record<string, string> {
  const job = host.job;
  const errors = job?.errors.length ?? 0;
  const name = job?.job ?? '*Director*';
  const codes: Record<string, string> = {
    c: host.clientName, d: host.clientName, e: statusText(status, errors), E: String(errors),
    i: String(job?.jobId ?? 0), j: name, n: plainJobName(name), l: levelText(job?.level ?? '-'), t: typeText(job?.kind ?? 'unknown'),
    F: String(job?.files ?? 0), b: String(job?.bytes ?? 0), R: String(job?.bytes ?? 0),
    s: '*none*', S: host.previousJob, v: '', r: '', P: String(process.pid),
  };
  if (host.directorName !== null) codes.D = host.directorName;
  return codes;
}

/** Whether lib/runscript.c run_scripts runs `script` in `phase` while the job is in `status`. */
export function shouldRun(script: RunScript, phase: Phase, status: string): boolean {
  const failed = FAILED.has(status);
  if (phase === 'before') return (script.when & WHEN.before) !== 0 && ((script.onSuccess && (status === 'R' || status === 'C')) || (script.onFailure && (failed || status === 'D')));
  if (phase === 'afterVss') return (script.when & WHEN.afterVss) !== 0 && ((script.onSuccess && status === 'B') || (script.onFailure && failed));
  return (script.when & WHEN.after) !== 0 && ((script.onSuccess && (status === 'T' || status === 'W')) || (script.onFailure && (failed || status === 'D')));
}

// ----------------------------------------------------------------------------- running one

/** errno names in bpipe.c's execvp_errors order: a failed exec exits 200 + the index. */
const EXEC_ERRORS = ['EACCES', 'ENOEXEC', 'EFAULT', 'EINTR', 'E2BIG', 'ENAMETOOLONG', 'ENOMEM', 'ETXTBSY', 'ENOENT'];
/** glibc's strerror texts of those, which bacula-fd prints. */
const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'Permission denied', ENOEXEC: 'Exec format error', EFAULT: 'Bad address', EINTR: 'Interrupted system call', E2BIG: 'Argument list too long',
  ENAMETOOLONG: 'File name too long', ENOMEM: 'Cannot allocate memory', ETXTBSY: 'Text file busy', ENOENT: 'No such file or directory',
};
/** lib/signal.c's names, for "Child died from signal N: name". */
const SIGNAL_TEXT: Record<number, string> = {
  1: 'Hangup', 2: 'Interrupt', 3: 'Quit', 4: 'Illegal instruction', 5: 'Trace/Breakpoint trap', 6: 'IOT trap', 7: 'BUS error', 8: 'Floating-point exception',
  9: 'Kill, unblockable', 10: 'User-defined signal 1', 11: 'Segmentation violation', 12: 'User-defined signal 2', 13: 'Broken pipe', 14: 'Alarm clock',
  15: 'Termination', 16: 'Stack fault', 17: 'Child status has changed', 18: 'Continue', 19: 'Stop, unblockable', 20: 'Keyboard stop',
  21: 'Background read from tty', 22: 'Background write to tty', 23: 'Urgent condition on socket', 24: 'CPU limit exceeded', 25: 'File size limit exceeded',
  26: 'Virtual alarm clock', 27: 'Profiling alarm clock', 28: 'Window size change', 29: 'I/O now possible', 30: 'Power failure restart',
};

/**
 * How a script ended: status 0 is success; otherwise bacula-fd's status number (the exit code,
 * the signal number, or 200 + the exec error) and its ERR= text; -1 if it could not be started.
 */
export interface ScriptResult {
  status: number;
  text: string;
  /** The job was cancelled while the script ran, and the script was killed. */
  killed: boolean;
}

/**
 * lib/berrno.c's text for an exit code. It reads codes from 200 on as bpipe's exec failures, so a
 * script that itself exits 208 is reported as "No such file or directory", exactly as there.
 */
function exitText(code: number): string {
  if (code >= 200) {
    const errno = EXEC_ERRORS[code - 200];
    return errno ? ERRNO_TEXT[errno]! : 'Unknown error during program execvp';
  }
  return `Child exited with code ${code}`;
}

/** Output lines longer than this reach the Director in pieces, as bacula-fd's fgets into MAXSTRING (500) does. */
const LINE_MAX = 499;
/** After SIGTERM on a cancel, a script has this long before its process group gets SIGKILL. */
const KILL_GRACE_MS = 3000;
/** How often a running script looks whether its job was cancelled (the server only sets a flag). */
const CANCEL_POLL_MS = 100;

/** Splits a byte stream into lines without their \n, cutting lines at LINE_MAX bytes. */
class LineSplitter {
  private pending = Buffer.alloc(0);
  constructor(private readonly line: (text: string) => void) {}

  push(chunk: Buffer): void {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const newline = data.indexOf(0x0a);
      if (newline >= 0 && newline <= LINE_MAX) {
        this.line(data.subarray(0, newline).toString('utf8'));
        data = data.subarray(newline + 1);
      } else if (data.length >= LINE_MAX) {
        // Cut before a UTF-8 continuation byte so no character is split between two messages.
        let cut = LINE_MAX;
        while (cut > 1 && (data[cut]! & 0xc0) === 0x80) cut--;
        this.line(data.subarray(0, cut).toString('utf8'));
        data = data.subarray(cut);
      } else break;
    }
    this.pending = Buffer.from(data);
  }

  /** A last line without \n is still a line (fgets returns it at EOF). */
  end(): void {
    if (this.pending.length) this.line(this.pending.toString('utf8'));
    this.pending = Buffer.alloc(0);
  }
}

/**
 * Runs one command line (already expanded) without a shell; every output line, stdout and stderr
 * alike (bpipe gives the child one pipe for both), goes to `onLine`, one after the other: while
 * a line's promise is pending the pipes are not read, so a chatty script waits for a slow
 * Director as it does with bacula-fd (which sends each line before reading the next), instead of
 * filling memory. If `isCancelled` turns true while it runs, its process group is killed: the
 * script may have started children of its own, which would otherwise keep the pipes, and the
 * job, waiting.
 */
export function runCommand(line: string, onLine: (text: string) => void | Promise<void>, isCancelled: () => boolean = () => false): Promise<ScriptResult> {
  const argv = splitArgv(line);
  // open_bpipe refuses an empty command with ENOENT before forking.
  if (argv.length === 0) return Promise.resolve({ status: -1, text: ERRNO_TEXT.ENOENT!, killed: false });
  return new Promise((resolve) => {
    let killed = false;
    let settled = false;
    let poll: NodeJS.Timeout | undefined;
    let hardKill: NodeJS.Timeout | undefined;
    // Lines reach onLine in order; a failing onLine must not stop the script or the others.
    let delivered: Promise<void> = Promise.resolve();
    const deliver = (text: string) => {
      delivered = delivered.then(() => onLine(text)).catch(() => undefined);
    };
    const out = new LineSplitter(deliver);
    const err = new LineSplitter(deliver);
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      // detached: the script leads its own process group, so a cancel reaches its children too.
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (error) {
      // Refused before any fork (a NUL byte in a word, say): bpipe's "could not execute".
      resolve({ status: -1, text: messageOf(error), killed: false });
      return;
    }
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        child.kill(signal); // the group is gone already; the child itself may not be
      }
    };
    const settle = (result: ScriptResult) => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      clearTimeout(hardKill);
      void delivered.then(() => resolve(result)); // the last lines go out before the result
    };
    const read = (stream: Readable, splitter: LineSplitter) =>
      stream.on('data', (chunk: Buffer) => {
        splitter.push(chunk);
        stream.pause();
        void delivered.then(() => stream.resume());
      });
    read(child.stdout, out);
    read(child.stderr, err);
    child.on('error', (error: NodeJS.ErrnoException) => {
      // The exec failed: bacula-fd's child exits 200 + the errno's place in its list (255 if absent).
      const index = EXEC_ERRORS.indexOf(error.code ?? '');
      settle(index >= 0 ? { status: 200 + index, text: ERRNO_TEXT[error.code!]!, killed } : { status: 255, text: messageOf(error), killed });
    });
    // 'close' comes once the process has exited and both pipes are at EOF, like fgets returning NULL.
    child.on('close', (code, signal) => {
      out.end();
      err.end();
      if (signal) {
        const number = os.constants.signals[signal] ?? 0;
        settle({ status: number, text: `Child died from signal ${number}: ${SIGNAL_TEXT[number] ?? 'UNKNOWN SIGNAL'}`, killed });
      } else {
        settle({ status: code ?? 0, text: code ? exitText(code) : 'Child exited normally.', killed });
      }
    });
    // Only a cancel that comes while the script runs kills it: an On Failure script of a job that
    // was already cancelled must be let run.
    const cancelledAtStart = isCancelled();
    poll = setInterval(() => {
      if (killed || cancelledAtStart || !isCancelled()) return;
      killed = true;
      killGroup('SIGTERM');
      hardKill = setTimeout(() => {
        killGroup('SIGKILL');
        // A grandchild that left the group may still hold the pipes: stop waiting for their EOF.
        child.stdout.destroy();
        child.stderr.destroy();
      }, KILL_GRACE_MS);
    }, CANCEL_POLL_MS);
  });
}

// ----------------------------------------------------------------------------- a job's scripts

/** bacula-fd's job status priorities (jcr.c setJobStatus): an error does not replace a cancel. */
function worsen(status: string): string {
  return FAILED.has(status) ? status : 'E';
}

/**
 * The run scripts of one job (one Director connection), and what running them did to the job.
 * `host` is read each time, so it sees the job as the session has it then.
 */
export class JobScripts {
  private readonly scripts: RunScript[] = [];
  /** An AbortOnError script failed: the job is in error (JS_ErrorTerminated) from then on. */
  private inError = false;
  /**
   * Script errors that did not fail the job (FailJobOnError = no). They count in the job's Errors
   * but leave it OK, which the Director reports "OK -- with warnings".
   */
  warnings = 0;

  constructor(private readonly host: () => ScriptHost) {}

  /**
   * Handles a run-script command: null if `command` is none. Otherwise the reply, and whether the
   * job goes on; when it does not (a bad command, or a before-script that failed the job), the
   * caller ends the job as bacula-fd's command loop does: after-scripts, then `2800 End Job`.
   */
  async command(command: string): Promise<{ reply: string; goOn: boolean } | null> {
    const parsed = parseScriptCommand(command);
    if (!parsed) return null;
    switch (parsed.kind) {
      case 'keep':
        this.scripts.push(parsed.script);
        return { reply: parsed.ok, goOn: true };
      case 'runNow': {
        // RunBeforeJob runs whatever the job's state: the old protocol knew no conditions.
        const ok = await this.runOne(parsed.script, 'ClientRunBeforeJob', this.status('C'));
        return ok ? { reply: parsed.ok, goOn: true } : { reply: parsed.bad, goOn: false };
      }
      case 'beforeNow': {
        const status = await this.runPhase('before', this.status('C'));
        return FAILED.has(status) ? { reply: parsed.bad, goOn: false } : { reply: parsed.ok, goOn: true };
      }
      case 'bad': {
        const host = this.host();
        host.job?.errors.push(parsed.fatal);
        this.inError = true;
        await this.send(host, 3, parsed.fatal);
        return { reply: parsed.bad, goOn: false };
      }
    }
  }

  /**
   * The AfterVSS scripts: bacula-fd 9.6 on Linux runs them too, once the SD accepted the data
   * session and before the first file. False if one failed the job.
   */
  async afterVss(): Promise<boolean> {
    return !FAILED.has(await this.runPhase('afterVss', this.status('B')));
  }

  /** The After scripts, by the job's TermCode; returns the TermCode to send (an error may worsen it). */
  async after(termCode: number): Promise<number> {
    const status = await this.runPhase('after', this.status(String.fromCharCode(termCode)));
    return status.charCodeAt(0);
  }

  /** The job's status as run_scripts would see it, `normal` unless cancelled or in error. */
  private status(normal: string): string {
    if (this.host().job?.cancelled) return 'A';
    return this.inError ? worsen(normal) : normal;
  }

  /** Every script of `phase` that the status allows, in the Director's order; the final status. */
  private async runPhase(phase: Phase, initial: string): Promise<string> {
    let status = initial;
    for (const script of this.scripts) {
      // Each script sees the status the ones before it left, as in bacula-fd.
      if (!shouldRun(script, phase, status)) continue;
      if (!(await this.runOne(script, PHASE_LABEL[phase], status)) && script.abortOnError) status = worsen(status);
    }
    return status;
  }

  /** RUNSCRIPT::run: announce, run, forward the output, report a failure. True if it succeeded. */
  private async runOne(script: RunScript, label: string, status: string): Promise<boolean> {
    const host = this.host();
    const line = expandCodes(script.command, jobCodes(host, status));
    await this.send(host, 6, `shell command: run ${label} "${line}"`);
    const result = await runCommand(line, (text) => this.send(host, 6, `${label}: ${text}`), () => host.job?.cancelled ?? false);
    if (result.status === 0) return true;
    if (result.killed) await this.send(host, 6, `Runscript: ${label} was killed: the job was canceled`);
    const error = result.status < 0 ? `Runscript: ${label} could not execute. ERR=${result.text}` : `Runscript: ${label} returned non-zero status=${result.status}. ERR=${result.text}`;
    // An M_ERROR job message counts in bacula-fd's JobErrors.
    host.job?.errors.push(error);
    await this.send(host, 4, error);
    if (script.abortOnError) this.inError = true;
    else this.warnings++;
    return false;
  }

  /** A job message; a Director that hung up must not stop the scripts. */
  private async send(host: ScriptHost, type: number, text: string): Promise<void> {
    try {
      await host.message(type, text);
    } catch {
      // the job ends without the Director anyway
    }
  }
}
