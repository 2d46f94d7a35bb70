/**
 * One Director connection to `agentfd serve`: the hello, CRAM-MD5 both ways (we challenge first,
 * as bacula-fd does), then the Director's commands in its order (filed/job.c), with the exact
 * reply strings a 9.6 Director compares. A connection runs at most one job; a dropped connection
 * or a cancel ends only that job.
 */
import os from 'node:os';
import path from 'node:path';
import { AgentfdError, messageOf } from '../../errors.js';
import { HOST_VERSION } from '../../version.js';
import { newTotals, sendBackup } from '../transfer/backup.js';
import { estimate } from './estimate.js';
import { startPluginRestore, type PluginAgents } from '../transfer/plugin-agents.js';
import type { RestoreRun as AgentRestoreRun } from '../../agents/agent.js';
import { BNET, Bsock, unbashSpaces } from '../wire/bsock.js';
import { cramAccepts, cramResponse, directorKey, makeChallenge } from '../wire/cram-md5.js';
import { parseFileSet, type FileSet } from '../fileset/fileset.js';
import { parseRegexWhere, parseReplace, receiveRestore, type Bregexp, type ReplaceMode, type RestoreTotals } from '../transfer/restore.js';
import { JobScripts, jobCodes, type ScriptHost } from './run-scripts.js';
import { expandFileLists } from './file-lists.js';
import { AccurateList } from '../transfer/accurate.js';
import { TLS_NEED, negotiateTls, tlsServer, type TlsSettings } from '../wire/tls.js';
import { FD_PROTOCOL_VERSION, StorageDaemon } from '../transfer/storage-daemon.js';
import { newVerifyTotals, runVerify, verifyLevel, type VerifyLevel, type VolumeSession } from '../transfer/verify.js';
import { newJobRecord, type JobRecord } from './job-record.js';
import { DEBUG, parseSetdebug, type DebugLog, type DebugWrite } from '../wire/debug.js';
import { decodeName } from '../../platform/byte-names.js';

export interface DirectorIdentity {
  name: string;
  password: string;
}

export interface DirectorHost {
  clientName: string;
  directors: readonly DirectorIdentity[];
  register(job: JobRecord): void;
  finished(job: JobRecord): void;
  statusLines(): string[];
  cancel(job: string): boolean;
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
  /** Agents for Plugin lines (null: none configured; plugin files then fail, or restore as plain files). */
  plugins: PluginAgents | null;
  /** [serve.tls], towards Directors and Storage Daemons; null: TLS off. */
  tls: TlsSettings | null;
  /** Heartbeat Interval in ms (0: none). */
  heartbeatMs: number;
  /** [serve] gzip_like_bacula_fd: backups compress GZIP as bacula-fd, in turn on one zlib stream. */
  gzipLikeBaculaFd: boolean;
  /** The Director proved who it is: Bacula's limits apply from now on, and no authentication timeout. */
  authenticated(): void;
  /** How long a failed authentication waits before its answer (bacula-fd sleeps 6 s), in ms. */
  authFailureDelayMs: number;
  /** setdebug's levels and trace file, for the whole daemon. */
  debug: DebugLog;
  /** The bandwidth limit a new job starts with (bytes/s, 0: none): [serve] max_bandwidth_per_job, or a client-wide setbandwidth. */
  jobBandwidth(): number;
  /** `setbandwidth`: a running job's limit (false: no such job), or with null the limit of future jobs. */
  setBandwidth(job: string | null, limit: number): boolean;
}

/** Bacula's job status characters (jcr.h), sent as TermCode. */
const TERM = { ok: 84, errors: 69, fatal: 102, cancelled: 65, differences: 68 } as const;
/** Jmsg types (message.h: M_FATAL 3, M_ERROR 4, M_WARNING 5, M_INFO 6) and their prefixes. */
const JMSG_PREFIX: Record<number, string> = { 3: 'Fatal error: ', 4: 'Error: ', 5: 'Warning: ' };
const LEVELS: Record<string, string> = { full: 'F', incremental: 'I', differential: 'D', since: 'I' };

/** A Director command this client knows: its pattern, and what answers it (false: the conversation ends). */
interface Command {
  pattern: RegExp;
  run: (match: RegExpExecArray, command: string) => Promise<boolean>;
}

