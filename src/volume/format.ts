/**
 * Volume format 1: the on-disk layout of agentfd volumes. All integers are little-endian.
 *
 * A volume is an append-only file `<set>-<sequence, 4+ digits>.afv` (e.g. `agentfd-0001.afv`) in a
 * storage directory. It is only a container of framed, checksummed records; their payloads are
 * opaque bytes made and parsed by other modules. A volume alone is enough to rebuild the catalog,
 * and every volume says which format it is in, so a newer agentfd can read what an older one wrote.
 *
 * 1. Text header, bytes [0, 4096): UTF-8 text a person can read with `head -c 4096 VOLUME`, ending
 *    in "\n" and padded with NUL bytes to exactly 4096 bytes (the text is at most 4000 bytes):
 *
 *        agentfd volume, format 1
 *        label: <label>
 *        volume set: <set name>, volume <sequence number>
 *        created: <ISO 8601 UTC>
 *        written by: agentfd <version>
 *
 *        This file holds backup data written by agentfd. To restore from it:
 *          agentfd scan <this file> ...
 *        Without agentfd: records start at byte 4096; ...
 *        Record header (24 bytes, little-endian): ...
 *
 *    The first line is the format: a reader refuses (E_VOLUME_FORMAT) a format it does not know.
 *
 * 2. Records, from byte 4096 on, back to back, up to the end of the file. A record is a 24-byte
 *    header followed by `length` payload bytes:
 *
 *        offset size
 *         0     4   magic, ASCII "AFR1"
 *         4     1   type (RecordType; readers return unknown types as numbers, never reject them)
 *         5     1   codec of the payload (0 none, 1 gzip, 2 zstd)        opaque here, only stored
 *         6     1   cipher of the payload (0 none, 1 aes-256-gcm)       opaque here, only stored
 *         7     1   flags                                                opaque here, only stored
 *         8     4   session (u32): the job id the record belongs to; 0 for volume-level records
 *        12     4   seq (u32): the record's number within its session    opaque here, only stored
 *        16     4   length (u32): payload bytes, at most 64 MiB
 *        20     4   crc (u32): CRC-32 (zlib) of header bytes [0, 20) followed by the payload
 *
 *    Bytes [0, 16) of the header are the record's AAD (`recordAad`): an encrypting pipeline binds
 *    its AEAD tag to them, so a payload cannot be moved to another type/session/seq.
 *
 * 3. The first record of every volume is LABEL (session 0, seq 0). Its payload is UTF-8 JSON
 *    {"format":1,"label","set","sequence","created","agentfdVersion","headerSha256"}, where
 *    headerSha256 is the hex SHA-256 of the 4096 text header bytes (text and padding), so any
 *    altered byte of the text header is detected. Volumes written since agentfd 0.1 also carry
 *    "repository": the id of the storage directory they were made in (repository.ts), also shown
 *    in the text header as a line "repository: <id>" after "written by"; older volumes have
 *    neither and are read all the same.
 *
 * 4. VOLUME_END (session 0, seq 0) is the last record of a closed volume: written when a volume is
 *    full (rotation: the next volume follows) or at a final close. Its payload is UTF-8 JSON
 *    {"next": <label of the next volume or null>, "records": <records before it, LABEL included>,
 *    "bytes": <the file size before it = its own offset>}. A volume that does not end with
 *    VOLUME_END is open: its writer may still append (or crashed; see writer.ts).
 *
 * Readers must accept unknown JSON keys in LABEL and VOLUME_END, and unknown record types.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { AgentfdError } from '../errors.js';
import { corruptRecord, newerFormat, type RecordPlace } from './errors.js';
import { recordTypeName } from './record-type.js';

export { Cipher, Codec, RecordType, recordTypeName, type KnownRecordType, type RecordTypeName } from './record-type.js';

export const FORMAT_VERSION = 1;
/** Bytes of the text header; the first record starts here. */
export const TEXT_HEADER_SIZE = 4096;
/** Most bytes of text (before the NUL padding) in the text header. */
export const MAX_TEXT_BYTES = 4000;
export const RECORD_HEADER_SIZE = 24;
/** Bytes of a record header the AAD covers. */
export const RECORD_AAD_SIZE = 16;
export const RECORD_MAGIC = 'AFR1';
/** Largest payload of one record: 64 MiB. */
export const MAX_RECORD_PAYLOAD = 64 * 1024 * 1024;
export const VOLUME_EXTENSION = '.afv';
/** Longest label, in UTF-8 bytes. */
export const MAX_LABEL_BYTES = 200;

