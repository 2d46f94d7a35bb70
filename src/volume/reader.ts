/**
 * Reading volumes: the text header and LABEL (readVolumeHeader), every record in order
 * (readRecords), and the volumes of a storage directory (findVolumes). Needs no catalog.
 *
 * Reads go through a 4 MiB window, so small records cost no system call each; a record larger
 * than the window is read into its own buffer. Memory stays bounded (window + one record of at
 * most 64 MiB) whatever the file holds, and a length is only trusted once the file is known to be
 * long enough. Anything wrong is an AgentfdError (E_VOLUME_CORRUPT, E_VOLUME_FORMAT,
 * E_VOLUME_MISSING, E_VOLUME_READ), never another exception.
 */
import { constants } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AgentfdError } from '../errors.js';
import { findSoundRecord } from './recover.js';
import { corruptHeader, corruptRecord, newerFormat, readFailed, truncatedRecord, type RecordPlace } from './errors.js';
import {
  checkHeaderHash,
  checkRecordCrc,
  checkTextHeader,
  decodeRecordHeader,
  FORMAT_VERSION,
  isMagicPrefix,
  parseLabelPayload,
  parseVolumeEndPayload,
  parseVolumeFileName,
  RECORD_HEADER_SIZE,
  RecordType,
  TEXT_HEADER_SIZE,
  VOLUME_EXTENSION,
  type LabelInfo,
  type RecordHeader,
} from './format.js';

const READ_WINDOW = 4 * 1024 * 1024;

/** One record as read from a volume. `header` and `payload` are the reader's own copies. */
export interface VolumeRecord extends Omit<RecordHeader, 'length' | 'crc'> {
  /** Label of the volume (from its LABEL record). */
  volume: string;
  path: string;
  /** Byte offset of the record header in the file. */
  offset: number;
  /** The 24 header bytes (recordAad(header) gives the AEAD's AAD). */
  header: Buffer;
  payload: Buffer;
}

export interface VolumeHeader {
  /** The text of the text header (without its NUL padding). */
  text: string;
  label: LabelInfo;
}

export interface ReadRecordsOptions {
  /** Byte offset of a record header to start at; default 4096 (the LABEL record). */
  from?: number;
  /** Check the text header against the LABEL's SHA-256 (default true). */
  verifyHeader?: boolean;
}

/** Reads of a FileHandle through a window; `size` is the file size when it was opened. */
class Window {
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly file: string,
    readonly size: number,
  ) {}

  private async readInto(target: Buffer, length: number, position: number): Promise<number> {
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(target, done, length - done, position + done));
      } catch (error) {
        throw readFailed(this.file, error);
      }
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  /**
   * Bytes [pos, pos + n) of the file (fewer only when the file ended early), valid until the next
   * call. n must be at most READ_WINDOW.
   */
  async view(pos: number, n: number): Promise<Buffer> {
    if (this.buf && pos >= this.start && pos + n <= this.end) return this.buf.subarray(pos - this.start, pos - this.start + n);
    this.buf ??= Buffer.allocUnsafe(Math.max(1, Math.min(READ_WINDOW, this.size)));
    const want = Math.min(this.buf.length, Math.max(0, this.size - pos));
    const got = await this.readInto(this.buf, want, pos);
    this.start = pos;
    this.end = pos + got;
    return this.buf.subarray(0, Math.min(n, got));
  }

  /** A fresh buffer with bytes [pos, pos + n) (shorter when the file ended early). */
  async copy(pos: number, n: number): Promise<Buffer> {
    if (n <= READ_WINDOW) return Buffer.from(await this.view(pos, n));
    const target = Buffer.allocUnsafe(n);
    const got = await this.readInto(target, n, pos);
    return got === n ? target : target.subarray(0, got);
  }
}

async function openVolume(file: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    // Non-blocking, so that a FIFO given as a volume is refused below instead of waiting for a
    // writer forever (O_NONBLOCK changes nothing for a regular file; Windows has no FIFOs).
    handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    throw readFailed(file, error);
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new AgentfdError('E_VOLUME_READ', `cannot read volume ${file}: it is a directory, not a volume file`);
    if (!stat.isFile()) {
      throw new AgentfdError('E_VOLUME_READ', `cannot read volume ${file}: it is ${stat.isFIFO() ? 'a FIFO (named pipe)' : 'a device or socket'}, not a volume file`);
    }
    return { handle, size: stat.size };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw readFailed(file, error);
  }
}

function ordinalFor(from: number): (n: number) => string {
  return from === TEXT_HEADER_SIZE ? (n) => `record ${n}` : (n) => `record ${n} counted from byte ${from}`;
}

