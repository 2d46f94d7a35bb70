/**
 * `agentfd serve`: a Bacula 9.6 File Daemon a Director can drive. It listens where the Director's
 * Client resource points, takes each connection as its own conversation (so several jobs run at
 * once, and a dropped connection or a cancel ends only its job), and keeps what `status client`
 * shows: the jobs running and the last ones that ended.
 */
import net from 'node:net';
import os from 'node:os';
import { HOST_VERSION } from '../../version.js';
import { Bsock, PRE_AUTH_MAX_RECEIVE } from '../wire/bsock.js';
import { DirectorSession, type DirectorIdentity } from './director.js';
import type { JobRecord } from './job-record.js';
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

function termText(code: number | null): string {
  return code === 84 ? 'OK' : code === 69 ? 'OK -- with warnings' : code === 65 ? 'Cancel' : code === 68 ? 'Diffs' : code === null ? '?' : 'Error';
}

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

  constructor(private readonly settings: ServeSettings) {
    this.server = net.createServer((socket) => this.accept(socket));
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
      authenticated: () => {
        this.forget(socket);
        bsock.limitReceive(null);
      },
      authFailureDelayMs: this.settings.authFailureDelayMs ?? SERVE_DEFAULTS.authFailureDelayMs,
      register: (job) => {
        if (this.running.size >= this.settings.maxJobs) throw new Error(`${this.running.size} jobs are running, the most [serve] max_jobs allows; raise it, or lower the Client resource's Maximum Concurrent Jobs to match`);
        this.running.set(job.job, job);
        this.jobsRun++;
      },
      finished: (job) => {
        if (!this.running.delete(job.job)) return;
        this.terminated.unshift(job);
        this.terminated.splice(KEEP_TERMINATED);
        this.settings.log(job.termCode === 84 ? 'info' : 'warning', `job ${job.jobId} (${job.job}) ended: ${termText(job.termCode)}, ${job.files} files, ${job.bytes} bytes${job.errors.length ? `; ${job.errors.join('; ')}` : ''}`);
      },
      statusLines: () => this.statusLines(),
      cancel: (job) => {
        const record = this.running.get(job);
        if (!record) return false;
        record.cancelled = true;
        return true;
      },
    });
    session
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
      });
  }

  /** The text of `status client`, one message per line as bacula-fd sends it. */
  statusLines(): string[] {
    const date = (d: Date) => d.toISOString().replace('T', ' ').slice(0, 16);
    const lines = [
      `${this.settings.name} Version: agentfd ${HOST_VERSION} (Bacula FD protocol 213)  ${os.arch()} ${process.platform} ${os.release()}\n`,
      `Daemon started ${date(this.started)}. Jobs: run=${this.jobsRun} running=${this.running.size}.\n`,
      '\nRunning Jobs:\n',
    ];
    if (this.running.size === 0) lines.push('No Jobs running.\n');
    for (const job of this.running.values()) {
      lines.push(`JobId ${job.jobId} Job ${job.job} is running.\n`, `    ${job.kind} Job started: ${date(job.started)}\n`, `    Files=${job.files} Bytes=${job.bytes} Errors=${job.errors.length}\n`);
    }
    lines.push('====\n', '\nTerminated Jobs:\n', ' JobId  Level    Files      Bytes   Status   Finished        Name \n', '===================================================================\n');
    for (const job of this.terminated) {
      lines.push(`${String(job.jobId).padStart(6)}  ${job.level.padEnd(4)} ${String(job.files).padStart(9)} ${String(job.bytes).padStart(10)}   ${termText(job.termCode).padEnd(8)} ${date(job.ended ?? job.started)} ${job.job}\n`);
    }
    lines.push('====\n');
    return lines;
  }
}