const MAGIC = Buffer.from(RECORD_MAGIC, 'ascii');
const FIRST_LINE = `agentfd volume, format `;
const U32_MAX = 0xffffffff;

/** The fields of a record header a writer chooses (length and crc follow from the payload). */
export interface RecordFields {
  type: number;
  codec?: number;
  cipher?: number;
  flags?: number;
  session: number;
  seq: number;
}

/** A decoded 24-byte record header. */
export interface RecordHeader {
  type: number;
  codec: number;
  cipher: number;
  flags: number;
  session: number;
  seq: number;
  /** Payload bytes. */
  length: number;
  crc: number;
}

function checkField(name: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new AgentfdError('E_VOLUME_RECORD', `cannot write a record whose ${name} is ${String(value)}: it must be an integer from 0 to ${max}`);
  }
  return value;
}

/** Refuses a payload larger than a record can hold, before anything is written. */
export function checkPayloadLength(type: number, length: number): void {
  if (length > MAX_RECORD_PAYLOAD) {
    throw new AgentfdError(
      'E_VOLUME_RECORD_TOO_LARGE',
      `cannot write a ${recordTypeName(type)} record of ${length} bytes: a volume record holds at most 64 MiB (${MAX_RECORD_PAYLOAD} bytes); ` +
        `split the data into smaller records (the pipeline writes CHUNK records of about 1 MiB)`,
    );
  }
}

function writeAadBytes(target: Buffer, fields: RecordFields): void {
  MAGIC.copy(target, 0);
  target.writeUInt8(checkField('type', fields.type, 255), 4);
  target.writeUInt8(checkField('codec', fields.codec ?? 0, 255), 5);
  target.writeUInt8(checkField('cipher', fields.cipher ?? 0, 255), 6);
  target.writeUInt8(checkField('flags', fields.flags ?? 0, 255), 7);
  target.writeUInt32LE(checkField('session', fields.session, U32_MAX), 8);
  target.writeUInt32LE(checkField('seq', fields.seq, U32_MAX), 12);
}

/**
 * The 16 bytes [0, 16) of a record header (magic, type, codec, cipher, flags, session, seq), which
 * an AEAD binds to. From a 24-byte header (as read) or from the fields (before the record exists).
 */
export function recordAad(header: Uint8Array | RecordFields): Buffer {
  if (header instanceof Uint8Array) {
    if (header.length < RECORD_AAD_SIZE) {
      throw new AgentfdError('E_VOLUME_RECORD', `a record header has ${RECORD_HEADER_SIZE} bytes; got ${header.length}`);
    }
    return Buffer.from(header.subarray(0, RECORD_AAD_SIZE));
  }
  const aad = Buffer.alloc(RECORD_AAD_SIZE);
  writeAadBytes(aad, header);
  return aad;
}

/** CRC-32 of header bytes [0, 20) followed by the payload. */
export function recordCrc(header: Uint8Array, payload: Uint8Array | readonly Uint8Array[]): number {
  let crc = crc32(header.subarray(0, 20));
  // Empty parts are skipped, not crc32(part, crc): Node 20's zlib.crc32 returns 0 for some empty
  // buffers (e.g. randomBytes(0)) instead of the running value.
  for (const part of payload instanceof Uint8Array ? [payload] : payload) if (part.length > 0) crc = crc32(part, crc);
  return crc;
}

/**
 * The 24-byte header of a record with these fields and this payload (length and CRC filled in).
 * The payload may be given in parts (written back to back), so a caller need not join them.
 */