export class DirectorSession {
  private job: JobRecord | null = null;
  private sdId = '0';
  private sdTime = '0';
  private sessionKey = '';
  private fileset: FileSet = { includes: [], excludes: [] };
  private since: bigint | null = null;
  private sd: StorageDaemon | null = null;
  private where = '';
  /** The restore's regexwhere= (bregexp.ts), instead of a where. */
  private regexWhere: Bregexp[] | undefined;
  private accurate: AccurateList | null = null;
  /** The Director that authenticated, and the job an incremental builds on (prev_job=). */
  private directorName: string | null = null;
  private previousJob = '';
  /** What run scripts and `F |command` entries know of the job (their %-codes, their messages). */
  private scriptHost(): ScriptHost {
    return {
      clientName: this.host.clientName,
      directorName: this.directorName,
      previousJob: this.previousJob,
      job: this.job,
      message: (type, text) => this.jmsg(type, text),
    };
  }

  /** The job's client run scripts. */
  private readonly scripts = new JobScripts(() => this.scriptHost());

  /** Why the Director's connection ended while a job ran, or null: the job then stops, as failed. */
  private directorLost: string | null = null;
  /** Why serve is shutting down (SIGTERM, SIGINT), or null: the job then stops, as failed. */
  private shutdownReason: string | null = null;
  /** When the Director authenticated (status client lists connections without a job). */
  connectedAt: Date | null = null;
  /** serve's debug output, with this conversation's JobId. */
  private readonly debug: DebugWrite = (level, where, text) => this.host.debug.write(level, where, this.job?.jobId ?? 0, text);

  constructor(private readonly bsock: Bsock, private readonly host: DirectorHost) {
    // A Director that hangs up mid-job ends that job (its files stop being read); other jobs go on.
    bsock.onPeerGone((error) => {
      if (!this.job || this.job.ended) return;
      this.directorLost = error.message;
      this.job.errors.push(`the job stopped: ${error.message}`);
    });
  }

  /** The job should stop: cancelled from the Director, or the Director is gone. */
  private readonly stopping = (): boolean => (this.job?.cancelled ?? false) || this.directorLost !== null || this.shutdownReason !== null;

  /** This conversation runs a job that has not ended. */
  get runningJob(): boolean {
    return this.job !== null && this.job.ended === null;
  }

  /** The Director connection uses TLS. */
  get tls(): boolean {
    return this.bsock.tls;
  }

  /**
   * serve is going down: a running job stops now. Its files stop being read, the SD connection is
   * dropped (as when bacula-fd is killed: the SD ends the session in error, never keeping a cut-off
   * file as whole), and the Director hears why in a fatal job message, then the job's end, as
   * failed. A conversation without a job just ends.
   */
  async shutdown(reason: string): Promise<void> {
    const job = this.job;
    if (!job || job.ended) {
      this.bsock.destroy();
      return;
    }
    this.shutdownReason = reason;
    job.errors.push(reason);
    this.sd?.abort();
    await this.jmsg(3, reason).catch(() => undefined);
  }

