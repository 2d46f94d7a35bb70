/**
 * Writing a volume set: `<set>-0001.afv`, `<set>-0002.afv`, ... in a storage directory.
 *
 * - open() continues the set: it appends to the last volume when it is not closed (after cutting
 *   off a tail torn by a crash, reported in `recovered`), or starts the next one.
 * - append() frames a record and returns where it is. Small records are batched in a 1 MiB
 *   buffer; a record that does not fit is written together with the buffer in one writev. Writes
 *   run behind the caller, one at a time (a second buffer fills meanwhile), and a datasync is
 *   started in the background every SYNC_EVERY bytes, so the disk works while the job does and the
 *   commit's sync() has little left to do. A payload handed to append() must not change until
 *   sync(), flush() or close() has resolved. Offsets are the true file offsets even while a record
 *   is still in a buffer.
 * - A volume is rotated before a record that would take it past maxVolumeBytes (room is kept for
 *   its VOLUME_END record); a record is never split, and a record larger than a volume is written
 *   alone in a fresh volume (which then exceeds maxVolumeBytes).
 * - Calls are serialized: concurrent append() calls are written in call order.
 * - Any write error (ENOSPC...) leaves the writer failed: the call that sees it (a later append(),
 *   at the latest sync() or close()) and every later one reject with the same E_VOLUME_WRITE error.
 *   The next open() cuts the partial record off.
 *
 * One writer per set at a time: a new volume is created exclusively, so a second writer that
 * races to the same volume fails (E_VOLUME_WRITE) instead of interleaving, but nothing else locks.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AgentfdError } from '../errors.js';
import { writeFailed } from './errors.js';
import {
  buildLabelPayload,
  buildTextHeader,
  buildVolumeEndPayload,
  encodeRecordHeader,
  labelProblem,
  parseVolumeFileName,
  RECORD_HEADER_SIZE,
  RecordType,
  setNameProblem,
  VOLUME_EXTENSION,
  volumeFileName,
  type RecordFields,
} from './format.js';
import { prepareLastVolume, type LastVolumeState, type ProtectedSessions } from './recover.js';
import { IS_WINDOWS } from '../platform/os.js';

/** Bytes batched in memory before a write. */
export const WRITE_BUFFER_BYTES = 1024 * 1024;
/** A background datasync starts after this many bytes were written since the last one. */
const SYNC_EVERY = 64 * 1024 * 1024;
/** Room kept at the end of every volume for its VOLUME_END record (labels are at most 200 bytes). */
export const VOLUME_END_RESERVE = RECORD_HEADER_SIZE + 512;
/** Smallest maxVolumeBytes accepted. */
export const MIN_VOLUME_BYTES = 8192;

export interface VolumeWriterOptions {
  /** The storage directory (created when missing). */
  dir: string;
  /** The volume set: volumes are `<set>-<sequence>.afv`. */
  set: string;
  /** Size at which a volume is closed and the next one started. */
  maxVolumeBytes: number;
  /** Written into every volume's text header and LABEL. */
  agentfdVersion: string;
  /** The label of volume `sequence`; default: its file name without `.afv`. */
  labelFor?: (sequence: number) => string;
  /**
   * The sessions (job ids) the catalog records as finished in a volume: open() never cuts their
   * records off the last volume, whatever its bytes say (see recover.ts).
   */
  protectedSessions?: ProtectedSessions;
  /** The storage directory's repository id (storageRepository()), written into every new volume's LABEL. */
  repository?: string;
}

export interface AppendRecord extends RecordFields {
  /** The payload, or its parts (written back to back: no need to join them first). */
  payload: Uint8Array | readonly Uint8Array[];
}

export interface AppendResult {
  /** Label of the volume the record is in. */
  volume: string;
  path: string;
  /** Byte offset of the record header in the volume. */
  offset: number;
  /** Header + payload bytes. */
  length: number;
}

/** A tail cut off by open(). */
export interface RecoveredTail {
  volume: string;
  path: string;
  truncatedBytes: number;
}

/** A last volume open() found damaged and left alone (the writer started the next one). */
export interface AbandonedVolume {
  path: string;
  reason: string;
}