export function encodeRecordHeader(fields: RecordFields, payload: Uint8Array | readonly Uint8Array[]): Buffer {
  const parts = payload instanceof Uint8Array ? [payload] : payload;
  let length = 0;
  for (const part of parts) length += part.length;
  checkPayloadLength(fields.type, length);
  const header = Buffer.alloc(RECORD_HEADER_SIZE);
  writeAadBytes(header, fields);
  header.writeUInt32LE(length, 16);
  header.writeUInt32LE(recordCrc(header, parts), 20);
  return header;
}

/**
 * Decodes a 24-byte record header. Checks the magic and the length limit (not the CRC, which
 * needs the payload: see checkRecordCrc); `place` says where it was read, for the error message.
 */
export function decodeRecordHeader(bytes: Uint8Array, place?: RecordPlace): RecordHeader {
  const where: RecordPlace = place ?? { path: '(buffer)', offset: 0, ordinal: 'a record' };
  if (bytes.length < RECORD_HEADER_SIZE) {
    throw corruptRecord(where, `a record header has ${RECORD_HEADER_SIZE} bytes, only ${bytes.length} were given`);
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, RECORD_HEADER_SIZE);
  if (!buf.subarray(0, 4).equals(MAGIC)) {
    throw corruptRecord(where, `bad magic: a record header starts with "AFR1" (hex 41465231), this one with hex ${buf.subarray(0, 4).toString('hex')}; either the bytes here were altered or the previous record's length was`);
  }
  const header: RecordHeader = {
    type: buf.readUInt8(4),
    codec: buf.readUInt8(5),
    cipher: buf.readUInt8(6),
    flags: buf.readUInt8(7),
    session: buf.readUInt32LE(8),
    seq: buf.readUInt32LE(12),
    length: buf.readUInt32LE(16),
    crc: buf.readUInt32LE(20),
  };
  if (header.length > MAX_RECORD_PAYLOAD) {
    throw corruptRecord({ ...where, type: header.type }, `length too large: the header gives a payload of ${header.length} bytes, more than the 64 MiB a record can hold`);
  }
  return header;
}

/** Whether `bytes` (fewer than 24, at the end of a file) could be the start of a record header. */
export function isMagicPrefix(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, MAGIC.length);
  return Buffer.from(bytes.buffer, bytes.byteOffset, n).equals(MAGIC.subarray(0, n));
}

function hex32(value: number): string {
  return '0x' + (value >>> 0).toString(16).padStart(8, '0');
}

/** Throws E_VOLUME_CORRUPT when the CRC stored in `header` is not the CRC of header + payload. */
export function checkRecordCrc(place: RecordPlace, header: Uint8Array, payload: Uint8Array, stored: number): void {
  const actual = recordCrc(header, payload);
  if (actual !== stored) {
    throw corruptRecord(place, `bad CRC (expected ${hex32(stored)} as stored in the header, actual ${hex32(actual)}): the record's header or payload was altered after it was written`);
  }
}

// ---- names -------------------------------------------------------------------------------------

const SET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Why `set` cannot be a volume set name (it becomes part of file names), or null. */
export function setNameProblem(set: string): string | null {
  if (typeof set !== 'string' || !SET_NAME.test(set)) {
    return 'a volume set name is 1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit';
  }
  return null;
}

