/**
 * What each record of a backup session carries, and how its payload is sealed. Shared by the
 * writer (backup) and the readers (restore, verify, scan), so both sides agree byte for byte.
 *
 * - SESSION_START / SESSION_CONTINUE / SESSION_END: JSON in clear. They hold nothing about the
 *   data but what a reader needs to open it (the cipher, the wrapped data keys, the signer) and the
 *   outcome (status, counts, the signed manifest digest).
 * - SESSION_INFO, FILE, STREAM_END, FILE_END, STATE: JSON (STATE: raw bytes), sealed with the job's
 *   data key when the job is encrypted, so names and metadata are as private as the data.
 * - FILE_WHOLE (format 2): a small file whole, sealed as one payload: a u32 length, the JSON of
 *   {file: FileRecord, streams: WholeStream[]}, then each stream's stored (compressed) bytes back to
 *   back. Readers turn it into the same events as the four kinds of records it replaces.
 * - CHUNK: a 16-byte prefix (file, stream and chunk index, plaintext length) then the compressed
 *   bytes, sealed. The AEAD's additional data is the record header (type, codec, job, sequence
 *   number), the job's UUID and the prefix: a chunk cannot be moved to another file, stream or
 *   position, relabelled, or replayed into another job.
 */
import { AgentfdError } from '../errors.js';
import { open, seal, sealParts } from '../crypto/aead.js';
import type { KeyStanza } from '../crypto/envelope.js';
import { recordAad, RecordType, type RecordFields } from '../volume/format.js';
import { isLevel, type AgentStreamInfo, type FileKind, type Level } from '../agents/types.js';
import { CHUNK_SIZE } from './stream-encoder.js';

/**
 * 2: sessions may hold FILE_WHOLE records. 3: the manifest is v2 (it covers every metadata record:
 * sink/manifest.ts). Readers accept every format up to this one.
 */
export const SESSION_FORMAT = 3;

export interface SessionStart {
  format: number;
  jobId: number;
  uuid: string;
  startedNs: string;
  level: Level;
  cipher: 'none' | 'aes-256-gcm';
  compression: string;
  stanzas: KeyStanza[];
  signer: { publicKey: string; fingerprint: string } | null;
  agentfdVersion: string;
}

export interface SessionInfo {
  jobName: string;
  agent: { name: string; version: string | null; abi: number; kind: string; capabilities: readonly string[] };
  /** The options the agent was given: the same for every file of the session. */
  options: Record<string, string>;
  requestedLevel: Level;
  deliveredLevel: Level;
  referenceJob: { id: number; uuid: string } | null;
  fileset: { include: string[]; exclude: string[] };
}

export interface FileRecord {
  fileIndex: number;
  path: string;
  kind: FileKind;
  mode: number;
  mtimeNs: string;
  size: number | null;
  linkTarget: string | null;
  seen: boolean;
  winAttributes: number;
  /** The agent that saved the file (with its options in SESSION_INFO). */
  agent: { name: string; version: string | null; abi: number };
  streams: AgentStreamInfo[];
}

export interface StreamEnd {
  fileIndex: number;
  streamIndex: number;
  chunks: number;
  bytes: number;
  sha256: string;
}

export interface FileEnd {
  fileIndex: number;
  status: 'ok' | 'failed';
  error: string | null;
}

/** The ACCURATE record: what disappeared, or moved, since the reference job (jobs/accurate.ts). */
export interface AccurateRecord {
  deleted: { path: string; kind: string }[];
  renamed: { from: string; to: string }[];
}

export interface SessionEnd {
  /** aborted: the agent crashed, hung or was cancelled; failed: a file or the sink failed. */
  status: 'committed' | 'failed' | 'aborted';
  endedNs: string;
  files: number;
  failedFiles: number;
  bytes: number;
  storedBytes: number;
  records: number;
  manifestSha256: string;
  signature: string | null;
  error: string | null;
}

/** One stream of a FILE_WHOLE record: where its bytes are, how they are stored, what they hash to. */
export interface WholeStream {
  index: number;
  codec: number;
  plainLength: number;
  storedLength: number;
  sha256: string;
}

export interface WholeFile {
  file: FileRecord;
  streams: WholeStream[];
}

export interface ChunkPrefix {
  fileIndex: number;
  streamIndex: number;
  chunkIndex: number;
  plainLength: number;
}

export const CHUNK_PREFIX_SIZE = 16;

/**
 * The most plaintext one chunk holds: the writer cuts streams into chunks of CHUNK_SIZE (1 MiB,
 * stream-encoder.ts) and puts at most 64 KiB in a FILE_WHOLE record. A record that claims more is
 * damaged or forged, and is refused before anything is decompressed or allocated for it.
 */
export const MAX_CHUNK_PLAINTEXT = CHUNK_SIZE;