  /** Hello and authentication; returns the Director's name, or throws (the caller drops the connection). */
  private async authenticate(): Promise<DirectorIdentity> {
    const hello = await this.bsock.receiveText();
    const match = /^Hello (?:Director )?(\S+) calling(?: (\d+))?/.exec(hello);
    if (!match) throw new AgentfdError('E_BACULA_AUTH', `a connection did not start with a Director's hello: "${hello.slice(0, 60)}"`);
    const name = unbashSpaces(match[1]!);
    const director = this.host.directors.find((d) => d.name === name);
    const secret = directorKey(director?.password ?? makeChallenge('no-such-director'));
    const challenge = makeChallenge(this.host.clientName);
    const localNeed = this.host.tls?.need ?? TLS_NEED.none;
    await this.bsock.send(`auth cram-md5 ${challenge} ssl=${localNeed}\n`);
    const response = await this.bsock.receiveText();
    if (!director || !cramAccepts(challenge, secret, response)) {
      // Answered only after the delay, and nothing more is read meanwhile: guessing passwords is
      // slow, and a guesser holds no memory here while it waits.
      this.bsock.hold();
      await new Promise((resolve) => setTimeout(resolve, this.host.authFailureDelayMs));
      await this.bsock.send('1999 Authorization failed.\n').catch(() => undefined);
      throw new AgentfdError(
        'E_BACULA_AUTH',
        director
          ? `Director "${name}" failed authentication: its Client password differs from [[serve.directors]] password`
          : `Director "${name}" is not in [[serve.directors]]; add it with the Client resource's Password`,
      );
    }
    await this.bsock.send('1000 OK auth\n');
    const theirs = /^auth cram-md5 (<[^>]*>) ssl=(\d)/.exec(await this.bsock.receiveText());
    if (!theirs) throw new AgentfdError('E_BACULA_AUTH', `Director "${name}" did not send its CRAM-MD5 challenge`);
    // Decided before its last plain message arrives: its TLS handshake may follow in the same segment.
    const useTls = negotiateTls(localNeed, Number(theirs[2]), `Director "${name}"`);
    if (useTls) this.bsock.plainUntil(1);
    await this.bsock.send(`${cramResponse(theirs[1]!, secret)}\0`);
    if (!(await this.bsock.receiveText()).startsWith('1000 OK auth')) {
      throw new AgentfdError('E_BACULA_AUTH', `Director "${name}" refused our answer: its Client password differs from ours`);
    }
    if (useTls) await this.bsock.startTls((plain) => tlsServer(plain, this.host.tls!, `Director "${name}"`));
    this.host.authenticated();
    await this.bsock.send(`2000 OK Hello ${FD_PROTOCOL_VERSION}\n`);
    return director;
  }

  async run(): Promise<void> {
    const director = await this.authenticate();
    this.directorName = director.name;
    this.connectedAt = new Date();
    try {
      for (;;) {
        const message = await this.bsock.receive();
        if (message.kind === 'signal') {
          if (message.signal === BNET.TERMINATE || message.signal === BNET.EOD) return;
          continue;
        }
        const command = decodeName(message.data).replace(/\0$/, '');
        this.debug(DEBUG.commands, 'director', `<dird: ${command}`);
        if (!(await this.dispatch(command))) return;
      }
    } catch (error) {
      if (this.job && !this.job.ended) {
        // After a cancel the Director hangs up on the job: that is the cancel, not a new error.
        if (!this.job.cancelled) this.job.errors.push(messageOf(error));
        this.finish(this.job.cancelled ? TERM.cancelled : TERM.fatal);
      }
      this.host.log('warning', `Director "${director.name}": ${messageOf(error)}`);
    } finally {
      await this.sd?.close();
      if (this.job && !this.job.ended) this.finish(TERM.fatal);
    }
  }

  private finish(termCode: number): void {
    if (!this.job) return;
    this.job.termCode = termCode;
    this.job.ended = new Date();
    this.host.finished(this.job);
  }

  /**
   * The Director's commands, in the order they are tried: a pattern and its handler, which
   * answers and says whether the conversation goes on. What matches none of them is a client run
   * script's command (run-scripts.ts), or else refused as bacula-fd refuses it.
   */
  private readonly commands: readonly Command[] = [
    { pattern: /^JobId=(\d+) Job=(\S+) SDid=(\d+) SDtime=(\d+) Authorization=(\S+)/, run: (m) => this.jobCommand(m) },
    { pattern: /^level = (\S+)/, run: (m, command) => this.levelCommand(m[1]!, command) },
    { pattern: /^fileset/, run: () => this.filesetCommand() },
    { pattern: /^storage address=(\S+) port=(\d+) ssl=(\d+)(?: Authorization=(\S+))?/, run: (m) => this.storageCommand(m) },
    { pattern: /^backup/, run: async () => (await this.backup(), false) },
    { pattern: /^restore (?:files=(\d+) )?replace=(\S) prelinks=(\d+) (where|regexwhere)=(.*)$/s, run: (m) => this.restoreCommand(m) },
    { pattern: /^endrestore/, run: async () => (await this.endJob(), false) },
    {
      pattern: /^verify level=(\S+)/,
      run: async (m, command) => {
        const level = verifyLevel(m[1]!);
        if (level) await this.verify(level);
        else await this.bsock.send(`2994 Bad verify level: ${command}\n`);
        return false;
      },
    },
    { pattern: /^\.?status/, run: (_m, command) => this.statusCommand(command.startsWith('.')) },
    { pattern: /^estimate listing=(\d+)/, run: (m) => this.estimateCommand(m[1] !== '0') },
    { pattern: /^cancel Job=(\S+)/, run: (m) => this.cancelCommand(m[1]!) },
    { pattern: /^setdebug=/, run: (_m, command) => this.setdebugCommand(command) },
    { pattern: /^setbandwidth=/, run: (_m, command) => this.setbandwidthCommand(command) },
    {
      // Accurate mode: the previous jobs' files; the backup compares with them and reports deletions.
      pattern: /^accurate files=\d+/,
      run: async () => {
        this.accurate = await AccurateList.receive(this.bsock);
        return true;
      },
    },
  ];