/**
 * The header of the record at `place.offset`, checked, with the whole record known to be in the
 * file; throws E_VOLUME_CORRUPT (bad magic, length too large, truncated) otherwise.
 */
async function readRecordHeader(window: Window, place: RecordPlace): Promise<{ header: RecordHeader; bytes: Buffer }> {
  const remaining = window.size - place.offset;
  const bytes = Buffer.from(await window.view(place.offset, Math.min(RECORD_HEADER_SIZE, remaining)));
  if (bytes.length < RECORD_HEADER_SIZE) {
    if (!isMagicPrefix(bytes)) {
      throw corruptRecord(place, `bad magic: the file ends with ${bytes.length} bytes (hex ${bytes.toString('hex')}) that are not the start of a record header`);
    }
    throw truncatedRecord(bytes.length > 4 ? { ...place, type: bytes.readUInt8(4) } : place, bytes.length, RECORD_HEADER_SIZE);
  }
  const header = decodeRecordHeader(bytes, place);
  const total = RECORD_HEADER_SIZE + header.length;
  if (total > remaining) throw truncatedRecord({ ...place, type: header.type }, remaining, total);
  return { header, bytes };
}

async function readPayload(window: Window, place: RecordPlace, header: RecordHeader, headerBytes: Buffer): Promise<Buffer> {
  const payload = await window.copy(place.offset + RECORD_HEADER_SIZE, header.length);
  if (payload.length < header.length) {
    // The file shrank while it was read.
    throw truncatedRecord(place, RECORD_HEADER_SIZE + payload.length, RECORD_HEADER_SIZE + header.length);
  }
  checkRecordCrc(place, headerBytes, payload, header.crc);
  return payload;
}

async function readStart(window: Window, file: string, verifyHeader: boolean): Promise<VolumeHeader> {
  if (window.size < TEXT_HEADER_SIZE) {
    throw corruptHeader(file, `the file is ${window.size} bytes long, shorter than the ${TEXT_HEADER_SIZE}-byte text header: the volume is truncated, or this file is not an agentfd volume`);
  }
  const textHeader = Buffer.from(await window.view(0, TEXT_HEADER_SIZE));
  if (textHeader.length < TEXT_HEADER_SIZE) throw corruptHeader(file, 'the file ended while its text header was read: the volume is truncated');
  const { text, format } = checkTextHeader(file, textHeader);
  const place: RecordPlace = { path: file, offset: TEXT_HEADER_SIZE, ordinal: 'record 1' };
  let label: LabelInfo;
  try {
    const { header, bytes } = await readRecordHeader(window, place);
    const labelPlace = { ...place, type: header.type };
    if (header.type !== RecordType.LABEL) {
      throw corruptRecord(labelPlace, 'the first record of a volume must be its LABEL record');
    }
    const payload = await readPayload(window, labelPlace, header, bytes);
    label = parseLabelPayload(labelPlace, payload);
  } catch (error) {
    // A newer format may frame its LABEL differently: say so rather than "corrupt".
    if (format !== FORMAT_VERSION && error instanceof AgentfdError && error.code === 'E_VOLUME_CORRUPT') throw newerFormat(file, format);
    throw error;
  }
  if (verifyHeader) checkHeaderHash(file, textHeader, label);
  if (format !== label.format) {
    throw corruptHeader(file, `the text header says format ${format}, the LABEL record format ${label.format}: the text header was altered`);
  }
  return { text, label };
}

/**
 * The text header and LABEL of a volume, checked: the first line, the LABEL record (magic, type,
 * CRC, JSON) and the text header's SHA-256 against the LABEL.
 */