/** Refuses a chunk whose claimed plaintext is larger than any chunk agentfd writes. */
function checkClaim(claimed: number, what: string, whose: string): void {
  if (!Number.isSafeInteger(claimed) || claimed < 0 || claimed > MAX_CHUNK_PLAINTEXT) {
    throw new AgentfdError(
      'E_CORRUPT_DATA',
      `${what}: ${whose} claims ${String(claimed)} bytes of plaintext, more than the ${MAX_CHUNK_PLAINTEXT} bytes (1 MiB) of the largest chunk agentfd writes: ` +
        'the record is damaged or forged, so it was not decompressed; restore the volume from a copy if you have one',
    );
  }
}

export function encodeChunkPrefix(p: ChunkPrefix): Buffer {
  const b = Buffer.alloc(CHUNK_PREFIX_SIZE);
  b.writeUInt32LE(p.fileIndex, 0);
  b.writeUInt16LE(p.streamIndex, 4);
  b.writeUInt32LE(p.chunkIndex, 8);
  b.writeUInt32LE(p.plainLength, 12);
  return b;
}

export function decodeChunkPrefix(payload: Uint8Array): ChunkPrefix {
  if (payload.length < CHUNK_PREFIX_SIZE) throw new AgentfdError('E_CORRUPT_DATA', `a CHUNK record of ${payload.length} bytes is shorter than its prefix`);
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return { fileIndex: b.readUInt32LE(0), streamIndex: b.readUInt16LE(4), chunkIndex: b.readUInt32LE(8), plainLength: b.readUInt32LE(12) };
}

/** Seals and opens the payloads of one session: knows the job's UUID and, when encrypted, its key. */
export class SessionCodec {
  readonly uuid: Buffer;
  readonly key: Buffer | null;

  constructor(uuid: string, key: Buffer | null) {
    this.uuid = Buffer.from(uuid.replace(/-/g, ''), 'hex');
    if (this.uuid.length !== 16) throw new AgentfdError('E_CORRUPT_DATA', `session UUID ${uuid} is not a UUID`);
    this.key = key;
  }

  get cipherId(): number {
    return this.key ? 1 : 0;
  }

  private aad(fields: RecordFields, extra?: Uint8Array): Buffer {
    return Buffer.concat(extra ? [recordAad(fields), this.uuid, extra] : [recordAad(fields), this.uuid]);
  }

  /** Payload of a metadata record (JSON object, or raw bytes for STATE). */
  sealMeta(fields: RecordFields, body: unknown): Buffer {
    return this.sealPlain(fields, metaPlain(body));
  }

  /** Seal a metadata record's plaintext (metaPlain()): the writer hashes the same bytes into the manifest. */
  sealPlain(fields: RecordFields, plain: Buffer): Buffer {
    return this.key ? seal(this.key, this.aad(fields), plain) : plain;
  }

  openMeta(fields: RecordFields, payload: Uint8Array, what: string): Buffer {
    if (fields.cipher !== this.cipherId) {
      throw new AgentfdError('E_CORRUPT_DATA', `${what}: the record says cipher ${fields.cipher ?? 0}, the session ${this.cipherId}`);
    }
    return this.key ? open(this.key, this.aad(fields), payload, what) : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  }

  openMetaJson<T>(fields: RecordFields, payload: Uint8Array, what: string): T {
    return parseMetaJson<T>(this.openMeta(fields, payload, what), what);
  }

  /** A CHUNK payload, in parts (prefix, then the stored or sealed bytes): a 1 MiB chunk is not copied to join them. */
  sealChunk(fields: RecordFields, prefix: ChunkPrefix, stored: Uint8Array): Uint8Array[] {
    const head = encodeChunkPrefix(prefix);
    return this.key ? [head, ...sealParts(this.key, this.aad(fields, head), stored)] : [head, stored];
  }

  /** Payload of a FILE_WHOLE record: the file's metadata (metaPlain() of a WholeFile) and its streams' stored bytes. */
  sealWhole(fields: RecordFields, meta: Buffer, stored: readonly Uint8Array[]): Buffer {
    let total = 4 + meta.length;
    for (const s of stored) total += s.length;
    const plain = Buffer.allocUnsafe(total);
    plain.writeUInt32LE(meta.length, 0);
    meta.copy(plain, 4);
    let at = 4 + meta.length;
    for (const s of stored) {
      plain.set(s, at);
      at += s.length;
    }
    return this.key ? seal(this.key, this.aad(fields), plain) : plain;
  }