  /** One command; false ends the conversation. */
  private async dispatch(command: string): Promise<boolean> {
    for (const { pattern, run } of this.commands) {
      const match = pattern.exec(command);
      if (match) return await run(match, command);
    }
    // Client run scripts (run-scripts.ts): kept, or run now (RunBeforeJob, RunBeforeNow). When one
    // fails the job, bacula-fd answers 2905 and ends the job: after-scripts, then 2800 End Job.
    const scripted = await this.scripts.command(command);
    if (scripted) {
      await this.bsock.send(scripted.reply);
      if (scripted.goOn) return true;
      await this.endJob();
      return false;
    }
    await this.bsock.send('2999 Invalid command\n');
    return false;
  }

  /** Send `text` and go on. */
  private async answer(text: string): Promise<boolean> {
    await this.bsock.send(text);
    return true;
  }

  /** The job's identity and the SD session it will use; JobId=0 is a console's connection (status, estimate). */
  private async jobCommand(m: RegExpExecArray): Promise<boolean> {
    this.sdId = m[3]!;
    this.sdTime = m[4]!;
    this.sessionKey = m[5]!;
    if (m[1] !== '0') {
      const job = newJobRecord(Number(m[1]), m[2]!, this.host.jobBandwidth());
      try {
        this.host.register(job);
      } catch (error) {
        // Too many jobs: the Director is told why (in the job's report) and gets bacula-fd's refusal.
        this.host.log('warning', `job ${job.jobId} (${job.job}) refused: ${messageOf(error)}`);
        await this.jmsg(3, `${this.host.clientName} refused the job: ${messageOf(error)}`, job.jobId).catch(() => undefined);
        await this.bsock.send('2901 Bad Job\n');
        return false;
      }
      this.job = job;
    }
    return this.answer(`2000 OK Job ${HOST_VERSION} (agentfd) ${os.arch()}-${process.platform},agentfd,${HOST_VERSION}`);
  }

  /** The level; an incremental or differential is answered after its since_utime line. */
  private async levelCommand(level: string, command: string): Promise<boolean> {
    if (level === 'since_utime') {
      this.since = BigInt(/since_utime (\d+)/.exec(command)?.[1] ?? '0');
      this.previousJob = /prev_job=(\S+)/.exec(command)?.[1] ?? '';
      await this.bsock.sendSignal(BNET.EOD);
      return this.answer('2000 OK level\n');
    }
    if (this.job) this.job.level = LEVELS[level.replace(/^accurate_/, '')] ?? level;
    if (/^(accurate_)?(incremental|differential)$/.test(level)) return true; // since_utime follows
    return this.answer('2000 OK level\n');
  }

  /** The FileSet's items up to EOD; `F |command` and `F <file` entries are expanded now, as bacula-fd does. */
  private async filesetCommand(): Promise<boolean> {
    const items: string[] = [];
    for (;;) {
      const item = await this.bsock.receive();
      if (item.kind === 'signal') {
        if (item.signal === BNET.EOD) break;
        continue;
      }
      items.push(decodeName(item.data).replace(/\0$/, '')); // a File line's name, as bytes
    }
    this.fileset = parseFileSet(items);
    // bacula-fd fails the job on a FileSet it cannot use (a bad regex, an unknown item).
    if (this.fileset.error) return this.refuseFileSet(`the FileSet cannot be used: ${this.fileset.error}`, this.fileset.error);
    try {
      await expandFileLists(this.fileset, { codes: jobCodes(this.scriptHost(), 'R'), isCancelled: this.stopping });
    } catch (error) {
      return this.refuseFileSet(messageOf(error), messageOf(error));
    }
    return this.answer('2000 OK include\n');
  }

