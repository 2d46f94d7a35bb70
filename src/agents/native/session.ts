/**
 * One job's session with a native agent: open, the backup and restore calls, close. Calls are
 * synchronous and checked: a negative return code becomes an AgentCallError that carries the
 * agent's own last_error() text, and what the agent hands out is validated before it is used.
 *
 * This class is the only place that calls an agent's entry points; the bridge that turns these
 * calls into async iterators, and the isolated host process, both drive it.
 */
import { AgentCallError, AgentfdError } from '../../errors.js';
import {
  AFD_DONE,
  AFD_OK,
  AFD_STATUS_FAILED,
  AFD_STATUS_OK,
  BackupParams,
  Estimate,
  FileDescIn,
  LEVEL_CODES,
  OpenParams,
  RETURN_CODES,
  RestoreParams,
  StreamDescIn,
  type AgentEntryPoint,
} from './abi.js';
import { readCString } from './cstring.js';
import { attachHostContext, detachHostContext, hostTableFor, type HostCallbacks } from './host-table.js';
import { RestoreWrites } from './restore-writes.js';
import { FileRefused, decodeAgentFile } from './validate.js';
import type { AgentFileInfo, Level } from '../types.js';
import type { AgentSession, LoadedAgent, SessionOptions } from '../session.js';

export type { SessionOptions } from '../session.js';

/** A callable entry point of the agent's table. */
export type EntryPoint = ((...args: unknown[]) => unknown) & { async?: (...args: unknown[]) => void };

/**
 * A loaded, negotiated native agent library (library.ts loads it): declared here, with the session
 * that drives it, so that the session does not import the loader that creates sessions.
 */
export interface NativeAgentLibrary extends LoadedAgent {
  readonly kind: 'native';
  readonly capabilityBits: bigint;
  /** Entry points present in the table (absent ones are missing here). */
  readonly entry: Readonly<Partial<Record<AgentEntryPoint, EntryPoint>>>;
}


const LEVEL_NAMES = Object.fromEntries(Object.entries(LEVEL_CODES).map(([name, value]) => [value, name])) as Record<number, Level>;

export class NativeAgentSession implements AgentSession {
  readonly agent: NativeAgentLibrary;
  /** The blob the agent stored with state_set during this session, if any. */
  state: Uint8Array | null = null;
  /** Host calls the agent got wrong; a job fails when this is not empty. */
  readonly protocolErrors: string[] = [];
  private handle: unknown;
  private readonly ctx: bigint;
  private readonly offThread: boolean;
  private onCall: ((entry: string) => void) | undefined;
  /** Where the backup call sequence stands, so that calls out of order are refused, not made. */
  private file: AgentFileInfo | null = null;
  private stream: { index: number; bytes: number; limit: number | null; ended: boolean } | null = null;
  private nextStream = 0;
  /** backup_prepare() succeeded and backup_finish() is still owed (the header: once after every backup). */
  private finishOwed = false;

  private constructor(agent: NativeAgentLibrary, ctx: bigint, offThread: boolean, private readonly writes: RestoreWrites) {
    this.agent = agent;
    this.ctx = ctx;
    this.offThread = offThread;
  }

  static async open(agent: NativeAgentLibrary, options: SessionOptions): Promise<NativeAgentSession> {
    const writes = new RestoreWrites((level, message) => options.log?.(level, message));
    const callbacks: HostCallbacks = {
      log: (level, message) => options.log?.(level, message),
      filesetCheck: (path) => options.filesetCheck?.(path) ?? true,
      getOption: (key) => (options.options && Object.hasOwn(options.options, key) ? options.options[key] : undefined),
      isCancelled: () => options.isCancelled?.() ?? false,
      stateGet: () => options.referenceState ?? null,
      stateSet: (blob) => (session.state = blob),
      restoreOpen: (relative, flags) => writes.open(relative, flags),
      restoreRename: (from, to) => writes.rename(from, to),
      restoreRemove: (relative) => writes.remove(relative),
      protocolError: (message) => session.protocolErrors.push(message),
    };
    const ctx = attachHostContext(callbacks);
    const session = new NativeAgentSession(agent, ctx, options.offThread ?? false, writes);
    session.onCall = options.onCall;
    const out: unknown[] = [null];
    const params = {
      struct_size: OpenParams.size,
      abi_version: agent.abi,
      host: hostTableFor(agent.abi),
      host_ctx: ctx,
      job_name: options.jobName,
      job_id: options.jobId ?? 0,
    };
    try {
      session.check('open', (await session.call('open', params, out)) as number, true);
      if (out[0] === null) throw session.failure('open', -3, 'open() returned AFD_OK without a session');
    } catch (error) {
      detachHostContext(ctx);
      throw error;
    }
    session.handle = out[0];
    return session;
  }

