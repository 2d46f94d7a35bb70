/**
 * What VolumeWriter.open does with the last volume of a set before appending to it: find out
 * whether it is closed, open with a valid tail, or torn by a crash, and cut a torn tail off.
 *
 * Synchronous on purpose (VolumeWriter.open returns the writer directly). Cheap: the walk reads
 * record headers only, through a small window, and verifies the CRC of the last records only.
 *
 * A tail looks torn when, after the last record that checks out:
 * - the file ends inside a record (an incomplete header or payload), or
 * - the last records fail their CRC (checked backwards, up to MAX_TORN_RECORDS of them), or
 * - only NUL bytes follow (a file system that grew the file but did not write the data).
 * A length field is never trusted on its own: one flipped bit in the length of a record in the
 * middle makes the rest of the volume look like an incomplete payload. So before anything is cut,
 * two proofs that the bytes are a crash's leftovers and not damage are required:
 * - no sound record (magic, plausible length, right CRC) starts anywhere after the cut point: a
 *   crash leaves nothing whole after the record it interrupted, damage does;
 * - every session the caller says is finished in this volume (the catalog's jobs there) keeps its
 *   sound SESSION_END before the cut point: a committed job is never cut, whatever the bytes say.
 * A volume that fails either proof, or is damaged anywhere else (a bad header in the middle
 * followed by data, a bad text header or LABEL), is never modified: the writer leaves it as it is
 * and starts the next volume.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import {
  checkTextHeader,
  decodeRecordHeader,
  FORMAT_VERSION,
  MAX_RECORD_PAYLOAD,
  parseLabelPayload,
  RECORD_HEADER_SIZE,
  RECORD_MAGIC,
  recordCrc,
  RecordType,
  sha256Hex,
  TEXT_HEADER_SIZE,
  type LabelInfo,
} from './format.js';

/** How many records at the end may fail their CRC and still count as a torn tail. */
const MAX_TORN_RECORDS = 64;
const WALK_WINDOW = 16 * 1024;
const CHUNK = 1024 * 1024;
const MAGIC = Buffer.from(RECORD_MAGIC, 'ascii');

export type LastVolumeState =
  /** Empty (0 bytes) or torn while it was created (before its LABEL was complete): reuse it from scratch. */
  | { state: 'fresh'; truncatedBytes: number }
  /** Valid and not closed: append at `size`. */
  | { state: 'open'; label: LabelInfo; size: number; records: number; truncatedBytes: number }
  /** Ends with VOLUME_END: start the next volume. */
  | { state: 'closed'; label: LabelInfo; truncatedBytes: number }
  /** Damaged before its tail (or in a newer format): leave it alone, start the next volume. */
  | { state: 'damaged'; reason: string };

/**
 * The sessions whose records the catalog places in this volume (jobs that finished there): their
 * records are never cut. `label` is null when the volume's LABEL cannot be read.
 */
export type ProtectedSessions = (volume: { path: string; label: string | null }) => readonly number[];

/** A SESSION_END record the walk passed. */
interface SessionEndSeen {
  session: number;
  offset: number;
  end: number;
}

class SyncFile {
  private buf = Buffer.allocUnsafe(WALK_WINDOW);
  private start = 0;
  private end = 0;

  constructor(
    readonly fd: number,
    readonly size: number,
  ) {}

