/**
 * One Director connection to `agentfd serve`: the hello, CRAM-MD5 both ways (we challenge first,
 * as bacula-fd does), then the Director's commands in its order (filed/job.c), with the exact
 * reply strings a 9.6 Director compares. A connection runs at most one job; a dropped connection
 * or a cancel ends only that job.
 */
import os from 'node:os';
import { AgentfdError, messageOf } from '../../errors.js';
import { HOST_VERSION } from '../../version.js';
import { newTotals, sendBackup } from '../transfer/backup.js';
import { estimate } from './estimate.js';
import { startPluginRestore, type PluginAgents } from '../transfer/plugin-agents.js';
import type { RestoreRun as AgentRestoreRun } from '../../agents/agent.js';
import { BNET, Bsock, unbashSpaces } from '../wire/bsock.js';
import { cramAccepts, cramResponse, directorKey, makeChallenge } from '../wire/cram-md5.js';
import { parseFileSet, type FileSet } from '../fileset/fileset.js';
import { parseRegexWhere, parseReplace, receiveRestore, type Bregexp, type ReplaceMode } from '../transfer/restore.js';
import { JobScripts, jobCodes, type ScriptHost } from './run-scripts.js';
import { expandFileLists } from './file-lists.js';
import { AccurateList } from '../transfer/accurate.js';
import { TLS_NEED, negotiateTls, tlsServer, type TlsSettings } from '../wire/tls.js';
import { FD_PROTOCOL_VERSION, StorageDaemon } from '../transfer/storage-daemon.js';
import type { JobRecord } from './job-record.js';

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
  /** The Director proved who it is: Bacula's limits apply from now on, and no authentication timeout. */
  authenticated(): void;
  /** How long a failed authentication waits before its answer (bacula-fd sleeps 6 s), in ms. */
  authFailureDelayMs: number;
}

/** Bacula's job status characters (jcr.h), sent as TermCode. */
const TERM = { ok: 84, errors: 69, fatal: 102, cancelled: 65 } as const;
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

  constructor(private readonly bsock: Bsock, private readonly host: DirectorHost) {
    // A Director that hangs up mid-job ends that job (its files stop being read); other jobs go on.
    bsock.onPeerGone((error) => {
      if (!this.job || this.job.ended) return;
      this.directorLost = error.message;
      this.job.errors.push(`the job stopped: ${error.message}`);
    });
  }

  /** The job should stop: cancelled from the Director, or the Director is gone. */
  private readonly stopping = (): boolean => (this.job?.cancelled ?? false) || this.directorLost !== null;

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
    try {
      for (;;) {
        const message = await this.bsock.receive();
        if (message.kind === 'signal') {
          if (message.signal === BNET.TERMINATE || message.signal === BNET.EOD) return;
          continue;
        }
        const command = message.data.toString('utf8').replace(/\0$/, '');
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
    { pattern: /^restore (?:files=\d+ )?replace=(\S) prelinks=(\d+) (where|regexwhere)=(.*)$/s, run: (m) => this.restoreCommand(m) },
    { pattern: /^endrestore/, run: async () => (await this.endJob(), false) },
    { pattern: /^\.?status/, run: (_m, command) => this.statusCommand(command.startsWith('.')) },
    { pattern: /^estimate listing=(\d+)/, run: (m) => this.estimateCommand(m[1] !== '0') },
    { pattern: /^cancel Job=(\S+)/, run: (m) => this.cancelCommand(m[1]!) },
    { pattern: /^setdebug=/, run: (_m, command) => this.answer(`2000 OK ${command.trim()}\n`) },
    { pattern: /^setbandwidth=/, run: () => this.answer('2000 OK Bandwidth\n') },
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
      const job: JobRecord = { jobId: Number(m[1]), job: m[2]!, kind: 'unknown', level: '-', started: new Date(), ended: null, files: 0, bytes: 0, termCode: null, errors: [], cancelled: false };
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
      items.push(item.data.toString('utf8').replace(/\0$/, ''));
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
          ...(this.accurate ? { accurate: this.accurate } : {}),
          ...(this.host.plugins ? { plugins: { agents: this.host.plugins, level: levelName, jobName: job.job, jobId: job.jobId } } : {}),
        },
        totals,
      );
      await sd.closeAppend(ticket);
      termCode = job.cancelled ? TERM.cancelled : this.directorLost !== null ? TERM.fatal : !scriptsOk || totals.errors.length > 0 ? TERM.errors : TERM.ok;
    } catch (error) {
      // A cancel can surface as the agent's own "cancelled" error: it is still a cancel.
      if (!job.cancelled) {
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
    job.errors.push(...totals.errors);
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
    const value = unbashSpaces(m[4]!.replace(/\n$/, ''));
    this.where = m[3] === 'where' ? value : '';
    if (m[3] === 'regexwhere') {
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
    await this.restore(parseReplace(m[1]!), m[2] === '1');
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
      const totals = await receiveRestore({
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
      job.errors.push(messageOf(error));
      await this.jmsg(3, messageOf(error)).catch(() => undefined);
    }
    for (const agentRun of this.pluginRuns.values()) await agentRun.close().catch(() => undefined);
    this.pluginRuns.clear();
    await sd.close();
    this.sd = null;
    stopHeartbeat();
    await this.bsock.send('2000 OK storage end\n');
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
    let termCode: number = !job || fatal ? TERM.fatal : job.cancelled ? TERM.cancelled : job.errors.length > this.scripts.warnings ? TERM.errors : TERM.ok;
    // After-scripts (restores, and jobs ended by a failed before-script) run before the End Job.
    termCode = await this.scripts.after(termCode);
    await this.bsock.send(
      `2800 End Job TermCode=${termCode} JobFiles=${job?.files ?? 0} ReadBytes=${job?.bytes ?? 0} JobBytes=${job?.bytes ?? 0} Errors=${job?.errors.length ?? 0} VSS=0 Encrypt=0 CommBytes=0 CompressCommBytes=0\n`,
    );
    await this.bsock.sendSignal(BNET.TERMINATE);
    this.finish(termCode);
  }
}