  private async refuseFileSet(problem: string, reason: string): Promise<boolean> {
    this.job?.errors.push(problem);
    await this.jmsg(3, problem).catch(() => undefined);
    return this.answer(`2902 Bad FileSet: ${reason}\n`);
  }

  /** Connect to the Storage Daemon the Director names; a failure is told in the job's report. */
  private async storageCommand(m: RegExpExecArray): Promise<boolean> {
    if (m[4]) this.sessionKey = m[4];
    try {
      this.sd = await StorageDaemon.connect(m[1]!, Number(m[2]), this.job?.job ?? 'unknown', this.sessionKey, this.host.clientName, this.host.tls);
      if (this.job?.throttle) this.sd.throttle = this.job.throttle;
      this.sd.debug = this.debug;
      this.debug(DEBUG.session, 'storage', `connected to the Storage Daemon at ${m[1]}:${m[2]}${this.sd.bsock.tls ? ' (TLS)' : ''}`);
    } catch (error) {
      this.host.log('error', messageOf(error));
      this.job?.errors.push(messageOf(error));
      await this.jmsg(3, messageOf(error)).catch(() => undefined); // so the job's report says why
      return this.answer('2902 Bad storage\n');
    }
    return this.answer('2000 OK storage\n');
  }

  private async statusCommand(dotted: boolean): Promise<boolean> {
    if (dotted) await this.bsock.send('2000 OK .status\n');
    for (const line of this.host.statusLines()) await this.bsock.send(line);
    await this.bsock.sendSignal(BNET.EOD);
    return true;
  }

  private async estimateCommand(listing: boolean): Promise<boolean> {
    const found = await estimate({ fileset: this.fileset, since: this.since, isCancelled: () => false, log: () => undefined });
    if (listing) for (const line of found.listing) await this.bsock.send(line);
    await this.bsock.send(`2000 OK estimate files=${found.files} bytes=${found.bytes}\n`);
    await this.bsock.sendSignal(BNET.EOD);
    return true;
  }

  /** setdebug: serve's debug level and trace file (wire/debug.ts); answered as bacula-fd answers. */
  private async setdebugCommand(command: string): Promise<boolean> {
    const asked = parseSetdebug(command);
    if (!asked) {
      await this.bsock.send(`2991 Bad setdebug command: ${command}\n`);
      return false;
    }
    this.host.debug.set(asked.level, asked.trace, asked.options);
    // hangup= and blowup= are bacula-fd's test hooks (hang up or abort after so many files): not
    // acted on here; as bacula-fd, the answer gives 0 for the -1 a Director sends when not asked.
    const hook = (n: number) => Math.max(0, n);
    return this.answer(`2000 OK setdebug=${asked.level} trace=${asked.trace} hangup=${hook(asked.hangup)} blowup=${hook(asked.blowup)} options=${asked.options} tags=${asked.tags}\n`);
  }

  /**
   * setbandwidth: the limit of a running job (sent by the Director at a job's start when the Job
   * has Maximum Bandwidth, or by the console's setbandwidth), or with no job the limit of jobs
   * started from now on, as bacula-fd keeps it (its Maximum Bandwidth Per Job).
   */
  private async setbandwidthCommand(command: string): Promise<boolean> {
    const m = /^setbandwidth=(\d+) Job=(\S*)/.exec(command);
    if (!m) {
      await this.bsock.send(`2991 Bad setbandwidth command: ${command}\n`);
      return false;
    }
    const job = unbashSpaces(m[2]!);
    const found = this.host.setBandwidth(job === '' ? null : job, Number(m[1]));
    return this.answer(found ? '2000 OK Bandwidth\n' : `2901 Job ${job} not found.\n`);
  }

  private async cancelCommand(job: string): Promise<boolean> {
    await this.bsock.send(this.host.cancel(job) ? `2001 Job "${job}" marked to be canceled.\n` : `2901 Job "${job}" not found.\n`);
    await this.bsock.sendSignal(BNET.EOD); // the Director reads the answer up to EOD, as for status
    return true;
  }

  /** A job's warnings and errors go to the Director as job messages (info stays local). */
  private readonly jobLog = (level: 'info' | 'warning' | 'error', message: string): void => {
    this.host.log(level, `job ${this.job?.jobId ?? 0}: ${message}`);
    if (level !== 'info') void this.jmsg(level === 'error' ? 4 : 5, message).catch(() => undefined);
  };