  readAt(target: Buffer, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, target, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** Bytes [pos, pos + n), n <= WALK_WINDOW, valid until the next call (shorter at the end of the file). */
  view(pos: number, n: number): Buffer {
    if (pos >= this.start && pos + n <= this.end) return this.buf.subarray(pos - this.start, pos - this.start + n);
    const got = this.readAt(this.buf, Math.min(WALK_WINDOW, Math.max(0, this.size - pos)), pos);
    this.start = pos;
    this.end = pos + got;
    return this.buf.subarray(0, Math.min(n, got));
  }

  /** A fresh copy of [pos, pos + n) (shorter at the end of the file). */
  copy(pos: number, n: number): Buffer {
    const target = Buffer.allocUnsafe(n);
    return target.subarray(0, this.readAt(target, n, pos));
  }

  /** Whether the CRC of the complete record at `offset` is right; reads its payload in 1 MiB chunks. */
  crcOk(offset: number): boolean {
    const header = this.copy(offset, RECORD_HEADER_SIZE);
    if (header.length < RECORD_HEADER_SIZE) return false;
    const length = header.readUInt32LE(16);
    if (length > MAX_RECORD_PAYLOAD) return false;
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, length)));
    let crc = recordCrc(header, new Uint8Array(0));
    let done = 0;
    while (done < length) {
      const n = this.readAt(chunk, Math.min(chunk.length, length - done), offset + RECORD_HEADER_SIZE + done);
      if (n === 0) return false;
      crc = crc32(chunk.subarray(0, n), crc);
      done += n;
    }
    return crc === header.readUInt32LE(20);
  }

  /**
   * The offset of the first sound record (magic, a length that fits the file, right CRC) that
   * starts at or after `from`, or null. Reads [from, size) once; a CRC is computed only where the
   * magic is found.
   */
  soundRecordFrom(from: number): number | null {
    const overlap = MAGIC.length - 1;
    const chunk = Buffer.allocUnsafe(CHUNK + overlap);
    for (let pos = from; pos < this.size; pos += CHUNK) {
      const n = this.readAt(chunk, Math.min(chunk.length, this.size - pos), pos);
      if (n === 0) break;
      for (let at = chunk.subarray(0, n).indexOf(MAGIC); at !== -1 && at < CHUNK; at = chunk.subarray(0, n).indexOf(MAGIC, at + 1)) {
        if (this.crcOk(pos + at)) return pos + at;
      }
    }
    return null;
  }

  /** Whether [pos, size) holds only NUL bytes. */
  zerosFrom(pos: number): boolean {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, this.size - pos)));
    while (pos < this.size) {
      const n = this.readAt(chunk, Math.min(chunk.length, this.size - pos), pos);
      if (n === 0) return true;
      for (let i = 0; i < n; i++) if (chunk[i] !== 0) return false;
      pos += n;
    }
    return true;
  }
}

/** Whether the first bytes of a file could be the start of a volume header agentfd was writing. */
function looksLikeOurStart(bytes: Buffer): boolean {
  const expected = Buffer.from('agentfd volume, format ', 'utf8');
  const n = Math.min(bytes.length, expected.length);
  if (bytes.subarray(0, n).equals(expected.subarray(0, n))) return true;
  return bytes.every((b) => b === 0);
}

function cut(file: SyncFile, to: number): number {
  if (to < file.size) {
    ftruncateSync(file.fd, to);
    fsyncSync(file.fd);
  }
  return file.size - to;
}

/**
 * Why the volume may not be cut at byte `to` (see the file comment), or null when it may: a sound
 * record after `to` proves damage, and a finished session must keep its SESSION_END.
 */
function whyNotCut(file: SyncFile, to: number, ends: readonly SessionEndSeen[], protectedSessions: readonly number[]): string | null {
  const sound = file.soundRecordFrom(to + 1);
  if (sound !== null) {
    return `the record at byte ${to} is damaged, yet a sound record follows at byte ${sound}: this is damage inside the volume, not a tail torn by a crash`;
  }
  for (const session of protectedSessions) {
    if (!ends.some((e) => e.session === session && e.end <= to && file.crcOk(e.offset))) {
      return `the record at byte ${to} is damaged, and cutting the volume there would remove records of job ${session}, which the catalog records as finished in this volume`;
    }
  }
  return null;
}