interface Current {
  sequence: number;
  path: string;
  label: string;
  /** File size including buffered bytes. */
  size: number;
  /** Records including buffered ones, LABEL included. */
  records: number;
  handle: FileHandle | null;
  /** The file does not exist yet: it is created (exclusively) by the first write. */
  create: boolean;
  /** A VOLUME_END of the previous volume names it: it must exist even if empty. */
  announced: boolean;
  /** The directory entry must be synced. */
  dirDirty: boolean;
}

function optionsError(message: string): AgentfdError {
  return new AgentfdError('E_VOLUME_OPTIONS', message);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class VolumeWriter {
  readonly dir: string;
  readonly set: string;
  readonly maxVolumeBytes: number;
  /** The torn tail open() cut off the last volume, or null. */
  readonly recovered: RecoveredTail | null;
  /** The last volume open() found damaged and did not append to, or null. */
  readonly abandoned: AbandonedVolume | null;
  /**
   * What open() did to the last volume, for the job's output: a cut torn tail, or a damaged volume
   * left untouched while the set goes on in a new one. Empty when there was nothing to say.
   */
  readonly warnings: readonly string[];

  private readonly agentfdVersion: string;
  private readonly repository: string | undefined;
  private readonly labelFor: (sequence: number) => string;
  private current: Current;
  private pending = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  /** The other buffer: being written while `pending` fills. */
  private spare = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  private pendingLength = 0;
  /** The write running in the background (at most one), and a background datasync. */
  private writing: Promise<void> | null = null;
  private syncing: Promise<void> | null = null;
  private unsyncedBytes = 0;
  private failure: AgentfdError | null = null;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  /** Calls queued or running; append() takes a synchronous path when there are none. */
  private queued = 0;

  private constructor(options: VolumeWriterOptions, labelFor: (sequence: number) => string) {
    this.dir = options.dir;
    this.set = options.set;
    this.maxVolumeBytes = options.maxVolumeBytes;
    this.agentfdVersion = options.agentfdVersion;
    this.repository = options.repository;
    this.labelFor = labelFor;
    const last = VolumeWriter.lastSequence(options.dir, options.set);
    let recovered: RecoveredTail | null = null;
    let abandoned: AbandonedVolume | null = null;
    let current: Current | null = null;
    if (last !== null) {
      const file = path.join(options.dir, volumeFileName(options.set, last));
      let state: LastVolumeState;
      try {
        state = prepareLastVolume(file, options.protectedSessions);
      } catch (error) {
        throw writeFailed(file, error, `continue the volume set ${options.set} in volume ${file}`);
      }
      if (state.state === 'fresh') {
        current = this.startVolume(last, false, false);
        if (state.truncatedBytes > 0) recovered = { volume: current.label, path: file, truncatedBytes: state.truncatedBytes };
      } else if (state.state === 'open') {
        current = {
          sequence: last, path: file, label: state.label.label, size: state.size, records: state.records,
          handle: null, create: false, announced: true, dirDirty: false,
        };
        if (state.truncatedBytes > 0) recovered = { volume: state.label.label, path: file, truncatedBytes: state.truncatedBytes };
      } else if (state.state === 'closed') {
        if (state.truncatedBytes > 0) recovered = { volume: state.label.label, path: file, truncatedBytes: state.truncatedBytes };
      } else {
        abandoned = { path: file, reason: state.reason };
      }
    }
    this.current = current ?? this.startVolume((last ?? 0) + 1, true, false);
    this.recovered = recovered;
    this.abandoned = abandoned;
    this.warnings = VolumeWriter.describe(recovered, abandoned, this.current.path);
  }

  private static describe(recovered: RecoveredTail | null, abandoned: AbandonedVolume | null, next: string): string[] {
    const warnings: string[] = [];
    if (recovered) {
      warnings.push(
        `volume ${recovered.path} ended with ${recovered.truncatedBytes} bytes that an interrupted job was writing (a torn tail); ` +
          'they were cut off before appending (no finished job had records there)',
      );
    }
    if (abandoned) {
      warnings.push(
        `volume ${abandoned.path} is damaged: ${abandoned.reason}. It was left exactly as it is (nothing was cut or appended to it) ` +
          `and the volume set goes on in the new volume ${next}. Run agentfd verify on the jobs it holds, and restore it from a copy if you have one`,
      );
    }
    return warnings;
  }

  /**
   * A writer continuing the volume set `set` in `dir` (see the file comment). Synchronous: it
   * reads only the record headers of the last volume. Throws E_VOLUME_OPTIONS for bad options and
   * E_VOLUME_WRITE when the directory or last volume cannot be used.
   */
  static open(options: VolumeWriterOptions): VolumeWriter {
    const problem = setNameProblem(options.set);
    if (problem) throw optionsError(`cannot write the volume set ${JSON.stringify(options.set)}: ${problem}`);
    if (!Number.isSafeInteger(options.maxVolumeBytes) || options.maxVolumeBytes < MIN_VOLUME_BYTES) {
      throw optionsError(`maxVolumeBytes is ${String(options.maxVolumeBytes)}: it must be an integer of at least ${MIN_VOLUME_BYTES} bytes`);
    }
    if (typeof options.agentfdVersion !== 'string' || options.agentfdVersion === '') throw optionsError('agentfdVersion must be a non-empty string');
    try {
      mkdirSync(options.dir, { recursive: true });
    } catch (error) {
      throw writeFailed(options.dir, error, `create the storage directory ${options.dir}`);
    }
    const labelFor = options.labelFor ?? ((sequence: number) => volumeFileName(options.set, sequence).slice(0, -VOLUME_EXTENSION.length));
    return new VolumeWriter(options, labelFor);
  }

  private static lastSequence(dir: string, set: string): number | null {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (error) {
      throw writeFailed(dir, error, `list the storage directory ${dir}`);
    }
    let last: number | null = null;
    for (const name of names) {
      const parsed = parseVolumeFileName(name);
      if (parsed && parsed.set === set && (last === null || parsed.sequence > last)) last = parsed.sequence;
    }
    return last;
  }

  private label(sequence: number): string {
    const label = this.labelFor(sequence);
    const problem = labelProblem(label);
    if (problem) throw optionsError(`labelFor(${sequence}) returned ${JSON.stringify(label)}: ${problem}`);
    return label;
  }

  /** Volume `sequence`, with its text header and LABEL record put in the (empty) write buffer. */
  private startVolume(sequence: number, create: boolean, announced: boolean): Current {
    const { volume, start } = this.prepareVolume(sequence, create, announced);
    start.copy(this.pending, 0);
    this.pendingLength = start.length;
    return volume;
  }

  /** Volume `sequence` and its first bytes (text header and LABEL record); nothing is written yet. */
  private prepareVolume(sequence: number, create: boolean, announced: boolean): { volume: Current; start: Buffer } {
    const label = this.label(sequence);
    const created = new Date().toISOString();
    const info = { label, set: this.set, sequence, created, agentfdVersion: this.agentfdVersion, ...(this.repository ? { repository: this.repository } : {}) };
    const textHeader = buildTextHeader(info);
    const payload = buildLabelPayload(info, textHeader);
    const header = encodeRecordHeader({ type: RecordType.LABEL, session: 0, seq: 0 }, payload);
    const start = Buffer.concat([textHeader, header, payload]);
    const volume: Current = {
      sequence, path: path.join(this.dir, volumeFileName(this.set, sequence)), label, size: start.length, records: 1,
      handle: null, create, announced, dirDirty: false,
    };
    return { volume, start };
  }

  /** The volume being written: its label, path, sequence and size (buffered bytes included). */
  get volume(): { label: string; path: string; sequence: number; size: number } {
    const { label, path: file, sequence, size } = this.current;
    return { label, path: file, sequence, size };
  }

  /** Runs `op` after every earlier call, unless the writer failed or is closed. */
  private run<T>(op: () => Promise<T>, whenClosed: () => T | Promise<T>): Promise<T> {
    this.queued++;
    const result = this.queue.then(async () => {
      try {
        if (this.failure) throw this.failure;
        if (this.closed) return await whenClosed();
        return await op();
      } finally {
        this.queued--;
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private fail(error: unknown): AgentfdError {
    if (!this.failure) {
      this.failure = writeFailed(this.current.path, error);
      const handle = this.current.handle;
      this.current.handle = null;
      handle?.close().catch(() => undefined);
    }
    return this.failure;
  }

  /** Runs file-system work; any error fails the writer. */
  private async io<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw this.fail(error);
    }
  }

  private async handle(): Promise<FileHandle> {
    const current = this.current;
    if (!current.handle) {
      current.handle = await openFile(current.path, current.create ? 'ax' : 'a');
      if (current.create) {
        current.create = false;
        current.dirDirty = true;
      }
    }
    return current.handle;
  }

  /** Writes all of `buffers` (looping over short writes). */
  private static async writeAll(handle: FileHandle, buffers: Buffer[]): Promise<number> {
    let rest = buffers.filter((b) => b.length > 0);
    let total = 0;
    while (rest.length > 0) {
      const { bytesWritten } = await handle.writev(rest);
      if (bytesWritten <= 0) throw new Error('the write wrote nothing');
      total += bytesWritten;
      let skip = bytesWritten;
      const next: Buffer[] = [];
      for (const b of rest) {
        if (skip >= b.length) skip -= b.length;
        else {
          next.push(skip > 0 ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      rest = next;
    }
    return total;
  }

  /** Wait for the background write; its failure (already recorded) is thrown here. */
  private async settle(): Promise<void> {
    if (this.writing) await this.writing;
    if (this.failure) throw this.failure;
  }

  /**
   * Start writing the buffered bytes followed by `extra` in the background, after the previous
   * write; the buffers swap, so records keep being batched meanwhile. Resolves once started.
   */
  private async launch(extra: readonly Buffer[] = []): Promise<void> {
    if (this.pendingLength === 0 && extra.length === 0) return;
    await this.settle();
    const handle = await this.handle();
    const buffers = [this.pending.subarray(0, this.pendingLength), ...extra];
    [this.pending, this.spare] = [this.spare, this.pending];
    this.pendingLength = 0;
    const write = VolumeWriter.writeAll(handle, buffers).then(
      (written) => {
        this.unsyncedBytes += written;
        if (this.unsyncedBytes >= SYNC_EVERY && !this.syncing) {
          // Start the disk on what was written so far, without waiting for it here.
          this.unsyncedBytes = 0;
          this.syncing = handle.datasync().then(
            () => void (this.syncing = null),
            (error: unknown) => void this.fail(error),
          );
        }
      },
      (error: unknown) => void this.fail(error),
    );
    this.writing = write;
  }

  /** Everything buffered is in the file (not necessarily on disk). */
  private async writeOut(): Promise<void> {
    await this.launch();
    await this.settle();
  }

  /** Adds a framed record after everything written so far (to the buffer when it fits). */
  private async put(header: Buffer, parts: readonly Buffer[], total: number): Promise<void> {
    if (this.pendingLength + total > WRITE_BUFFER_BYTES) {
      if (total > WRITE_BUFFER_BYTES / 2) {
        // Large: written after the buffer in one writev, without copying the payload.
        await this.launch([header, ...parts]);
        return;
      }
      await this.launch();
    }
    this.copyIn(header, parts);
  }

  /** Copy a framed record into the buffer (the caller made sure it fits). */
  private copyIn(header: Buffer, parts: readonly Buffer[]): void {
    header.copy(this.pending, this.pendingLength);
    this.pendingLength += header.length;
    for (const part of parts) {
      part.copy(this.pending, this.pendingLength);
      this.pendingLength += part.length;
    }
  }

  private async syncCurrent(): Promise<void> {
    const current = this.current;
    await this.settle();
    if (this.syncing) await this.syncing;
    if (this.failure) throw this.failure;
    if (current.handle) await current.handle.datasync();
    this.unsyncedBytes = 0;
    // A new file's directory entry is made durable by syncing the directory, on POSIX systems.
    // Windows cannot open a directory for that (FlushFileBuffers on one is refused with EPERM);
    // NTFS journals the entry itself.
    if (current.dirDirty && IS_WINDOWS) current.dirDirty = false;
    if (current.dirDirty) {
      const dir = await openFile(this.dir, 'r');
      try {
        await dir.sync();
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EBADF' && code !== 'EISDIR') throw error;
      } finally {
        await dir.close();
      }
      current.dirDirty = false;
    }
  }

  private async writeVolumeEnd(next: string | null): Promise<void> {
    const current = this.current;
    const payload = buildVolumeEndPayload({ next, records: current.records, bytes: current.size });
    const header = encodeRecordHeader({ type: RecordType.VOLUME_END, session: 0, seq: 0 }, payload);
    await this.put(header, [payload], header.length + payload.length);
    current.size += header.length + payload.length;
    current.records++;
  }

  /** Closes the current volume with a VOLUME_END naming the next one, and starts the next one. */
  private async rotate(): Promise<void> {
    // Everything that can be refused (a bad label, a text header too long) is checked before anything
    // is written, so it rejects this append without failing the writer.
    const next = this.prepareVolume(this.current.sequence + 1, true, true);
    await this.io(async () => {
      await this.writeVolumeEnd(next.volume.label);
      await this.writeOut();
      await this.syncCurrent();
      const handle = this.current.handle;
      this.current.handle = null;
      await handle?.close();
    });
    this.current = next.volume;
    next.start.copy(this.pending, 0);
    this.pendingLength = next.start.length;
  }

  /**
   * Appends a record; resolves once it is written or buffered, with where it is. Rejects with
   * E_VOLUME_RECORD(_TOO_LARGE) for an invalid record (the writer stays usable) and with
   * E_VOLUME_WRITE when writing fails (the writer is then failed).
   */
  append(record: AppendRecord): Promise<AppendResult> {
    let header: Buffer;
    let parts: Buffer[];
    try {
      const given = record.payload instanceof Uint8Array ? [record.payload] : record.payload;
      if (!Array.isArray(given) || !given.every((p) => p instanceof Uint8Array)) {
        throw new AgentfdError('E_VOLUME_RECORD', 'cannot write a record whose payload is not a Uint8Array (or an array of them)');
      }
      parts = given.map(asBuffer);
      header = encodeRecordHeader(record, parts);
    } catch (error) {
      return Promise.reject(error instanceof AgentfdError ? error : new AgentfdError('E_VOLUME_RECORD', `cannot write the record: ${String(error)}`));
    }
    const total = header.length + header.readUInt32LE(16);
    // The common case for small records: nothing queued, and the record fits the buffer without a
    // rotation: copy it in now. (A promise chain per record cost more than a small file's record.)
    const current = this.current;
    if (
      this.queued === 0 && !this.failure && !this.closed && this.pendingLength + total <= WRITE_BUFFER_BYTES &&
      !(current.records > 1 && current.size + total + VOLUME_END_RESERVE > this.maxVolumeBytes)
    ) {
      const offset = current.size;
      this.copyIn(header, parts);
      current.size += total;
      current.records++;
      return Promise.resolve({ volume: current.label, path: current.path, offset, length: total });
    }
    return this.run(
      async () => {
        if (this.current.records > 1 && this.current.size + total + VOLUME_END_RESERVE > this.maxVolumeBytes) await this.rotate();
        const current = this.current;
        const offset = current.size;
        await this.io(() => this.put(header, parts, total));
        current.size += total;
        current.records++;
        return { volume: current.label, path: current.path, offset, length: total };
      },
      () => {
        throw new AgentfdError('E_VOLUME_CLOSED', `cannot append to volume set ${this.set} in ${this.dir}: its writer is closed; open a new VolumeWriter`);
      },
    );
  }

  /** Writes the buffered records to the file (no fdatasync). */
  flush(): Promise<void> {
    return this.run(() => this.io(() => this.writeOut()), () => undefined);
  }

  /** flush() then fdatasync: what is appended so far survives a crash. Call it when a job commits. */
  sync(): Promise<void> {
    return this.run(
      () =>
        this.io(async () => {
          await this.writeOut();
          await this.syncCurrent();
        }),
      () => undefined,
    );
  }

  /**
   * Flushes, writes VOLUME_END {next: null} when `final` (the set can be continued by a later
   * writer either way: after a final close it starts a new volume), syncs and closes the file.
   * A volume this writer started that holds nothing but its LABEL is not created at all.
   */
  close(options: { final: boolean }): Promise<void> {
    const result = this.run(
      () =>
        this.io(async () => {
          const current = this.current;
          this.closed = true;
          if (current.create && !current.announced && current.records === 1) {
            this.pendingLength = 0;
            return;
          }
          if (options.final) await this.writeVolumeEnd(null);
          await this.writeOut();
          await this.syncCurrent();
          const handle = current.handle;
          current.handle = null;
          await handle?.close();
        }),
      () => undefined,
    );
    // A failed writer still releases its file.
    return result.catch((error: unknown) => {
      this.closed = true;
      const handle = this.current.handle;
      this.current.handle = null;
      handle?.close().catch(() => undefined);
      throw error;
    });
  }
}
