/**
 * `agentfd serve`: a Bacula 9.6 File Daemon a Director can drive. It listens where the Director's
 * Client resource points, takes each connection as its own conversation (so several jobs run at
 * once, and a dropped connection or a cancel ends only its job), and keeps what `status client`
 * shows: the jobs running and the last ones that ended. On SIGTERM or SIGINT (shutdown) it stops
 * listening and ends every running job within 2 s, telling the Director of each why.
 */
import net from 'node:net';
import os from 'node:os';
import { HOST_VERSION } from '../../version.js';
import { Bsock, PRE_AUTH_MAX_RECEIVE } from '../wire/bsock.js';
import { DirectorSession, type DirectorIdentity } from './director.js';
import type { JobRecord } from './job-record.js';
import { DebugLog } from '../wire/debug.js';
import { baculaDate, runningJobLines, terminatedLine, withCommas } from './status.js';
import type { PluginAgents } from '../transfer/plugin-agents.js';
import type { TlsSettings } from '../wire/tls.js';

export interface ServeSettings {
  name: string;
  address: string;
  port: number;
  directors: DirectorIdentity[];
  maxJobs: number;
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
  /** Agents for FileSets' Plugin lines; null: none. */
  plugins?: PluginAgents | null;
  /** [serve.tls]; null or absent: no TLS. */
  tls?: TlsSettings | null;
  /** Heartbeats to the Director during a job's data transfer, this often; 0 or absent: none. */
  heartbeatMs?: number;
  /** A connection not authenticated this long after it opened is dropped (ms; default 30 s). */
  authTimeoutMs?: number;
  /** At most this many connections wait to authenticate; a new one drops the oldest (default 32). */
  maxUnauthenticated?: number;
  /** A failed authentication is answered after this long (ms; default 6 s, as bacula-fd sleeps). */
  authFailureDelayMs?: number;
  /** Maximum Bandwidth Per Job: each job's data to the SD at most this many bytes/s (0 or absent: none). */
  maxBandwidthPerJob?: number;
  /** GZIP blocks compressed as bacula-fd does, in turn on one stream of the system's zlib (default false: on every core). */
  gzipLikeBaculaFd?: boolean;
  /** bacula-fd's WorkingDirectory: where setdebug's trace file `<name>.trace` goes (default: the current directory). */
  workingDir?: string;
}

export const SERVE_DEFAULTS = { authTimeoutMs: 30_000, maxUnauthenticated: 32, authFailureDelayMs: 6_000 } as const;

/** A connection that has not authenticated yet. */
interface Stranger {
  peer: string;
  bsock: Bsock;
  timer: NodeJS.Timeout;
  /** Its conversation ended (refused, and said why); it waits only for its answer to be read. */
  ended: boolean;
}

const KEEP_TERMINATED = 10;
/** How serve's own log says how a job ended (status client's table uses bacula-fd's words: status.ts). */
function endedText(code: number | null): string {
  return code === 84 ? 'OK' : code === 69 ? 'OK -- with warnings' : code === 65 ? 'Cancel' : code === 68 ? 'Diffs' : code === null ? '?' : 'Error';
}

/** How long running jobs get to tell their Director that they stop, when serve shuts down. */
const SHUTDOWN_GRACE_MS = 1_500;

export class FileDaemonServer {
  private readonly server: net.Server;
  private readonly running = new Map<string, JobRecord>();
  private readonly terminated: JobRecord[] = [];
  private readonly connections = new Set<net.Socket>();
  /**
   * Connections still to authenticate, oldest first (a Map keeps insertion order). They are capped
   * and timed out so that strangers cannot hold the sockets and memory a Director needs; ended by
   * us, they are in `dropped`, whose sessions' own errors are not logged a second time.
   */
  private readonly strangers = new Map<net.Socket, Stranger>();
  private readonly dropped = new WeakSet<net.Socket>();
  private readonly started = new Date();
  private jobsRun = 0;
  /** Authenticated and not yet authenticated conversations, each with the promise of its end. */
  private readonly sessions = new Map<DirectorSession, Promise<void>>();
  /** The limit of jobs started from now on (bytes/s): [serve] max_bandwidth_per_job, then a client-wide setbandwidth. */
  private jobBandwidth: number;
  readonly debug: DebugLog;

