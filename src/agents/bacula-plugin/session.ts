/**
 * One job's session with a Bacula 9.6 plugin, driven through agentfd's session interface: the
 * events and calls in the order bacula-fd 9.6 makes them (its filed/fd_plugins.c, backup.c and
 * restore.c; the sequences below), turned into files and streams for the bridge, and back into
 * createFile/pluginIO for restore.
 *
 * Backup, per job:  newPlugin, JobStart, [Since], Level, PluginCommand, EndFileSet, StartBackupJob,
 *                   BackupCommand; per file: startBackupFile, IO_OPEN, IO_READ..., IO_CLOSE,
 *                   endBackupFile (bRC_More: another file); at the end checkFile for accurate
 *                   mode, EndBackupJob, JobEnd, freePlugin.
 * Restore, per job: newPlugin, JobStart, StartRestoreJob; per file: RestoreCommand,
 *                   startRestoreFile, createFile, IO_OPEN, IO_WRITE..., setFileAttributes,
 *                   IO_CLOSE, endRestoreFile; then EndRestoreJob, JobEnd, freePlugin.
 *
 * A JobMessage of type error, fatal or abort is an error of the job: bacula-fd would finish such a
 * job "with errors", and agentfd never passes off data a plugin said was bad as complete.
 */
import { chmod, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import koffi from 'koffi';
import type { RestoreRun } from '../agent.js';
import { createFilesystemAgent } from '../filesystem/index.js';
import { AgentCallError, AgentfdError } from '../../errors.js';
import { HOST_VERSION } from '../../version.js';
import { agentPathProblem, type AgentFileInfo, type Level, type LogLevel } from '../types.js';
import { readCString } from '../native/cstring.js';
import type { AgentSession, LoadedAgent, SessionOptions } from '../session.js';
import {
  BRC_NAMES,
  CF,
  FT,
  IO,
  IoPkt,
  MESSAGE_TYPES,
  M_ABORT,
  M_ERROR,
  M_FATAL,
  M_WARNING,
  O_CREAT,
  O_RDONLY,
  O_TRUNC,
  O_WRONLY,
  RestorePkt,
  SavePkt,
  STREAM_FILE_DATA,
  STREAM_UNIX_ATTRIBUTES,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  bEvent,
  bRC,
  bVar,
  type PluginEntryPoint,
} from './abi.js';
import { attachContext, detachContext, type BaculaHostCallbacks } from './host-functions.js';
import { NativeArena } from './native-memory.js';

export type PluginFunction = ((...args: unknown[]) => number) & { async?: (...args: unknown[]) => void };

/**
 * A loaded Bacula plugin (library.ts loads it): its name is the file name up to "-fd.so", its ABI
 * is 14. Declared here, with the session that drives it, so that the session does not import the
 * loader that creates sessions.
 */
export interface BaculaPluginLibrary extends LoadedAgent {
  readonly kind: 'bacula';
  readonly entry: Readonly<Partial<Record<PluginEntryPoint, PluginFunction>>>;
}

const LEVEL_CHARS: Record<Level, string> = { full: 'F', incremental: 'I', differential: 'D' };
/** M_ERROR_TERM: an error that ends the job, like M_FATAL. */
const M_ERROR_TERM = 11;
const FAILING_MESSAGES = new Set([M_ABORT, M_FATAL, M_ERROR, M_ERROR_TERM]);
const MAX_IO = 0x7fffffff;
const NS_PER_S = 1_000_000_000n;

type Phase = 'idle' | 'backup' | 'restore';
type RestoreMode = 'extract' | 'core' | 'skip' | 'created';

function zeroStat(mode = 0, size = 0n, mtimeNs = 0n) {
  const time = { tv_sec: mtimeNs / NS_PER_S, tv_nsec: mtimeNs % NS_PER_S };
  return {
    st_dev: 0n, st_ino: 0n, st_nlink: 1n, st_mode: mode, st_uid: process.getuid?.() ?? 0, st_gid: process.getgid?.() ?? 0, pad0: 0,
    st_rdev: 0n, st_size: size, st_blksize: 4096n, st_blocks: 0n, st_atim: time, st_mtim: time, st_ctim: time, reserved: [0n, 0n, 0n],
  };
}

interface DecodedStat {
  st_mode: number;
  st_size: number | bigint;
  st_mtim: { tv_sec: number | bigint; tv_nsec: number | bigint };
  st_ctim: { tv_sec: number | bigint; tv_nsec: number | bigint };
}

function statTimeNs(time: DecodedStat['st_mtim']): bigint {
  return BigInt(time.tv_sec) * NS_PER_S + BigInt(time.tv_nsec);
}

/** Bacula's berrno flags on a child's status (berrno.h): the exit code or signal is in the low bits. */
const B_ERRNO_EXIT = 1 << 28;
const B_ERRNO_SIGNAL = 1 << 27;

/**
 * A message that ends in a Bacula child status (bpipe: "Error closing for file X: 268435459") says
 * what the number means: 268435459 is "exited with status 3".
 */
export function explainStatus(line: string): string {
  const match = /(\d{9,10})$/.exec(line);
  if (!match) return line;
  const value = Number(match[1]);
  if (value & B_ERRNO_EXIT) return `${line} (the command exited with status ${value & 0xffff})`;
  if (value & B_ERRNO_SIGNAL) return `${line} (the command was killed by signal ${value & 0xffff})`;
  return line;
}

/** A file whose data goes through pluginIO: a regular file, or an agent's virtual object. */
function hasData(file: AgentFileInfo): boolean {
  return file.kind === 'regular' || file.kind === 'virtual';
}

/** A plugin's pseudo path as an agentfd path: absolute, '/'-separated, no trailing '/'. */
function agentPath(fname: string): string {
  let p = fname.startsWith('/') ? fname : `/${fname}`;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

export class BaculaPluginSession implements AgentSession {
  readonly agent: BaculaPluginLibrary;
  readonly state: Uint8Array | null = null;
  readonly protocolErrors: string[] = [];
  private readonly options: SessionOptions;
  private readonly arena = new NativeArena();
  /** Per-file strings (the pseudo path, ofname): freed when the next file starts. */
  private fileArena = new NativeArena();
  private readonly ctx: bigint;
  private readonly eventPkt: bigint;
  private readonly sp: bigint;
  private readonly rp: bigint;
  private readonly io: bigint;
  private phase: Phase = 'idle';
  private pluginAlive = false;
  private jobEnded = false;
  private level: Level = 'full';
  private sinceNs = 0n;
  private where = '';
  private fileIndex = 0;
  /** JobMessages of the failing kinds not yet turned into an error. */
  private failures: string[] = [];
  // backup
  private command: string | null;
  private commandPtr: bigint | null;
  private more = true;
  private fileOpen: { path: string; fnamePtr: bigint; hasData: boolean } | null = null;
  private streamOpen = false;
  private readonly reported = new Set<string>();
  private readonly seenByPlugin = new Set<string>();
  private seenQueue: string[] | null = null;
  private readonly pluginExcludes: string[] = [];
  // restore
  private restoring: { file: AgentFileInfo; mode: RestoreMode; ofname: string } | null = null;
  private coreRun: RestoreRun | null = null;

  private constructor(agent: BaculaPluginLibrary, options: SessionOptions) {
    this.agent = agent;
    this.options = options;
    this.ctx = this.arena.alloc(16); // bpContext { bContext, pContext }
    this.eventPkt = this.arena.alloc(4);
    this.sp = this.arena.alloc(SavePkt.size);
    this.rp = this.arena.alloc(RestorePkt.size);
    this.io = this.arena.alloc(IoPkt.size);
    this.command = options.options?.command ?? null;
    this.commandPtr = this.arena.string(this.command);
    koffi.encode(this.ctx, 'void *', this.ctx); // bContext: our own pointer, never read by the plugin
  }

  static async open(agent: BaculaPluginLibrary, options: SessionOptions): Promise<BaculaPluginSession> {
    const session = new BaculaPluginSession(agent, options);
    attachContext(session.ctx, session.hostCallbacks());
    try {
      session.expectOk('newPlugin', await session.call('newPlugin', session.ctx));
      session.pluginAlive = true;
    } catch (error) {
      session.release();
      throw error;
    }
    return session;
  }

  // ---- calling the plugin -----------------------------------------------------------------------

  private call(entry: PluginEntryPoint, ...args: unknown[]): Promise<number> {
    const fn = this.agent.entry[entry];
    if (!fn) return Promise.reject(this.failure(entry, `the plugin has no ${entry}()`));
    this.options.onCall?.(entry);
    if (!this.options.offThread) {
      try {
        return Promise.resolve(fn(...args));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise((resolve, reject) => fn.async!(...args, (error: unknown, result: number) => (error ? reject(error) : resolve(result))));
  }

  private failure(entry: string, detail: string): AgentCallError {
    const said = this.failures.length > 0 ? `; it said: ${this.failures.splice(0).join(' | ')}` : '';
    return new AgentCallError(this.agent.name, entry, -1, `Bacula plugin "${this.agent.name}" failed in ${entry}(): ${detail}${said}`);
  }

  private expectOk(entry: string, rc: number, allowed: readonly number[] = [bRC.OK]): number {
    if (!allowed.includes(rc)) throw this.failure(entry, `it returned ${BRC_NAMES[rc] ?? rc}`);
    this.checkMessages(entry);
    return rc;
  }

  /** A failing JobMessage since the last look is the job's error. */
  private checkMessages(entry: string): void {
    if (this.failures.length > 0) throw this.failure(entry, 'it reported an error');
  }

  private async event(type: number, value: bigint | null = null): Promise<number> {
    koffi.encode(this.eventPkt, 'uint32_t', type);
    return this.call('handlePluginEvent', this.ctx, this.eventPkt, value);
  }

  private log(level: LogLevel, message: string): void {
    this.options.log?.(level, message);
  }

  // ---- what the plugin asks of the host ---------------------------------------------------------

  private hostCallbacks(): BaculaHostCallbacks {
    const putInt = (value: bigint, n: number) => (koffi.encode(value, 'int', n), bRC.OK);
    const putString = (value: bigint, text: string | null) => (koffi.encode(value, 'void *', this.arena.string(text)), bRC.OK);
    return {
      getValue: (variable, value) => {
        if (!value) return bRC.Error;
        switch (variable) {
          case bVar.JobId: return putInt(value, this.options.jobId ?? 0);
          case bVar.FDName: case bVar.Client: return putString(value, os.hostname());
          case bVar.Level: return putInt(value, LEVEL_CHARS[this.level].charCodeAt(0));
          case bVar.Type: return putInt(value, (this.phase === 'restore' ? 'R' : 'B').charCodeAt(0));
          case bVar.JobName: return putString(value, this.options.jobName);
          case bVar.JobStatus: return putInt(value, 'R'.charCodeAt(0));
          case bVar.SinceTime: return putInt(value, Number(this.sinceNs / NS_PER_S));
          case bVar.Accurate: return putInt(value, this.level === 'full' ? 0 : 1);
          case bVar.WorkingDir: return putString(value, os.tmpdir());
          case bVar.Where: return putString(value, this.where);
          case bVar.RegexWhere: case bVar.PrevJobName: return putString(value, null);
          case bVar.ExePath: return putString(value, path.dirname(process.execPath));
          case bVar.Version: return putString(value, `9.6.7 (agentfd ${HOST_VERSION})`);
          case bVar.DistName: return putString(value, `agentfd ${process.platform}`);
          case bVar.PrefixLinks: case bVar.InteractiveSession: return putInt(value, 0);
          case bVar.FileIndex: return putInt(value, this.fileIndex);
          case bVar.Replace: return putInt(value, 'a'.charCodeAt(0));
          default: return bRC.Error; // VSS variables (Windows only) and unknown numbers, as bacula-fd
        }
      },
      setValue: (variable, value) => {
        if (variable === bVar.FileSeen) {
          const name = readCString(value, 32 * 1024);
          if (!name.ok) return bRC.Error;
          this.seenByPlugin.add(agentPath(name.value));
          return bRC.OK;
        }
        return variable === bVar.InteractiveSession ? bRC.OK : bRC.Error;
      },
      message: (kind, type, text) => {
        const line = explainStatus(text.trim());
        if (kind === 1) {
          // As bacula-fd, the plugin's text as it is (plugins name themselves in their messages).
          if (FAILING_MESSAGES.has(type)) {
            this.failures.push(line);
            this.log('error', line);
          } else this.log(type === M_WARNING ? 'warning' : 'info', `${line}${MESSAGE_TYPES[type] && type !== 6 ? ` (${MESSAGE_TYPES[type]})` : ''}`);
        } else if (kind === 2) this.log('debug', line);
        else this.log('debug', `${this.agent.name}: registered events ${line}`);
      },
      fileset: (call, item, type) => {
        // A plugin job in agentfd has no File= walk for these to steer; AddExclude still applies
        // to what AcceptFile answers.
        if (call === 'AddExclude' && item) this.pluginExcludes.push(agentPath(item));
        this.log('debug', `${this.agent.name}: ${call}(${item ?? ''}${type !== null ? `, ${String.fromCharCode(type)}` : ''})`);
        return bRC.OK;
      },
      checkChanges: (sp) => {
        const pkt = koffi.decode(sp, SavePkt) as { statp: DecodedStat };
        if (this.level === 'full' || this.sinceNs === 0n) return bRC.OK;
        const changed = statTimeNs(pkt.statp.st_mtim) >= this.sinceNs || statTimeNs(pkt.statp.st_ctim) >= this.sinceNs;
        koffi.encode(sp, koffi.offsetof(SavePkt, 'accurate_found'), 'bool', !changed);
        return changed ? bRC.OK : bRC.Seen;
      },
      acceptFile: (sp) => {
        const name = readCString((koffi.decode(sp, SavePkt) as { fname: unknown }).fname, 32 * 1024);
        if (!name.ok) return bRC.Skip;
        const p = agentPath(name.value);
        const excluded = this.pluginExcludes.some((e) => p === e || p.startsWith(`${e}/`));
        return !excluded && (this.options.filesetCheck?.(p) ?? true) ? bRC.OK : bRC.Skip;
      },
      protocolError: (message) => this.protocolErrors.push(message),
    };
  }

  // ---- backup -----------------------------------------------------------------------------------

  private needCommand(what: string): bigint {
    if (this.commandPtr === null || this.command === null) {
      throw new AgentfdError('E_PLUGIN_COMMAND', `Bacula plugin "${this.agent.name}" needs its command string for ${what}: set plugin = "${this.agent.name}:..." in the job (or --option command=... at restore)`);
    }
    return this.commandPtr;
  }

  async backupPrepare(level: Level, sinceNs: bigint, _jobStartNs: bigint): Promise<Level> {
    const command = this.needCommand('a backup');
    this.phase = 'backup';
    this.level = level;
    this.sinceNs = level === 'full' ? 0n : sinceNs;
    await this.event(bEvent.JobStart, this.arena.string(`JobId=${this.options.jobId ?? 0} Job=${this.options.jobName}`));
    if (level !== 'full') await this.event(bEvent.Since, this.sinceNs / NS_PER_S);
    await this.event(bEvent.Level, BigInt(LEVEL_CHARS[level].charCodeAt(0)));
    await this.event(bEvent.PluginCommand, command); // its answer is not looked at by bacula-fd either; its messages are
    this.checkMessages('handlePluginEvent(bEventPluginCommand)');
    await this.event(bEvent.EndFileSet);
    await this.event(bEvent.StartBackupJob);
    this.expectOk('handlePluginEvent(bEventBackupCommand)', await this.event(bEvent.BackupCommand, command));
    return level;
  }

  async nextFile(): Promise<AgentFileInfo | null> {
    if (this.fileOpen) throw this.failure('startBackupFile', `called out of order: file ${this.fileOpen.path} has not ended`);
    if (this.more) {
      for (;;) {
        const file = await this.startFile();
        if (file !== 'skip') {
          if (file !== null) return file;
          break;
        }
      }
    }
    // Files the plugin marked seen (setBaculaValue bVarFileSeen) without sending them.
    this.seenQueue ??= [...this.seenByPlugin].filter((p) => !this.reported.has(p));
    const seen = this.seenQueue.shift();
    if (seen === undefined) return null;
    return { path: seen, kind: 'regular', linkTarget: null, mode: 0, seen: true, mtimeNs: 0n, size: null, winAttributes: 0, streams: [] };
  }

  /** One startBackupFile; null when the plugin has no more, 'skip' for a file it cannot give. */
  private async startFile(): Promise<AgentFileInfo | null | 'skip'> {
    this.fileArena.freeAll();
    koffi.encode(this.sp, SavePkt, {
      pkt_size: SavePkt.size, fname: null, link: null, statp: zeroStat(), type: 0, flags: 0n, no_read: false, portable: true,
      accurate_found: false, cmd: this.commandPtr, delta_seq: 0, object_name: null, object: null, object_len: 0, index: 0, LinkFI: 0, pkt_end: SavePkt.size,
    });
    const rc = await this.call('startBackupFile', this.ctx, this.sp);
    if (rc === bRC.Stop) {
      this.more = false;
      this.checkMessages('startBackupFile');
      return null;
    }
    this.expectOk('startBackupFile', rc);
    const sp = koffi.decode(this.sp, SavePkt) as { fname: unknown; link: unknown; statp: DecodedStat; type: number; no_read: boolean };
    if (sp.type === 0) throw this.failure('startBackupFile', 'no type in startBackupFile packet');
    if (sp.type === FT.RESTORE_FIRST || sp.type === FT.PLUGIN_CONFIG || sp.type === FT.PLUGIN_CONFIG_FILLED) {
      throw this.failure('startBackupFile', `it sent a restore object (type ${sp.type}), which agentfd does not support yet`);
    }
    const fname = readCString(sp.fname, 32 * 1024);
    if (!fname.ok) throw this.failure('startBackupFile', `the file name is ${fname.reason === 'null' ? 'missing (no fname in startBackupFile packet)' : fname.reason}`);
    const p = agentPath(fname.value);
    const problem = agentPathProblem(p);
    if (problem) throw this.failure('startBackupFile', `the file name ${JSON.stringify(fname.value)} is refused: ${problem}`);
    const kind = sp.type === FT.DIREND || sp.type === FT.DIRBEGIN ? 'directory' : sp.type === FT.LNK ? 'symlink' : sp.type === FT.REG || sp.type === FT.REGE ? 'regular' : null;
    if (kind === null) throw this.failure('startBackupFile', `${p}: file type ${sp.type} is not supported by agentfd's Bacula adapter (regular files, directories and symlinks are)`);
    let linkTarget: string | null = null;
    if (kind === 'symlink') {
      const link = readCString(sp.link, 32 * 1024);
      if (!link.ok) throw this.failure('startBackupFile', `${p}: a symlink without a valid target`);
      linkTarget = link.value;
    }
    const size = Number(sp.statp.st_size);
    const hasData = kind === 'regular' && !sp.no_read;
    this.fileOpen = { path: p, fnamePtr: this.fileArena.string(fname.value)!, hasData };
    this.fileIndex++;
    this.reported.add(p);
    return {
      path: p,
      kind,
      linkTarget,
      mode: sp.statp.st_mode & 0o7777,
      seen: false,
      mtimeNs: statTimeNs(sp.statp.st_mtim),
      size: size >= 0 ? size : null,
      winAttributes: 0,
      // The size a plugin states is not a promise (bpipe says -1): no size hint.
      streams: hasData ? [{ index: 0, type: 'data', name: 'data', sizeHint: null, rawRestorable: true }] : [],
    };
  }

  private ioPacket(func: number, fields: { count?: number; flags?: number; mode?: number; buf?: bigint | null; fname?: bigint | null; offset?: bigint; whence?: number }): void {
    koffi.encode(this.io, IoPkt, {
      pkt_size: IoPkt.size, func, count: fields.count ?? 0, flags: fields.flags ?? 0, mode: fields.mode ?? 0, buf: fields.buf ?? null,
      fname: fields.fname ?? null, status: func === IO.SEEK ? 0 : -1, io_errno: 0, lerror: 0, whence: fields.whence ?? 0,
      offset: fields.offset ?? 0n, win32: false, pkt_end: IoPkt.size,
    });
  }

  /** pluginIO, then its status; a failure names the errno the plugin set. */
  private async pluginIO(what: string, subject: string): Promise<number> {
    const rc = await this.call('pluginIO', this.ctx, this.io);
    const io = koffi.decode(this.io, IoPkt) as { status: number; io_errno: number };
    if (rc !== bRC.OK || io.status < 0) {
      const errno = io.io_errno ? ` (errno ${io.io_errno}${os.constants.errno ? `: ${Object.entries(os.constants.errno).find(([, n]) => n === io.io_errno)?.[0] ?? '?'}` : ''})` : '';
      throw this.failure('pluginIO', `${what} ${subject} failed${errno}, status ${io.status}, ${BRC_NAMES[rc] ?? rc}`);
    }
    this.checkMessages('pluginIO');
    return io.status;
  }

  async startStream(index: number): Promise<void> {
    const file = this.fileOpen;
    if (!file || !file.hasData || index !== 0 || this.streamOpen) throw this.failure('pluginIO', `called out of order: stream ${index} of ${file?.path ?? 'no file'}`);
    this.ioPacket(IO.OPEN, { flags: O_RDONLY, fname: file.fnamePtr });
    await this.pluginIO('IO_OPEN of', file.path);
    this.streamOpen = true;
  }

  async read(buffer: Uint8Array): Promise<number> {
    if (!this.streamOpen) throw this.failure('pluginIO', 'IO_READ called out of order: no stream is open');
    const count = Math.min(buffer.length, MAX_IO);
    this.ioPacket(IO.READ, { count, buf: koffi.address(buffer) as bigint });
    const n = await this.pluginIO('IO_READ of', this.fileOpen!.path);
    if (n > count) throw this.failure('pluginIO', `IO_READ claims ${n} bytes in a buffer of ${count}; its data cannot be trusted`);
    return n;
  }

  async endStream(): Promise<void> {
    if (!this.streamOpen) throw this.failure('pluginIO', 'IO_CLOSE called out of order: no stream is open');
    this.streamOpen = false;
    this.ioPacket(IO.CLOSE, {});
    await this.pluginIO('IO_CLOSE of', this.fileOpen!.path);
  }

  async endFile(): Promise<void> {
    if (!this.fileOpen || this.streamOpen) throw this.failure('endBackupFile', 'called out of order');
    this.fileOpen = null;
    const rc = this.expectOk('endBackupFile', await this.call('endBackupFile', this.ctx), [bRC.OK, bRC.More]);
    this.more = rc === bRC.More;
  }

  async stillExisting(paths: string[]): Promise<string[]> {
    const kept: string[] = [];
    for (const p of paths) {
      if (this.seenByPlugin.has(p)) {
        kept.push(p);
        continue;
      }
      if (!this.agent.entry.checkFile) continue;
      const rc = await this.call('checkFile', this.ctx, this.fileArena.string(p));
      if (rc === bRC.Seen) kept.push(p);
    }
    return kept;
  }

  private async endJob(): Promise<void> {
    if (this.jobEnded || this.phase === 'idle') return;
    this.jobEnded = true;
    await this.event(this.phase === 'backup' ? bEvent.EndBackupJob : bEvent.EndRestoreJob);
    await this.event(bEvent.JobEnd);
  }

  async backupFinish(_ok: boolean): Promise<void> {
    await this.endJob();
    this.checkMessages('handlePluginEvent(bEventEndBackupJob)');
  }

  // ---- restore ----------------------------------------------------------------------------------

  async restorePrepare(target: string | null, _sourceAbi: number, _sourceAgentVersion: string | null): Promise<void> {
    this.phase = 'restore';
    this.where = target ?? '';
    await this.event(bEvent.JobStart, this.arena.string(`JobId=${this.options.jobId ?? 0} Job=${this.options.jobName}`));
    await this.event(bEvent.StartRestoreJob);
    this.checkMessages('handlePluginEvent(bEventStartRestoreJob)');
  }

  async restoreStartFile(file: AgentFileInfo): Promise<void> {
    if (this.restoring) throw this.failure('startRestoreFile', `second call to startRestoreFile: ${this.restoring.file.path} has not ended`);
    const command = this.needCommand('a restore');
    const problem = agentPathProblem(file.path);
    if (problem) throw this.failure('createFile', `the saved path ${JSON.stringify(file.path)} is refused: ${problem}`);
    this.fileArena.freeAll();
    this.fileIndex++;
    this.expectOk('handlePluginEvent(bEventRestoreCommand)', await this.event(bEvent.RestoreCommand, command));
    this.expectOk('startRestoreFile', await this.call('startRestoreFile', this.ctx, command));
    // Bacula's ofname: where + the saved path (never outside `where`: the path has no "..").
    const ofname = this.where ? path.join(this.where, file.path) : file.path;
    const typeBits = file.kind === 'directory' ? S_IFDIR : file.kind === 'symlink' ? S_IFLNK : S_IFREG;
    koffi.encode(this.rp, RestorePkt, {
      pkt_size: RestorePkt.size, stream: STREAM_UNIX_ATTRIBUTES, data_stream: file.streams.length > 0 ? STREAM_FILE_DATA : 0,
      type: file.kind === 'directory' ? FT.DIREND : file.kind === 'symlink' ? FT.LNK : FT.REG, file_index: this.fileIndex, LinkFI: 0,
      uid: process.getuid?.() ?? 0, statp: zeroStat(typeBits | (file.mode & 0o7777), BigInt(file.size ?? 0), file.mtimeNs),
      attrEx: null, ofname: this.fileArena.string(ofname), olname: this.fileArena.string(file.linkTarget), where: this.arena.string(this.where),
      RegexWhere: null, replace: 'a'.charCodeAt(0), create_status: CF.ERROR, delta_seq: 0, pkt_end: RestorePkt.size,
    });
    this.expectOk('createFile', await this.call('createFile', this.ctx, this.rp));
    const status = koffi.decode(this.rp, koffi.offsetof(RestorePkt, 'create_status'), 'int32_t') as number;
    const modes: Record<number, RestoreMode> = { [CF.EXTRACT]: 'extract', [CF.CORE]: 'core', [CF.SKIP]: 'skip', [CF.CREATED]: 'created' };
    const mode = modes[status];
    if (!mode) throw this.failure('createFile', `create_status ${status} for ${file.path} (CF_ERROR: it could not create the file)`);
    this.restoring = { file, mode, ofname };
    if (mode === 'skip') this.log('info', `${this.agent.name}: skipped ${file.path} (createFile answered CF_SKIP)`);
    if (mode === 'created') this.expectOk('setFileAttributes', await this.call('setFileAttributes', this.ctx, this.rp));
    if (mode === 'core') {
      // The plugin leaves the file to the core: agentfd's own file writer, confined to the target.
      this.coreRun ??= await createFilesystemAgent().restore({ ...this.restoreRequestBase(), target: this.where });
      await this.coreRun.startFile(file);
    }
    if (mode === 'extract' && hasData(file)) {
      this.ioPacket(IO.OPEN, { flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600, fname: this.fileArena.string(ofname) });
      await this.pluginIO('IO_OPEN (write) of', file.path);
    }
  }

  private restoreRequestBase() {
    return {
      jobName: this.options.jobName, jobId: this.options.jobId ?? 0, options: {}, filesetCheck: () => true,
      log: (level: LogLevel, message: string) => this.log(level, message), isCancelled: () => this.options.isCancelled?.() ?? false,
      sourceAbi: 0, sourceAgentVersion: null,
    };
  }

  async restoreWrite(streamIndex: number, data: Uint8Array): Promise<void> {
    const r = this.restoring;
    if (!r) throw this.failure('pluginIO', 'IO_WRITE called out of order: no file is being restored');
    if (data.length === 0 || r.mode === 'skip' || r.mode === 'created') return;
    if (r.mode === 'core') return this.coreRun!.write(streamIndex, data);
    for (let at = 0; at < data.length; ) {
      const piece = data.subarray(at, Math.min(data.length, at + MAX_IO));
      this.ioPacket(IO.WRITE, { count: piece.length, buf: koffi.address(piece) as bigint });
      const written = await this.pluginIO('IO_WRITE of', r.file.path);
      if (written !== piece.length) throw this.failure('pluginIO', `IO_WRITE of ${r.file.path} wrote ${written} of ${piece.length} bytes`);
      at += piece.length;
    }
  }

  async restoreEndFile(ok: boolean): Promise<void> {
    const r = this.restoring;
    if (!r) throw this.failure('endRestoreFile', 'called out of order: no file is being restored');
    this.restoring = null;
    let failure: unknown = null;
    const attempt = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (error) {
        failure ??= error;
      }
    };
    if (r.mode === 'core') await attempt(() => this.coreRun!.endFile(ok));
    if (r.mode === 'extract') {
      // As bacula-fd: attributes first while the file is open, then IO_CLOSE (section 3.2).
      await attempt(async () => {
        this.expectOk('setFileAttributes', await this.call('setFileAttributes', this.ctx, this.rp));
        const status = koffi.decode(this.rp, koffi.offsetof(RestorePkt, 'create_status'), 'int32_t') as number;
        if (status === CF.CORE && hasData(r.file)) await this.coreAttributes(r);
      });
      if (hasData(r.file)) {
        await attempt(async () => {
          this.ioPacket(IO.CLOSE, {});
          await this.pluginIO('IO_CLOSE of', r.file.path);
        });
      }
    }
    await attempt(async () => this.expectOk('endRestoreFile', await this.call('endRestoreFile', this.ctx)));
    if (failure !== null) throw failure;
  }

  /** setFileAttributes answered CF_CORE: the core sets the saved mode and times on ofname. */
  private async coreAttributes(r: { file: AgentFileInfo; ofname: string }): Promise<void> {
    await chmod(r.ofname, r.file.mode & 0o7777).catch(() => undefined);
    const seconds = Number(r.file.mtimeNs / 1_000_000n) / 1000;
    if (seconds > 0) await utimes(r.ofname, seconds, seconds).catch(() => undefined);
  }

  async restoreFinish(): Promise<void> {
    if (this.restoring) await this.restoreEndFile(false);
    if (this.coreRun) {
      await this.coreRun.finish();
      await this.coreRun.close();
      this.coreRun = null;
    }
    await this.endJob();
    this.checkMessages('handlePluginEvent(bEventEndRestoreJob)');
  }

  // ---- end ----------------------------------------------------------------------------------------

  private release(): void {
    detachContext(this.ctx);
    this.fileArena.freeAll();
    this.arena.freeAll();
  }

  close(): void {
    if (this.pluginAlive) {
      this.pluginAlive = false;
      const fn = this.agent.entry;
      try {
        // bacula-fd delivers the end events even to a cancelled job, then frees the context.
        if (!this.jobEnded && this.phase !== 'idle') {
          this.jobEnded = true;
          if (this.phase === 'restore' && this.restoring) fn.endRestoreFile?.(this.ctx);
          koffi.encode(this.eventPkt, 'uint32_t', this.phase === 'backup' ? bEvent.EndBackupJob : bEvent.EndRestoreJob);
          fn.handlePluginEvent?.(this.ctx, this.eventPkt, null);
          koffi.encode(this.eventPkt, 'uint32_t', bEvent.JobEnd);
          fn.handlePluginEvent?.(this.ctx, this.eventPkt, null);
        }
        fn.freePlugin?.(this.ctx);
      } finally {
        void this.coreRun?.close();
        this.release();
      }
    }
  }
}