export async function readVolumeHeader(file: string): Promise<VolumeHeader> {
  const { handle, size } = await openVolume(file);
  try {
    return await readStart(new Window(handle, file, size), file, true);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Every record of a volume in order, from `from` (default: the LABEL record at 4096) to the end of
 * the file, each checked (magic, length, CRC). VOLUME_END records are also checked against their
 * position. Unknown record types are returned with their number. Stops with E_VOLUME_CORRUPT at
 * the first bad record, after yielding every record before it.
 */
export async function* readRecords(file: string, options: ReadRecordsOptions = {}): AsyncGenerator<VolumeRecord, void, undefined> {
  const from = options.from ?? TEXT_HEADER_SIZE;
  if (!Number.isSafeInteger(from) || from < TEXT_HEADER_SIZE) {
    throw new AgentfdError('E_VOLUME_OFFSET', `cannot read volume ${file} from byte ${String(from)}: records start at byte ${TEXT_HEADER_SIZE} or later`);
  }
  const { handle, size } = await openVolume(file);
  try {
    const window = new Window(handle, file, size);
    const start = await readStart(window, file, options.verifyHeader !== false);
    const volume = start.label.label;
    if (from > size) {
      throw corruptRecord(
        { path: file, offset: from, ordinal: 'the record asked for' },
        `the volume is truncated: the file is only ${size} bytes long, so it has no record at byte ${from}`,
      );
    }
    const ordinal = ordinalFor(from);
    let pos = from;
    let count = 0;
    while (pos < size) {
      count++;
      const place: RecordPlace = { path: file, offset: pos, ordinal: ordinal(count) };
      const { header, bytes } = await readRecordHeader(window, place);
      const typed = { ...place, type: header.type };
      const payload = await readPayload(window, typed, header, bytes);
      if (header.type === RecordType.VOLUME_END) {
        const end = parseVolumeEndPayload(typed, payload);
        if (end.bytes !== pos) {
          throw corruptRecord(typed, `the VOLUME_END record says it is at byte ${end.bytes}: records before it were added or removed`);
        }
        if (from === TEXT_HEADER_SIZE && end.records !== count - 1) {
          throw corruptRecord(typed, `the VOLUME_END record counts ${end.records} records before it, the volume holds ${count - 1}: records before it were added or removed`);
        }
      }
      yield {
        volume,
        path: file,
        offset: pos,
        type: header.type,
        codec: header.codec,
        cipher: header.cipher,
        flags: header.flags,
        session: header.session,
        seq: header.seq,
        header: bytes,
        payload,
      };
      pos += RECORD_HEADER_SIZE + header.length;
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The one record whose header is at `offset` (e.g. where the catalog says a job starts). */
export async function readRecordAt(file: string, offset: number, options: { verifyHeader?: boolean } = {}): Promise<VolumeRecord> {
  for await (const record of readRecords(file, { from: offset, verifyHeader: options.verifyHeader ?? true })) return record;
  throw corruptRecord({ path: file, offset, ordinal: 'the record asked for' }, 'the volume is truncated: the file ends at this offset, there is no record here');
}

/**
 * Every sound record of a volume, going on past damage: where readRecords stops at a bad record,
 * reading resumes at the next sound record (magic, length and CRC right) after it, and
 * `onDamage` is told what was skipped. Damage in the text header or LABEL still throws, as does
 * damage with nothing sound after it. For agentfd scan: the sessions after the damage are whole.
 */
export async function* readRecordsPastDamage(file: string, onDamage: (message: string) => void): AsyncGenerator<VolumeRecord, void, undefined> {
  let from: number | undefined;
  let resume = 0; // where the bytes after the last record read start
  for (;;) {
    try {
      for await (const record of readRecords(file, from === undefined ? {} : { from })) {
        resume = record.offset + RECORD_HEADER_SIZE + record.payload.length;
        yield record;
      }
      return;
    } catch (error) {
      const next = resume > 0 && error instanceof AgentfdError && error.code === 'E_VOLUME_CORRUPT' ? findSoundRecord(file, resume + 1) : null;
      if (next === null) throw error;
      onDamage(`${(error as AgentfdError).message}; reading went on at the next sound record, at byte ${next} (${next - resume} bytes were skipped)`);
      from = next;
    }
  }
}

/** Reading one volume; the same as the functions above, bound to a path. */
export class VolumeReader {
  constructor(readonly path: string) {}

  header(): Promise<VolumeHeader> {
    return readVolumeHeader(this.path);
  }

  records(options?: ReadRecordsOptions): AsyncGenerator<VolumeRecord, void, undefined> {
    return readRecords(this.path, options);
  }

  [Symbol.asyncIterator](): AsyncGenerator<VolumeRecord, void, undefined> {
    return readRecords(this.path);
  }
}

/**
 * The volume files (`<set>-<sequence>.afv`) in a storage directory, as paths sorted by set name
 * then sequence number; only those of `set` when given. E_VOLUME_MISSING when `dir` does not exist.
 */
export async function findVolumes(dir: string, set?: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT') {
      throw new AgentfdError('E_VOLUME_MISSING', `the storage directory ${dir} does not exist: check the path (and that its disk is mounted)`);
    }
    throw new AgentfdError('E_VOLUME_READ', `cannot list the storage directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  const volumes: { name: string; set: string; sequence: number }[] = [];
  for (const name of names) {
    if (!name.endsWith(VOLUME_EXTENSION)) continue;
    const parsed = parseVolumeFileName(name);
    if (!parsed || (set !== undefined && parsed.set !== set)) continue;
    volumes.push({ name, ...parsed });
  }
  volumes.sort((a, b) => (a.set < b.set ? -1 : a.set > b.set ? 1 : a.sequence - b.sequence || (a.name < b.name ? -1 : 1)));
  return volumes.map((v) => path.join(dir, v.name));
}