  openWhole(fields: RecordFields, payload: Uint8Array, what: string): { whole: WholeFile; meta: Buffer; stored: Buffer[] } {
    const plain = this.openMeta(fields, payload, what);
    const metaLength = plain.length >= 4 ? plain.readUInt32LE(0) : -1;
    if (metaLength < 0 || 4 + metaLength > plain.length) throw new AgentfdError('E_CORRUPT_DATA', `${what}: the whole-file record is cut short`);
    let whole: WholeFile;
    const meta = plain.subarray(4, 4 + metaLength);
    try {
      whole = JSON.parse(meta.toString('utf8')) as WholeFile;
    } catch {
      throw new AgentfdError('E_CORRUPT_DATA', `${what}: the whole-file record's metadata is not valid JSON`);
    }
    const stored: Buffer[] = [];
    let at = 4 + metaLength;
    for (const s of whole.streams ?? []) {
      checkClaim(s.plainLength, what, `stream ${s.index} of the whole-file record`);
      if (!Number.isSafeInteger(s.storedLength) || s.storedLength < 0 || at + s.storedLength > plain.length) {
        throw new AgentfdError('E_CORRUPT_DATA', `${what}: stream ${s.index} claims more bytes than the record holds`);
      }
      stored.push(plain.subarray(at, at + s.storedLength));
      at += s.storedLength;
    }
    if (at !== plain.length) throw new AgentfdError('E_CORRUPT_DATA', `${what}: ${plain.length - at} bytes after the last stream`);
    return { whole, meta, stored };
  }

  /** The stored (still compressed) bytes of a chunk, after checking its seal. */
  openChunk(fields: RecordFields, payload: Uint8Array, what: string): { prefix: ChunkPrefix; stored: Buffer } {
    const prefix = decodeChunkPrefix(payload);
    checkClaim(prefix.plainLength, what, 'the chunk');
    const head = payload.subarray(0, CHUNK_PREFIX_SIZE);
    const body = payload.subarray(CHUNK_PREFIX_SIZE);
    if (fields.cipher !== this.cipherId) {
      throw new AgentfdError('E_CORRUPT_DATA', `${what}: the record says cipher ${fields.cipher ?? 0}, the session ${this.cipherId}`);
    }
    const stored = this.key ? open(this.key, this.aad(fields, head), body, what) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    return { prefix, stored };
  }
}

/** The plaintext of a metadata record: JSON, or raw bytes (STATE). */
export function metaPlain(body: unknown): Buffer {
  return body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
}

export function parseMetaJson<T>(plain: Buffer, what: string): T {
  try {
    return JSON.parse(plain.toString('utf8')) as T;
  } catch {
    throw new AgentfdError('E_CORRUPT_DATA', `${what}: the payload is not valid JSON`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** A time in nanoseconds: a decimal integer in a string (an i64 does not fit a JSON number); before 1970 it is negative. */
export const isNanoseconds = (v: unknown): v is string => typeof v === 'string' && /^-?\d{1,20}$/.test(v);

/** What is wrong with a SESSION_START (or SESSION_CONTINUE) payload, or null when its fields are sound. */
export function sessionStartProblem(value: unknown): string | null {
  if (!isObject(value)) return 'it is not a JSON object';
  if (!isCount(value.format)) return `its field "format" is ${JSON.stringify(value.format)}, not a number`;
  if (!isCount(value.jobId)) return `its field "jobId" is ${JSON.stringify(value.jobId)}, not a job id`;
  if (typeof value.uuid !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value.uuid)) return `its field "uuid" is ${JSON.stringify(value.uuid)}, not a UUID`;
  if (!isNanoseconds(value.startedNs)) return `its field "startedNs" is ${JSON.stringify(value.startedNs)}, not a time in nanoseconds`;
  if (!isLevel(value.level)) return `its field "level" is ${JSON.stringify(value.level)}, not full, incremental or differential`;
  if (value.cipher !== 'none' && value.cipher !== 'aes-256-gcm') return `its field "cipher" is ${JSON.stringify(value.cipher)}, not none or aes-256-gcm`;
  if (typeof value.compression !== 'string') return `its field "compression" is ${JSON.stringify(value.compression)}, not a text`;
  return null;
}

/** What is wrong with a SESSION_END payload, or null when its fields are sound. */
export function sessionEndProblem(value: unknown): string | null {
  if (!isObject(value)) return 'it is not a JSON object';
  if (!['committed', 'failed', 'aborted'].includes(value.status as string)) return `its field "status" is ${JSON.stringify(value.status)}, not committed, failed or aborted`;
  if (!isNanoseconds(value.endedNs)) return `its field "endedNs" is ${JSON.stringify(value.endedNs)}, not a time in nanoseconds`;
  for (const key of ['files', 'failedFiles', 'bytes', 'storedBytes'] as const) {
    if (value[key] !== undefined && !isCount(value[key])) return `its field "${key}" is ${JSON.stringify(value[key])}, not a count`;
  }
  return null;
}

/** Clear JSON payloads (SESSION_START, SESSION_END). */
export function clearJson(body: unknown): Buffer {
  return Buffer.from(JSON.stringify(body));
}

export function parseClearJson<T>(payload: Uint8Array, what: string): T {
  try {
    return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as T;
  } catch {
    throw new AgentfdError('E_CORRUPT_DATA', `${what}: the payload is not valid JSON`);
  }
}

export { RecordType };