  /** A job message; `jobId` defaults to this conversation's job (a refused job has none here). */
  private jmsg(type: number, text: string, jobId = this.job?.jobId ?? 0): Promise<void> {
    // The words bacula-fd's Jmsg puts before the text of each type (lib/message.c), which the
    // Director's report shows as they are.
    const prefix = JMSG_PREFIX[type] ?? '';
    const line = text.endsWith('\n') ? text : `${text}\n`;
    return this.bsock.send(`Jmsg JobId=${jobId} type=${type} level=${Math.floor(Date.now() / 1000)} ${this.host.clientName} JobId ${jobId}: ${prefix}${line}`);
  }

  /**
   * While a job moves data the Director hears nothing for a long time; bacula-fd sends it a
   * heartbeat every Heartbeat Interval so firewalls and idle timeouts keep the connection. The
   * Director skips them wherever it waits for a reply. Returns the stop function.
   */
  private startHeartbeat(): () => void {
    if (this.host.heartbeatMs <= 0) return () => undefined;
    const timer = setInterval(() => {
      if (!this.bsock.closed) void this.bsock.sendSignal(BNET.HEARTBEAT).catch(() => undefined);
    }, this.host.heartbeatMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private async backup(): Promise<void> {
    const job = this.job;
    const sd = this.sd;
    if (!job || !sd) {
      await this.bsock.send('2902 Bad storage\n');
      return;
    }
    job.kind = 'backup';
    await this.bsock.send('2000 OK backup\n');
    const stopHeartbeat = this.startHeartbeat();
    const totals = newTotals();
    job.progress = () => ({ files: totals.files, bytes: totals.jobBytes, readBytes: totals.readBytes, examined: totals.examined, lastFile: totals.lastFile, sd: this.sdState() });
    let termCode: number = TERM.ok;
    const levelName = job.level === 'I' ? 'incremental' : job.level === 'D' ? 'differential' : 'full';
    try {
      const ticket = await sd.openAppend();
      // AfterVSS scripts run here in bacula-fd (Linux too): the SD took the session, no file sent yet.
      const scriptsOk = await this.scripts.afterVss();
      if (scriptsOk) await sendBackup(
        {
          sd,
          fileset: this.fileset,
          since: this.since,
          isCancelled: this.stopping,
          log: this.jobLog,
          debug: this.debug,
          gzipLikeBaculaFd: this.host.gzipLikeBaculaFd,
          ...(this.accurate ? { accurate: this.accurate } : {}),
          ...(this.host.plugins ? { plugins: { agents: this.host.plugins, level: levelName, jobName: job.job, jobId: job.jobId } } : {}),
        },
        totals,
      );
      await sd.closeAppend(ticket);
      termCode = job.cancelled ? TERM.cancelled : this.directorLost !== null || this.shutdownReason !== null ? TERM.fatal : !scriptsOk || totals.errors.length > 0 ? TERM.errors : TERM.ok;
    } catch (error) {
      // A cancel can surface as the agent's own "cancelled" error: it is still a cancel. A
      // shutdown's dropped SD connection is the shutdown, already told.
      if (!job.cancelled && this.shutdownReason === null) {
        job.errors.push(messageOf(error));
        await this.jmsg(3, messageOf(error)).catch(() => undefined);
      }
      termCode = job.cancelled ? TERM.cancelled : TERM.fatal;
    }
    // The agents learn whether their data is safe on the SD (an Exchange agent truncates its logs
    // only then), and their hosts end.
    for (const agentRun of totals.pluginRuns) {
      await agentRun.finish(termCode === TERM.ok).catch((error: unknown) => job.errors.push(messageOf(error)));
      await agentRun.close().catch(() => undefined);
    }
    stopHeartbeat();
    job.files = totals.files;
    job.bytes = totals.readBytes;
    job.progress = undefined;
    // checkfilechanges' errors count, and leave the status OK: "OK -- with warnings", as bacula-fd.
    job.errors.push(...totals.errors, ...totals.warnings);
    // After-scripts run before the End Job, which then carries their errors and what they did to the job.
    termCode = await this.scripts.after(termCode);
    await this.bsock.send(
      `2800 End Job TermCode=${termCode} JobFiles=${totals.files} ReadBytes=${totals.readBytes} JobBytes=${totals.jobBytes} Errors=${job.errors.length} VSS=0 Encrypt=0 CommBytes=${totals.jobBytes} CompressCommBytes=${totals.jobBytes}\n`,
    );
    await this.bsock.sendSignal(BNET.TERMINATE);
    this.finish(termCode);
  }

  /**
   * `restore [files=N ]replace=R prelinks=P where=W` or `... regexwhere=LIST`: an expression list
   * that does not read ends the job before the restore, as bacula-fd ends it ("Bad where regexp").
   */
  private async restoreCommand(m: RegExpExecArray): Promise<boolean> {
    const [, files, replace, prelinks, kind, text] = m;
    const value = unbashSpaces(text!.replace(/\n$/, ''));
    this.where = kind === 'where' ? value : '';
    if (this.job) this.job.expectedFiles = Number(files ?? 0);
    if (kind === 'regexwhere') {
      try {
        this.regexWhere = parseRegexWhere(value === '/' ? '' : value);
      } catch (error) {
        // As bacula-fd: a fatal job message, then the End Job in place of "2000 OK restore".
        this.job?.errors.push(messageOf(error));
        await this.jmsg(3, messageOf(error)).catch(() => undefined);
        await this.endJob(true);
        return false;
      }
    }
    await this.restore(parseReplace(replace!), prelinks === '1');
    return true;
  }

  private async restore(replace: ReplaceMode, prefixLinks: boolean): Promise<void> {
    const job = this.job;
    const sd = this.sd;
    if (!job || !sd) {
      await this.bsock.send('2902 Bad storage\n');
      return;
    }
    job.kind = 'restore';
    await this.bsock.send('2000 OK restore\n');
    const stopHeartbeat = this.startHeartbeat();
    try {
      const ticket = await sd.openRead(this.sdId, this.sdTime);
      const live: RestoreTotals = { files: 0, bytes: 0, errors: [] };
      let examined = 0;
      let lastFile = '';
      job.progress = () => ({ files: live.files, bytes: live.bytes, readBytes: 0, examined, lastFile, sd: this.sdState() });
      const totals = await receiveRestore({
        totals: live,
        onEntry: (fname) => {
          examined++;
          lastFile = this.where && this.where !== '/' ? path.posix.join(this.where, fname) : fname;
          this.debug(DEBUG.files, 'restore', `restoring: ${lastFile}`);
        },
        records: sd.records(),
        where: this.where,
        regexWhere: this.regexWhere,
        replace,
        prefixLinks,
        plugin: this.host.plugins ? (command) => this.pluginRestore(command) : undefined,
        log: this.jobLog,
      });
      await sd.closeRead(ticket);
      for (const [name, agentRun] of this.pluginRuns) {
        try {
          await agentRun.finish();
        } catch (error) {
          totals.errors.push(`${name}: ${messageOf(error)}`);
        }
      }
      job.files = totals.files;
      job.bytes = totals.bytes;
      job.errors.push(...totals.errors);
    } catch (error) {
      if (this.shutdownReason === null) {
        job.errors.push(messageOf(error));
        await this.jmsg(3, messageOf(error)).catch(() => undefined);
      }
    }
    job.progress = undefined;
    for (const agentRun of this.pluginRuns.values()) await agentRun.close().catch(() => undefined);
    this.pluginRuns.clear();
    await sd.close();
    this.sd = null;
    stopHeartbeat();
    await this.bsock.send('2000 OK storage end\n');
  }

  /**
   * A Verify job (transfer/verify.ts): attributes and digests to the Director, then EOD; the End
   * Job carries Verify Differences (TermCode D) when a Data verify found some.
   */
  private async verify(level: VerifyLevel): Promise<void> {
    const job = this.job;
    if (job) Object.assign(job, { kind: 'verify', level: level.code });
    await this.bsock.send('2000 OK verify\n');
    // As bacula-fd: heartbeats only while the SD's data is read (the disk levels talk all along).
    const stopHeartbeat = level.reads === 'disk' ? () => undefined : this.startHeartbeat();
    const totals = newVerifyTotals();
    let termCode: number = TERM.ok;
    try {
      await runVerify(level, {
        director: this.bsock, fileset: this.fileset, log: this.jobLog, info: (text) => this.jmsg(6, text), isCancelled: this.stopping,
        progress: (t) => job && Object.assign(job, { files: t.files, bytes: t.jobBytes }),
      }, this.volumeSession(), totals);
      termCode = job?.cancelled ? TERM.cancelled : this.directorLost !== null ? TERM.fatal : totals.failed ? TERM.errors : totals.differences ? TERM.differences : TERM.ok;
    } catch (error) {
      if (!job?.cancelled) {
        totals.errors.push(messageOf(error));
        await this.jmsg(3, messageOf(error)).catch(() => undefined);
      }
      termCode = job?.cancelled ? TERM.cancelled : TERM.fatal;
    }
    stopHeartbeat();
    await this.sd?.close();
    this.sd = null;
    await this.bsock.sendSignal(BNET.EOD);
    if (job) Object.assign(job, { files: totals.files, bytes: totals.jobBytes, errors: [...job.errors, ...totals.errors] });
    termCode = await this.scripts.after(termCode);
    await this.bsock.send(
      `2800 End Job TermCode=${termCode} JobFiles=${totals.files} ReadBytes=${totals.readBytes} JobBytes=${totals.jobBytes} Errors=${job?.errors.length ?? totals.errors.length} VSS=0 Encrypt=0 CommBytes=0 CompressCommBytes=0\n`,
    );
    await this.bsock.sendSignal(BNET.TERMINATE);
    this.finish(termCode);
  }

  /** The verified job's read session on the SD the Director named, or null when it named none. */
  private volumeSession(): VolumeSession | null {
    const sd = this.sd;
    if (!sd) return null;
    let ticket = 0;
    return {
      open: async () => {
        ticket = await sd.openRead(this.sdId, this.sdTime);
        return sd.records();
      },
      close: async (complete) => {
        if (complete) await sd.closeRead(ticket);
      },
    };
  }

  /** The SD connection as `status client` shows it, or null when there is none. */
  private sdState(): { readSeqNo: number; tls: boolean } | null {
    const bsock = this.sd?.bsock;
    return bsock && !bsock.closed ? { readSeqNo: bsock.readSeqNo, tls: bsock.tls } : null;
  }

  /** Restore runs of the agents met in this restore, by plugin command's agent. */
  private readonly pluginRuns = new Map<string, AgentRestoreRun>();

  /** The agent a restored file's plugin command names, or null: then it restores as a plain file. */
  private async pluginRestore(command: string): Promise<AgentRestoreRun | null> {
    const agents = this.host.plugins;
    const agent = agents?.agentFor(command) ?? null;
    if (!agents || !agent) return null;
    let run = this.pluginRuns.get(agent.name);
    if (!run) {
      if (this.regexWhere) this.jobLog('warning', `the RegexWhere does not rename the files of agent ${agent.name}: it restores them under their own names, as with where=/`);
      run = await startPluginRestore(agents, agent, command, this.where || '/', {
        jobName: this.job?.job ?? 'restore', jobId: this.job?.jobId ?? 0,
        log: (level, message) => void this.jmsg(level === 'error' ? 4 : level === 'warning' ? 5 : 6, message).catch(() => undefined),
        isCancelled: this.stopping,
      });
      this.pluginRuns.set(agent.name, run);
    }
    return run;
  }

  private async endJob(fatal = false): Promise<void> {
    const job = this.job;
    // Errors of scripts with FailJobOnError = no are warnings: the job stays OK, as with bacula-fd.
    let termCode: number = !job || fatal || this.shutdownReason !== null ? TERM.fatal : job.cancelled ? TERM.cancelled : job.errors.length > this.scripts.warnings ? TERM.errors : TERM.ok;
    // After-scripts (restores, and jobs ended by a failed before-script) run before the End Job.
    termCode = await this.scripts.after(termCode);
    await this.bsock.send(
      `2800 End Job TermCode=${termCode} JobFiles=${job?.files ?? 0} ReadBytes=${job?.bytes ?? 0} JobBytes=${job?.bytes ?? 0} Errors=${job?.errors.length ?? 0} VSS=0 Encrypt=0 CommBytes=0 CompressCommBytes=0\n`,
    );
    await this.bsock.sendSignal(BNET.TERMINATE);
    this.finish(termCode);
  }
}