/** Why `label` cannot be a volume label, or null. */
export function labelProblem(label: string): string | null {
  if (typeof label !== 'string' || label.length === 0) return 'a label cannot be empty';
  if (Buffer.byteLength(label, 'utf8') > MAX_LABEL_BYTES) return `a label is at most ${MAX_LABEL_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(label)) return 'a label cannot hold control characters (newline, NUL...)';
  if (Buffer.from(label, 'utf8').toString('utf8') !== label) return 'a label must be valid Unicode';
  return null;
}

/** `agentfd-0001.afv` for set "agentfd", sequence 1 (more digits past 9999). */
export function volumeFileName(set: string, sequence: number): string {
  return `${set}-${String(sequence).padStart(4, '0')}${VOLUME_EXTENSION}`;
}

/** { set, sequence } of a volume file name, or null when `name` is not one. */
export function parseVolumeFileName(name: string): { set: string; sequence: number } | null {
  const match = /^(.+)-(\d{4,})\.afv$/.exec(name);
  if (!match || !match[1] || !match[2]) return null;
  const sequence = Number(match[2]);
  if (!Number.isSafeInteger(sequence) || sequence < 1) return null;
  return { set: match[1], sequence };
}

// ---- text header and LABEL ---------------------------------------------------------------------

/** What the LABEL record says about its volume. */
export interface LabelInfo {
  format: number;
  label: string;
  set: string;
  sequence: number;
  /** ISO 8601 UTC. */
  created: string;
  agentfdVersion: string;
  /** Hex SHA-256 of the 4096 text header bytes. */
  headerSha256: string;
  /** The id of the storage directory the volume was made in; absent in older volumes. */
  repository?: string;
}

const RECORD_LAYOUT =
  'Record header (24 bytes, little-endian): magic "AFR1" [0-3], type u8 [4], codec u8 [5], cipher u8 [6], flags u8 [7], ' +
  'session u32 [8-11], seq u32 [12-15], payload length u32 [16-19], CRC-32 u32 [20-23] of header bytes 0-19 then the payload.';

/** The 4096-byte text header of a volume. Throws when the text would not fit in 4000 bytes. */
export function buildTextHeader(info: { label: string; set: string; sequence: number; created: string; agentfdVersion: string; repository?: string }): Buffer {
  const text = [
    `agentfd volume, format ${FORMAT_VERSION}`,
    `label: ${info.label}`,
    `volume set: ${info.set}, volume ${info.sequence}`,
    `created: ${info.created}`,
    `written by: agentfd ${info.agentfdVersion}`,
    ...(info.repository ? [`repository: ${info.repository}`] : []),
    '',
    'This file holds backup data written by agentfd. To restore from it:',
    '  agentfd scan <this file>              (adds its jobs to the catalog, if they are missing)',
    '  agentfd jobs                          (find the job id)',
    '  agentfd restore --job-id ID --to DIR  (add --key FILE for encrypted jobs)',
    `Without agentfd: records start at byte ${TEXT_HEADER_SIZE}; each is a 24-byte header (see below) and a payload.`,
    RECORD_LAYOUT,
  ].join('\n') + '\n';
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_TEXT_BYTES) {
    throw new AgentfdError(
      'E_VOLUME_OPTIONS',
      `the text header of volume ${info.label} would be ${bytes.length} bytes, more than the ${MAX_TEXT_BYTES} that fit; use a shorter label, set name or version string`,
    );
  }
  const header = Buffer.alloc(TEXT_HEADER_SIZE);
  bytes.copy(header);
  return header;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The LABEL payload for a volume whose text header is `textHeader`. */
export function buildLabelPayload(info: Omit<LabelInfo, 'format' | 'headerSha256'>, textHeader: Uint8Array): Buffer {
  const label: LabelInfo = {
    format: FORMAT_VERSION,
    label: info.label,
    set: info.set,
    sequence: info.sequence,
    created: info.created,
    agentfdVersion: info.agentfdVersion,
    headerSha256: sha256Hex(textHeader),
    ...(info.repository ? { repository: info.repository } : {}),
  };
  return Buffer.from(JSON.stringify(label), 'utf8');
}

/** The text of a text header: up to its first NUL. */
export function headerText(textHeader: Uint8Array): string {
  const buf = Buffer.from(textHeader.buffer, textHeader.byteOffset, textHeader.length);
  const end = buf.indexOf(0);
  return buf.subarray(0, end === -1 ? buf.length : end).toString('utf8');
}

/**
 * Checks the first line of a text header; returns the header's text and the format it states.
 * Throws E_VOLUME_CORRUPT when it is not the first line of an agentfd volume header. A format
 * other than 1 is returned, not refused: the caller decides (see readStart in reader.ts).
 */
export function checkTextHeader(file: string, textHeader: Uint8Array): { text: string; format: number } {
  const text = headerText(textHeader);
  const match = /^agentfd volume, format ([1-9]\d{0,8})\n/.exec(text);
  if (!match || !match[1]) {
    throw new AgentfdError(
      'E_VOLUME_CORRUPT',
      `volume ${file} is corrupt in its text header (bytes 0-4095): it does not start with the line "${FIRST_LINE}${FORMAT_VERSION}": ` +
        `the text header was altered, or this file is not an agentfd volume. Restore this volume from a copy if you have one`,
    );
  }
  return { text, format: Number(match[1]) };
}

function parseJson(payload: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The LABEL record's payload, checked (E_VOLUME_CORRUPT naming `place` when it is not valid,
 * E_VOLUME_FORMAT when its format is not 1). Unknown keys are ignored.
 */
export function parseLabelPayload(place: RecordPlace, payload: Uint8Array): LabelInfo {
  const value = parseJson(payload);
  const bad = (what: string) => corruptRecord(place, `the LABEL record's payload is not valid: ${what}`);
  if (!isRecord(value)) throw bad('it is not a JSON object');
  if (typeof value.format !== 'number' || !Number.isSafeInteger(value.format)) throw bad('"format" is not an integer');
  if (value.format > FORMAT_VERSION) throw newerFormat(place.path, value.format);
  if (value.format !== FORMAT_VERSION) throw bad(`"format" is ${value.format}`);
  for (const key of ['label', 'set', 'created', 'agentfdVersion', 'headerSha256'] as const) {
    if (typeof value[key] !== 'string') throw bad(`"${key}" is not a string`);
  }
  if (typeof value.sequence !== 'number' || !Number.isSafeInteger(value.sequence) || value.sequence < 1) throw bad('"sequence" is not a positive integer');
  if (!/^[0-9a-f]{64}$/.test(value.headerSha256 as string)) throw bad('"headerSha256" is not a hex SHA-256');
  if (value.repository !== undefined && typeof value.repository !== 'string') throw bad('"repository" is not a string');
  return {
    format: value.format,
    label: value.label as string,
    set: value.set as string,
    sequence: value.sequence,
    created: value.created as string,
    agentfdVersion: value.agentfdVersion as string,
    headerSha256: value.headerSha256 as string,
    ...(typeof value.repository === 'string' ? { repository: value.repository } : {}),
  };
}