function inspect(file: SyncFile, filePath: string, protect: ProtectedSessions | undefined): LastVolumeState {
  const size = file.size;
  if (size === 0) return { state: 'fresh', truncatedBytes: 0 };

  // ---- text header and LABEL: torn while the volume was created, or damaged ----
  const start = file.copy(0, Math.min(size, TEXT_HEADER_SIZE + RECORD_HEADER_SIZE));
  const tornAtCreation = (): LastVolumeState | null => {
    if (!looksLikeOurStart(start)) return null;
    // A volume is created with its text header and LABEL in one write: if anything sound follows,
    // or the catalog has jobs in it, the LABEL was damaged later, and the volume is not cut.
    const refused = size > TEXT_HEADER_SIZE ? whyNotCut(file, TEXT_HEADER_SIZE, [], protect?.({ path: filePath, label: null }) ?? []) : null;
    if (refused) return { state: 'damaged', reason: `its LABEL record is damaged or incomplete; ${refused}` };
    return { state: 'fresh', truncatedBytes: cut(file, 0) };
  };
  if (size < TEXT_HEADER_SIZE + RECORD_HEADER_SIZE) {
    return tornAtCreation() ?? { state: 'damaged', reason: 'it is too short to be a volume and does not start like one' };
  }
  const textHeader = start.subarray(0, TEXT_HEADER_SIZE);
  let format: number;
  try {
    format = checkTextHeader('', textHeader).format;
  } catch {
    format = 0;
  }
  if (format !== FORMAT_VERSION) return { state: 'damaged', reason: 'its text header is not that of a format 1 volume' };
  const place = { path: '', offset: TEXT_HEADER_SIZE, ordinal: 'record 1' };
  let labelLength: number;
  try {
    const header = decodeRecordHeader(start.subarray(TEXT_HEADER_SIZE), place);
    if (header.type !== RecordType.LABEL) return { state: 'damaged', reason: 'its first record is not a LABEL record' };
    labelLength = header.length;
  } catch {
    return tornAtCreation() ?? { state: 'damaged', reason: 'its LABEL record header is damaged' };
  }
  const labelEnd = TEXT_HEADER_SIZE + RECORD_HEADER_SIZE + labelLength;
  if (labelEnd > size) return tornAtCreation() ?? { state: 'damaged', reason: 'its LABEL record is incomplete' };
  if (!file.crcOk(TEXT_HEADER_SIZE)) {
    if (labelEnd === size) return tornAtCreation() ?? { state: 'damaged', reason: 'its LABEL record fails its CRC' };
    return { state: 'damaged', reason: 'its LABEL record fails its CRC' };
  }
  let label: LabelInfo;
  try {
    label = parseLabelPayload(place, file.copy(TEXT_HEADER_SIZE + RECORD_HEADER_SIZE, labelLength));
  } catch {
    return { state: 'damaged', reason: 'its LABEL record is not valid (or is in a newer format)' };
  }
  if (sha256Hex(textHeader) !== label.headerSha256) return { state: 'damaged', reason: 'its text header was altered' };

  // ---- walk the record headers ----
  let pos = labelEnd;
  let records = 1;
  const tail: { offset: number; type: number }[] = [];
  const ends: SessionEndSeen[] = [];
  while (pos < size) {
    const remaining = size - pos;
    if (remaining < RECORD_HEADER_SIZE) break; // an incomplete header: torn
    const bytes = file.view(pos, RECORD_HEADER_SIZE);
    if (bytes.length < RECORD_HEADER_SIZE) break;
    const length = bytes.readUInt32LE(16);
    if (!bytes.subarray(0, 4).equals(MAGIC) || length > MAX_RECORD_PAYLOAD) {
      if (file.zerosFrom(pos)) break; // NUL bytes after the last record: torn
      return { state: 'damaged', reason: `the record at byte ${pos} is damaged and data follows it` };
    }
    if (RECORD_HEADER_SIZE + length > remaining) break; // an incomplete payload: torn
    tail.push({ offset: pos, type: bytes.readUInt8(4) });
    if (bytes.readUInt8(4) === RecordType.SESSION_END) ends.push({ session: bytes.readUInt32LE(8), offset: pos, end: pos + RECORD_HEADER_SIZE + length });
    if (tail.length > MAX_TORN_RECORDS) tail.shift();
    records++;
    pos += RECORD_HEADER_SIZE + length;
  }

  // ---- the last records must pass their CRC ----
  let end = pos;
  for (;;) {
    const last = tail[tail.length - 1];
    if (!last || file.crcOk(last.offset)) break;
    end = last.offset;
    tail.pop();
    records--;
    if (tail.length === 0 && records > 1) {
      return { state: 'damaged', reason: `more than ${MAX_TORN_RECORDS} records at its end fail their CRC` };
    }
  }

  if (end < size) {
    const refused = whyNotCut(file, end, ends, protect?.({ path: filePath, label: label.label }) ?? []);
    if (refused) return { state: 'damaged', reason: refused };
  }
  const truncatedBytes = cut(file, end);
  const lastType = tail[tail.length - 1]?.type ?? RecordType.LABEL;
  if (lastType === RecordType.VOLUME_END) return { state: 'closed', label, truncatedBytes };
  return { state: 'open', label, size: end, records, truncatedBytes };
}

/**
 * Inspects the last volume of a set and cuts off a torn tail. Throws the file system's error when
 * the file cannot be opened, read or truncated (the caller reports it).
 */
export function prepareLastVolume(path: string, protect?: ProtectedSessions): LastVolumeState {
  const fd = openSync(path, 'r+');
  try {
    return inspect(new SyncFile(fd, fstatSync(fd).size), path, protect);
  } finally {
    closeSync(fd);
  }
}

/**
 * The offset of the first sound record (magic, a length that fits, right CRC) at or after byte
 * `from` of a volume, or null: where reading can go on after damage (agentfd scan).
 */
export function findSoundRecord(path: string, from: number): number | null {
  const fd = openSync(path, 'r');
  try {
    return new SyncFile(fd, fstatSync(fd).size).soundRecordFrom(from);
  } finally {
    closeSync(fd);
  }
}