  constructor(private readonly settings: ServeSettings) {
    this.server = net.createServer((socket) => this.accept(socket));
    this.jobBandwidth = settings.maxBandwidthPerJob ?? 0;
    this.debug = new DebugLog(settings.name, settings.workingDir ?? process.cwd(), (line) => settings.log('info', line.replace(/\n$/, '')));
  }

  /** Listen; resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.settings.port, this.settings.address, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stop listening and end every conversation. */
  async close(): Promise<void> {
    for (const socket of this.strangers.keys()) this.forget(socket);
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * SIGTERM or SIGINT: stop listening, stop every running job (each tells its Director why and
   * ends its job as failed; its SD connection is dropped), give them SHUTDOWN_GRACE_MS to be
   * said, then end every connection. Resolves when all is closed.
   */
  async shutdown(signal: string): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.strangers.keys()) this.forget(socket);
    const reason = `${this.settings.name} received ${signal} and is shutting down: the job was stopped before its end; run it again once the File Daemon is back`;
    const ends = [...this.sessions].map(([session, ended]) => {
      void session.shutdown(reason).catch(() => undefined);
      return ended;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(ends), new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)))]);
    clearTimeout(timer);
    for (const socket of this.connections) socket.destroy();
    await closed;
  }

  /** Ends a connection that has not authenticated, saying why in one line. */
  private drop(socket: net.Socket, why: string): void {
    const stranger = this.strangers.get(socket);
    if (!stranger) return;
    this.forget(socket);
    this.dropped.add(socket);
    if (!stranger.ended) this.settings.log('warning', `connection from ${stranger.peer} dropped: ${why}`);
    stranger.bsock.destroy();
  }

  private forget(socket: net.Socket): void {
    const stranger = this.strangers.get(socket);
    if (!stranger) return;
    clearTimeout(stranger.timer);
    this.strangers.delete(socket);
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    this.connections.add(socket);
    socket.once('close', () => {
      this.connections.delete(socket);
      this.forget(socket);
    });
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const bsock = new Bsock(socket, `Director at ${peer}`);
    bsock.limitReceive(PRE_AUTH_MAX_RECEIVE);
    const maxStrangers = this.settings.maxUnauthenticated ?? SERVE_DEFAULTS.maxUnauthenticated;
    // The oldest stranger makes room, never the newcomer: a Director connecting now authenticates
    // in milliseconds, and idle connections cannot lock it out, however many are opened.
    for (const oldest of this.strangers.keys()) {
      if (this.strangers.size < maxStrangers) break;
      this.drop(oldest, `${this.strangers.size} connections were waiting to authenticate, the most [serve] max_unauthenticated allows, and it was the oldest`);
    }
    const authTimeoutMs = this.settings.authTimeoutMs ?? SERVE_DEFAULTS.authTimeoutMs;
    const timer = setTimeout(() => this.drop(socket, `not authenticated within ${authTimeoutMs / 1000} s ([serve] auth_timeout)`), authTimeoutMs);
    timer.unref();
    this.strangers.set(socket, { peer, bsock, timer, ended: false });
    const session = new DirectorSession(bsock, {
      clientName: this.settings.name,
      directors: this.settings.directors,
      log: this.settings.log,
      plugins: this.settings.plugins ?? null,
      tls: this.settings.tls ?? null,
      heartbeatMs: this.settings.heartbeatMs ?? 0,
      gzipLikeBaculaFd: this.settings.gzipLikeBaculaFd ?? false,
      authenticated: () => {
        this.forget(socket);
        bsock.limitReceive(null);
      },
      authFailureDelayMs: this.settings.authFailureDelayMs ?? SERVE_DEFAULTS.authFailureDelayMs,
      debug: this.debug,
      jobBandwidth: () => this.capped(this.jobBandwidth),
      setBandwidth: (job, limit) => this.setBandwidth(job, limit),
      register: (job) => {
        if (this.running.size >= this.settings.maxJobs) throw new Error(`${this.running.size} jobs are running, the most [serve] max_jobs allows; raise it, or lower the Client resource's Maximum Concurrent Jobs to match`);
        this.running.set(job.job, job);
        this.jobsRun++;
      },
      finished: (job) => {
        if (!this.running.delete(job.job)) return;
        this.terminated.unshift(job);
        this.terminated.splice(KEEP_TERMINATED);
        this.settings.log(job.termCode === 84 ? 'info' : 'warning', `job ${job.jobId} (${job.job}) ended: ${endedText(job.termCode)}, ${job.files} files, ${job.bytes} bytes${job.errors.length ? `; ${job.errors.join('; ')}` : ''}`);
      },
      statusLines: () => this.statusLines(),
      cancel: (job) => {
        const record = this.running.get(job);
        if (!record) return false;
        record.cancelled = true;
        record.throttle?.abort(); // a cancelled job does not sit out its bandwidth limit's sleeps
        return true;
      },
    });
    const ended = session
      .run()
      .catch((error: Error) => {
        if (!this.dropped.has(socket)) this.settings.log('warning', `connection from ${peer}: ${error.message}`);
      })
      .finally(() => {
        // Ended, not destroyed: queued frames (the End Job report) go out first, and over TLS the
        // close_notify lets the Director see a clean end instead of a truncated connection.
        bsock.close();
        const stranger = this.strangers.get(socket);
        // A refused stranger stays counted (and timed out) until the socket goes, so refusals
        // cannot pile up sockets; a Director's connection gets 30 s to read its last messages.
        if (stranger) stranger.ended = true;
        else setTimeout(() => bsock.destroy(), 30_000).unref();
        this.sessions.delete(session);
      });
    this.sessions.set(session, ended);
  }

  /** setbandwidth: a running job's limit (false: no such job), or with null the limit of jobs started from now on. */
  private setBandwidth(job: string | null, limit: number): boolean {
    if (job === null) {
      this.jobBandwidth = limit;
      return true;
    }
    const throttle = this.running.get(job)?.throttle;
    if (throttle) throttle.limit = this.capped(limit);
    return throttle !== undefined;
  }

  /** A job's limit: what the Director asks, within [serve] max_bandwidth_per_job when that is set. */
  private capped(limit: number): number {
    const most = this.settings.maxBandwidthPerJob ?? 0;
    return most > 0 && (limit === 0 || limit > most) ? most : limit;
  }

  /** The text of `status client`, one message per line as bacula-fd sends it (status.ts). */
  statusLines(): string[] {
    const now = Date.now();
    const lines = [
      `${this.settings.name} Version: agentfd ${HOST_VERSION} (Bacula FD protocol 213)  ${os.arch()} ${process.platform} ${os.release()}\n`,
      `Daemon started ${baculaDate(this.started)}. Jobs: run=${this.jobsRun} running=${this.running.size}.\n`,
      ` Sizes: boffset_t=8 size_t=8 debug=${this.debug.level} trace=${this.debug.tracing ? 1 : 0} mode=0,0 bwlimit=${withCommas(Math.floor(this.jobBandwidth / 1024))}kB/s\n`,
      '\nRunning Jobs:\n',
    ];
    for (const job of this.running.values()) lines.push(...runningJobLines(job, now));
    for (const session of this.sessions.keys()) {
      if (session.connectedAt && !session.runningJob) lines.push(`Director connected ${session.tls ? 'using TLS ' : ''}at: ${baculaDate(session.connectedAt)}\n`);
    }
    if (this.running.size === 0) lines.push('No Jobs running.\n');
    lines.push('====\n', '\nTerminated Jobs:\n', ' JobId  Level    Files      Bytes   Status   Finished        Name \n', '===================================================================\n');
    // Oldest first, as bacula-fd lists them.
    for (const job of [...this.terminated].reverse()) lines.push(terminatedLine(job));
    lines.push('====\n');
    return lines;
  }
}