/** Throws E_VOLUME_CORRUPT ("the text header was altered") when the header's hash is not the LABEL's. */
export function checkHeaderHash(file: string, textHeader: Uint8Array, label: LabelInfo): void {
  const actual = sha256Hex(textHeader);
  if (actual !== label.headerSha256) {
    throw new AgentfdError(
      'E_VOLUME_CORRUPT',
      `volume ${file} is corrupt in its text header (bytes 0-4095): header hash mismatch: the text header was altered ` +
        `(its SHA-256 is ${actual}, the LABEL record says ${label.headerSha256}). ` +
        `Its records may still be intact; restore this volume from a copy if you have one`,
    );
  }
}

/** What a VOLUME_END record says. */
export interface VolumeEndInfo {
  /** Label of the next volume of the set, or null when the set ends here. */
  next: string | null;
  /** Records before VOLUME_END, LABEL included. */
  records: number;
  /** File size before VOLUME_END (the VOLUME_END record's offset). */
  bytes: number;
}

export function buildVolumeEndPayload(end: VolumeEndInfo): Buffer {
  return Buffer.from(JSON.stringify({ next: end.next, records: end.records, bytes: end.bytes }), 'utf8');
}

/** A VOLUME_END payload, checked (E_VOLUME_CORRUPT naming `place` when it is not valid). */
export function parseVolumeEndPayload(place: RecordPlace, payload: Uint8Array): VolumeEndInfo {
  const value = parseJson(payload);
  const bad = (what: string) => corruptRecord(place, `the VOLUME_END record's payload is not valid: ${what}`);
  if (!isRecord(value)) throw bad('it is not a JSON object');
  const next = value.next;
  if (next !== null && typeof next !== 'string') throw bad('"next" is neither a label nor null');
  for (const key of ['records', 'bytes'] as const) {
    const n = value[key];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw bad(`"${key}" is not a count`);
  }
  return { next, records: value.records as number, bytes: value.bytes as number };
}