  /** Call an entry point, on the thread pool when the session runs off-thread. */
  private call(entry: AgentEntryPoint, ...args: unknown[]): Promise<unknown> {
    const fn = this.agent.entry[entry];
    if (!fn) return Promise.reject(this.failure(entry, -5, `the agent does not implement ${entry}()`));
    this.onCall?.(entry);
    if (!this.offThread) {
      try {
        return Promise.resolve(fn(...args));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise((resolve, reject) => fn.async!(...args, (error: unknown, result: unknown) => (error ? reject(error) : resolve(result))));
  }

  private failure(entry: string, rc: number, detail: string): AgentCallError {
    return new AgentCallError(
      this.agent.name,
      entry,
      rc,
      `agent "${this.agent.name}" failed in ${entry}(): ${detail} (${RETURN_CODES[rc] ?? `return code ${rc}`})`,
    );
  }

  private lastError(): string {
    if (this.handle === undefined || !this.agent.entry.last_error) return 'no message';
    const text = readCString(this.agent.entry.last_error(this.handle), 4096);
    return text.ok ? text.value : 'no message';
  }

  /** Throw the agent's error when rc is negative; returns rc otherwise. */
  private check(entry: string, rc: number, beforeHandle = false): number {
    if (rc >= 0) return rc;
    throw this.failure(entry, rc, beforeHandle ? 'the session could not be opened' : this.lastError());
  }

  // ---- backup -------------------------------------------------------------------------------

  /** Prepare a backup; returns the level the agent will deliver (it may upgrade to full). */
  async backupPrepare(level: Level, sinceNs: bigint, jobStartNs: bigint): Promise<Level> {
    const params = {
      struct_size: BackupParams.size,
      level: LEVEL_CODES[level],
      since_ns: sinceNs,
      job_start_ns: jobStartNs,
      delivered_level: LEVEL_CODES[level],
      reserved: 0,
    };
    this.check('backup_prepare', await this.call('backup_prepare', this.handle, params) as number);
    this.finishOwed = this.agent.entry.backup_finish !== undefined;
    const delivered = LEVEL_NAMES[params.delivered_level];
    if (!delivered) throw this.failure('backup_prepare', -3, `the agent set delivered_level to ${params.delivered_level}, which is no level`);
    return delivered;
  }

  /** The next file, or null when the agent has no more. */
  /** Refuse a call the sequence does not allow (a host-side bug, or a caller misusing the session). */
  private order(entry: string, allowed: boolean, why: string): void {
    if (!allowed) throw this.failure(entry, -3, `called out of order: ${why}`);
  }

  async nextFile(): Promise<AgentFileInfo | null> {
    this.order('backup_next_file', this.file === null, `file ${this.file?.path} has not ended`);
    const out: unknown[] = [null];
    const rc = this.check('backup_next_file', await this.call('backup_next_file', this.handle, out) as number);
    if (rc === AFD_DONE) return null;
    if (rc !== AFD_OK) throw this.failure('backup_next_file', -3, `unexpected return code ${rc}`);
    try {
      this.file = decodeAgentFile(out[0]);
    } catch (error) {
      if (!(error instanceof FileRefused)) throw this.failure('backup_next_file', -3, (error as Error).message);
      // The file fails, not the job: it is handed on without streams (so none is asked for), and
      // ending it as usual calls backup_end_file, which the agent is owed for every file it handed out.
      this.file = {
        path: error.path, kind: error.kind, linkTarget: null, mode: 0, seen: false, mtimeNs: 0n, size: null, winAttributes: 0, streams: [],
        refused: `agent "${this.agent.name}" handed out a file that breaks the contract in backup_next_file(): ${error.message}; the file is recorded as failed`,
      };
    }
    this.nextStream = 0;
    return this.file;
  }

  async startStream(index: number): Promise<void> {
    this.order('backup_start_stream', this.file !== null && this.stream === null, this.stream ? `stream ${this.stream.index} is open` : 'no file is open');
    this.order('backup_start_stream', index === this.nextStream && index < this.file!.streams.length, `stream ${index} asked where stream ${this.nextStream} of ${this.file!.streams.length} is next`);
    this.stream = { index, bytes: 0, limit: this.file!.streams[index]!.sizeHint, ended: false };
    this.check('backup_start_stream', await this.call('backup_start_stream', this.handle, index) as number);
  }

  /** Fill `buffer` from the current stream; returns the byte count, 0 at the end. */
  async read(buffer: Uint8Array): Promise<number> {
    this.order('backup_read', this.stream !== null && !this.stream.ended, this.stream ? 'the stream has ended' : 'no stream is open');
    const result = await this.call('backup_read', this.handle, buffer, buffer.length) as number | bigint;
    const n = typeof result === 'bigint' ? Number(result) : result;
    this.check('backup_read', n);
    if (n > buffer.length) {
      throw this.failure('backup_read', -3, `the agent claims ${n} bytes were read into a buffer of ${buffer.length}; its data cannot be trusted`);
    }
    const stream = this.stream!;
    if (n === 0) stream.ended = true;
    stream.bytes += n;
    if (stream.limit !== null && stream.bytes > stream.limit) {
      // The file fails, not the job: the caller ends the stream and the file with the agent
      // (endStream, endFile) and goes on with the next file.
      throw new AgentfdError(
        'E_FILE_REFUSED',
        `agent "${this.agent.name}" broke the contract in backup_read(): stream ${stream.index} of ${this.file!.path} delivered more than the ${stream.limit} bytes it announced (size_hint is a limit); its data cannot be trusted, the file is recorded as failed`,
      );
    }
    return n;
  }

  async endStream(): Promise<void> {
    this.order('backup_end_stream', this.stream !== null, 'no stream is open');
    this.stream = null;
    this.nextStream++;
    this.check('backup_end_stream', await this.call('backup_end_stream', this.handle) as number);
  }

  async endFile(): Promise<void> {
    this.order('backup_end_file', this.file !== null && this.stream === null, this.stream ? `stream ${this.stream.index} is open` : 'no file is open');
    this.file = null;
    this.check('backup_end_file', await this.call('backup_end_file', this.handle) as number);
  }

  /** Tell a generation 2 agent the job's outcome (it may truncate logs after success). */
  async backupFinish(ok: boolean): Promise<void> {
    if (!this.agent.entry.backup_finish || !this.finishOwed) return;
    this.finishOwed = false;
    this.check('backup_finish', await this.call('backup_finish', this.handle, ok ? AFD_STATUS_OK : AFD_STATUS_FAILED) as number);
  }

  /** After backupPrepare: the agent's estimate() of what a backup would save (null where it says -1). */
  async estimate(): Promise<{ files: number | null; bytes: number | null }> {
    const out = { struct_size: Estimate.size, reserved: 0, files: -1, bytes: -1 };
    this.check('estimate', await this.call('estimate', this.handle, out) as number);
    const known = (n: number | bigint) => (Number(n) >= 0 ? Number(n) : null);
    return { files: known(out.files), bytes: known(out.bytes) };
  }

  // ---- restore ------------------------------------------------------------------------------

  async restorePrepare(target: string | null, sourceAbi: number, sourceAgentVersion: string | null): Promise<void> {
    // Gen 3: the host opens the target once, before the agent writes anything through restore_open.
    if (this.agent.abi >= 3) this.writes.prepare(target);
    const params = {
      struct_size: RestoreParams.size,
      source_abi: sourceAbi,
      target,
      source_agent_version: sourceAgentVersion,
      flags: 0,
      reserved: 0,
    };
    this.check('restore_prepare', await this.call('restore_prepare', this.handle, params) as number);
  }

  async restoreStartFile(file: AgentFileInfo): Promise<void> {
    const streams = file.streams.map((s) => ({
      struct_size: StreamDescIn.size,
      type: { data: 1, metadata: 2, named: 3 }[s.type],
      name: s.name,
      size_hint: s.sizeHint ?? -1,
      flags: s.rawRestorable ? 1 : 0,
      reserved: 0,
    }));
    const desc = {
      struct_size: FileDescIn.size,
      kind: { regular: 1, directory: 2, symlink: 3, virtual: 4 }[file.kind],
      path: file.path,
      link_target: file.linkTarget,
      mode: file.mode,
      flags: file.seen ? 1 : 0,
      mtime_ns: file.mtimeNs,
      size: file.size ?? -1,
      win_attributes: file.winAttributes,
      stream_count: streams.length,
      streams: streams.length > 0 ? streams : null,
    };
    this.check('restore_start_file', await this.call('restore_start_file', this.handle, desc) as number);
  }

  async restoreWrite(streamIndex: number, data: Uint8Array): Promise<void> {
    if (data.length === 0) return;
    this.check('restore_write', await this.call('restore_write', this.handle, streamIndex, data, data.length) as number);
  }

  async restoreEndFile(ok: boolean): Promise<void> {
    this.check('restore_end_file', await this.call('restore_end_file', this.handle, ok ? AFD_STATUS_OK : AFD_STATUS_FAILED) as number);
  }

  async restoreFinish(): Promise<void> {
    this.check('restore_finish', await this.call('restore_finish', this.handle) as number);
  }

  /** End the session; safe to call twice. */
  close(): void {
    if (this.handle !== undefined && this.handle !== null) {
      // A backup that ended before the job engine told the agent its outcome (a failure right after
      // backup_prepare, a host that gave up): it failed, and the agent is told so before close().
      if (this.finishOwed) {
        this.finishOwed = false;
        try {
          this.onCall?.('backup_finish');
          this.agent.entry.backup_finish!(this.handle, AFD_STATUS_FAILED);
        } catch {
          // close() must still run; the job has failed already
        }
      }
      this.agent.entry.close?.(this.handle);
      this.handle = null;
    }
    this.writes.close();
    detachHostContext(this.ctx);
  }
}
