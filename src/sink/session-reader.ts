/**
 * Reads one backup session back from the volumes and checks everything on the way: each record's
 * CRC (the volume reader), the record sequence (nothing missing, nothing moved), each sealed
 * payload's tag (nothing altered, nothing from another job), each chunk's place (file, stream,
 * position), each stream's size and SHA-256, the manifest digest and its Ed25519 signature.
 *
 * Restore, verify and scan all read through here, so they agree on what "good" means. Every error
 * names the volume, the record's offset, its sequence number and type.
 */
import { createHash, verify as verifySignature, type Hash } from 'node:crypto';
import { STREAM_TYPES } from '../agents/types.js';
import { fingerprint, publicKeyFromRaw } from '../crypto/keys.js';
import { unwrapDataKey, type UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError, messageOf } from '../errors.js';
import { decompressChunk } from '../pipeline/codecs.js';
import type { StreamHasher } from '../pipeline/stream-hasher.js';
import {
  type AccurateRecord,
  type ChunkPrefix,
  type FileEnd,
  type FileRecord,
  parseClearJson,
  parseMetaJson,
  RecordType,
  SESSION_FORMAT,
  SessionCodec,
  type SessionEnd,
  type SessionInfo,
  type SessionStart,
  type StreamEnd,
} from '../pipeline/records.js';
import { readRecords, recordTypeName, type VolumeRecord } from '../volume/index.js';
import { Manifest, VerifiedRecords } from './manifest.js';

export interface Placement {
  path: string;
  firstOffset: number;
}

export type SessionEvent =
  | { kind: 'start'; start: SessionStart }
  | { kind: 'info'; info: SessionInfo }
  | { kind: 'file'; file: FileRecord }
  | { kind: 'chunk'; prefix: ChunkPrefix; data: Buffer | null }
  | { kind: 'streamEnd'; end: StreamEnd }
  | { kind: 'fileEnd'; end: FileEnd }
  | { kind: 'state'; blob: Buffer }
  | { kind: 'accurate'; record: AccurateRecord }
  | { kind: 'end'; end: SessionEnd; signature: 'valid' | 'unsigned'; signer: string | null; manifest: 1 | 2; verified: VerifiedRecords | null };

/** What the catalog knows of a job, which its session on the volumes must match. */
export interface ExpectedSession {
  uuid: string;
  /** The fingerprint of the key that signed the job, or null when it was not signed. */
  signer: string | null;
}

export interface ReadSessionOptions {
  jobId: number;
  placements: Placement[];
  secrets: UnwrapSecrets;
  /** Open and decompress chunks (restore, verify); scan only needs the metadata. */
  data: boolean;
  /** What to call the job in messages. */
  what: string;
  /** Compute stream digests on this hashing thread (see stream-hasher.ts). */
  hasher?: StreamHasher | null;
  /**
   * The job as the catalog has it: the session must have its UUID and be signed by its signer (or
   * be unsigned when it was). Absent (scan): any valid signature, or none, is reported as found.
   */
  expect?: ExpectedSession;
  /** Keep the digests of the metadata records (the first read of a signed restore); the end event has them. */
  collect?: boolean;
  /**
   * The metadata records a first read verified under the signature: each record read now must be
   * that one, checked before its event is yielded (so before anything acts on it).
   */
  verified?: VerifiedRecords;
}

/** A Buffer over the same bytes (a chunk's bytes are the reader's own: no copy needed). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

function where(record: VolumeRecord): string {
  return `${record.path} at offset ${record.offset} (record ${record.seq} of the session, ${recordTypeName(record.type)})`;
}

function fail(record: VolumeRecord, message: string, code = 'E_CORRUPT_DATA'): never {
  throw new AgentfdError(code, `${where(record)}: ${message}`);
}

const KNOWN_STREAM_TYPES: ReadonlySet<string> = new Set(STREAM_TYPES);

/** A stream type from a newer agentfd: no agent can be told what the stream is, so the file cannot be restored as it was saved. */
function checkStreamTypes(record: VolumeRecord, file: FileRecord): void {
  for (const [i, s] of (file.streams ?? []).entries()) {
    if (!KNOWN_STREAM_TYPES.has(s.type)) {
      fail(record, `stream ${i} of ${file.path} has type "${String(s.type)}", which this agentfd does not know (${[...KNOWN_STREAM_TYPES].join(', ')}): written by a newer agentfd? Upgrade to read this job`);
    }
  }
}

/** The records of one session, in order, from the volumes it spans. */
async function* sessionRecords(options: ReadSessionOptions): AsyncGenerator<VolumeRecord> {
  let expected = 0;
  for (const placement of options.placements) {
    for await (const record of readRecords(placement.path, { from: placement.firstOffset })) {
      if (record.session !== options.jobId) continue;
      if (record.seq !== expected) {
        fail(record, `expected record ${expected} of the session here; ${record.seq < expected ? 'a record was repeated' : `${record.seq - expected} record(s) are missing`}`);
      }
      expected++;
      yield record;
      if (record.type === RecordType.SESSION_END) return;
    }
  }
  throw new AgentfdError(
    'E_SESSION_INCOMPLETE',
    `${options.what}: its records end after record ${expected - 1} without a session end: the job was interrupted (aborted), or a volume is missing or truncated`,
  );
}

/** Chunks whose digest is being computed on the hashing thread while the reader reads on. */
const HASH_AHEAD = 4;

/** An event as read; a chunk's bytes may still be on the hashing thread. */
type ReadEvent = SessionEvent | { kind: 'chunk'; prefix: ChunkPrefix; data: null; pending: Promise<Buffer> };

/**
 * Read and check a session; yields its events in order. With a hashing thread, up to HASH_AHEAD
 * chunks are being hashed while the next records are read and opened: waiting for each digest in
 * turn left the reader, the hasher and the agent each idle most of the time.
 */
export async function* readSession(options: ReadSessionOptions): AsyncGenerator<SessionEvent> {
  const queue: ReadEvent[] = [];
  const settle = async (event: ReadEvent): Promise<SessionEvent> =>
    'pending' in event ? { kind: 'chunk', prefix: event.prefix, data: await event.pending } : event;
  for await (const event of readEvents(options)) {
    queue.push(event);
    while (queue.length > HASH_AHEAD) yield await settle(queue.shift()!);
  }
  while (queue.length > 0) yield await settle(queue.shift()!);
}

async function* readEvents(options: ReadSessionOptions): AsyncGenerator<ReadEvent> {
  let codec: SessionCodec | null = null;
  let start: SessionStart | null = null;
  let manifest: Manifest | null = null;
  let file: FileRecord | null = null;
  let nextFileIndex = 0;
  // Metadata records seen, for the comparison with (or the collection of) verified records.
  let metaOrdinal = 0;
  const collected = options.collect ? new VerifiedRecords() : null;
  // A stream's digest is computed here, or on the hashing thread when one is given (large restores).
  const hasher = options.hasher ?? null;
  const newStream = (index: number) => ({ index, chunks: 0, bytes: 0, hash: hasher ? null : createHash('sha256'), hashed: hasher?.begin() ?? 0 });
  let stream: { index: number; chunks: number; bytes: number; hash: Hash | null; hashed: number } | null = null;
  let nextStream = 0;

  for await (const record of sessionRecords(options)) {
    const fields = record;
    try {
      if (record.type === RecordType.SESSION_START || record.type === RecordType.SESSION_CONTINUE) {
        const s = parseClearJson<SessionStart>(record.payload, 'session start');
        if (start === null) {
          if (record.type !== RecordType.SESSION_START) fail(record, 'the session does not begin with SESSION_START');
          if (!(s.format >= 1 && s.format <= SESSION_FORMAT)) {
            fail(record, `session format ${String(s.format)} is newer than this agentfd reads (1 to ${SESSION_FORMAT}): upgrade agentfd to restore this job`);
          }
          if (options.expect) checkExpected(record, s, options.expect, options.what);
          start = s;
          const key = s.cipher === 'none' ? null : unwrapDataKey(s.stanzas, options.secrets, options.what);
          codec = new SessionCodec(s.uuid, key);
          manifest = new Manifest(s);
          yield { kind: 'start', start: s };
        } else if (s.uuid !== start.uuid) {
          fail(record, `belongs to job ${s.uuid}, not ${start.uuid}`);
        }
        continue;
      }
      if (!codec || !manifest || !start) fail(record, 'the session does not begin with SESSION_START');
      const m = manifest;
      /** A metadata record's plaintext: into the manifest, and checked against (or kept as) the verified records. */
      const meta = (plain: Buffer): Buffer => {
        const digest = m.record(record.type, plain);
        if (options.verified && !options.verified.matches(metaOrdinal, digest)) {
          fail(record, 'differs from the record the signature was verified over when the job was first read: the volume changed during the restore', 'E_SIGNATURE');
        }
        collected?.push(digest);
        metaOrdinal++;
        return plain;
      };
      const openJson = <T>(): T => parseMetaJson<T>(meta(codec!.openMeta(fields, record.payload, where(record))), where(record));
      switch (record.type) {
        case RecordType.SESSION_INFO:
          yield { kind: 'info', info: openJson<SessionInfo>() };
          break;
        case RecordType.FILE: {
          if (file !== null) fail(record, `a new file begins before file ${file.fileIndex} (${file.path}) ended`);
          const f = openJson<FileRecord>();
          checkStreamTypes(record, f);
          if (f.fileIndex !== nextFileIndex) fail(record, `file ${f.fileIndex} where file ${nextFileIndex} was expected`);
          nextFileIndex++;
          file = f;
          nextStream = 0;
          yield { kind: 'file', file: f };
          break;
        }
        case RecordType.FILE_WHOLE: {
          // A small file in one record: check it exactly as its four kinds of records would be.
          if (file !== null) fail(record, `a new file begins before file ${file.fileIndex} (${file.path}) ended`);
          const { whole, meta: wholeMeta, stored } = codec.openWhole(fields, record.payload, where(record));
          meta(wholeMeta);
          const f = whole.file;
          checkStreamTypes(record, f);
          if (f.fileIndex !== nextFileIndex) fail(record, `file ${f.fileIndex} where file ${nextFileIndex} was expected`);
          if (whole.streams.length !== f.streams.length) fail(record, `${f.path} declares ${f.streams.length} streams and holds ${whole.streams.length}`);
          nextFileIndex++;
          yield { kind: 'file', file: f };
          for (const [i, s] of whole.streams.entries()) {
            if (s.index !== i) fail(record, `stream ${s.index} of ${f.path} where stream ${i} was expected`);
            const prefix: ChunkPrefix = { fileIndex: f.fileIndex, streamIndex: i, chunkIndex: 0, plainLength: s.plainLength };
            if (s.plainLength > 0) {
              let data: Buffer | null = null;
              if (options.data) {
                data = asBuffer(decompressChunk(stored[i]!, s.codec, s.plainLength));
                const digest = createHash('sha256').update(data).digest('hex');
                if (digest !== s.sha256) fail(record, `stream ${i} of ${f.path}: SHA-256 ${digest} where ${s.sha256} was recorded`);
              }
              yield { kind: 'chunk', prefix, data };
            } else if (options.data && s.sha256 !== EMPTY_SHA256) {
              fail(record, `stream ${i} of ${f.path} is empty but its SHA-256 was recorded as ${s.sha256}`);
            }
            const end: StreamEnd = { fileIndex: f.fileIndex, streamIndex: i, chunks: s.plainLength > 0 ? 1 : 0, bytes: s.plainLength, sha256: s.sha256 };
            manifest.stream(end);
            yield { kind: 'streamEnd', end };
          }
          const end: FileEnd = { fileIndex: f.fileIndex, status: 'ok', error: null };
          manifest.file(f.path, end);
          yield { kind: 'fileEnd', end };
          break;
        }
        case RecordType.CHUNK: {
          const opened = codec.openChunk(fields, record.payload, where(record));
          const p = opened.prefix;
          if (!file || p.fileIndex !== file.fileIndex) fail(record, `a chunk of file ${p.fileIndex} outside that file`);
          if (stream === null) {
            if (p.streamIndex !== nextStream || p.streamIndex >= file.streams.length) fail(record, `a chunk of stream ${p.streamIndex} where stream ${nextStream} was expected`);
            stream = newStream(p.streamIndex);
          }
          if (p.streamIndex !== stream.index || p.chunkIndex !== stream.chunks) {
            fail(record, `chunk ${p.chunkIndex} of stream ${p.streamIndex} where chunk ${stream.chunks} of stream ${stream.index} was expected`);
          }
          stream.chunks++;
          stream.bytes += p.plainLength;
          if (options.data) {
            const plain = asBuffer(decompressChunk(opened.stored, record.codec, p.plainLength));
            if (stream.hash) {
              stream.hash.update(plain);
              yield { kind: 'chunk', prefix: p, data: plain };
            } else {
              // Moved to the hashing thread and back (the record's bytes are the reader's own); the
              // reader goes on with the next records meanwhile (see readSession).
              const back = hasher!.update(stream.hashed, plain, true);
              back.catch(() => undefined); // awaited in order by readSession; never left unobserved
              yield { kind: 'chunk', prefix: p, data: null, pending: back };
            }
          } else yield { kind: 'chunk', prefix: p, data: null };
          break;
        }
        case RecordType.STREAM_END: {
          const end = openJson<StreamEnd>();
          if (!file || end.fileIndex !== file.fileIndex) fail(record, `the end of a stream of file ${end.fileIndex} outside that file`);
          const s = stream ?? newStream(nextStream);
          if (end.streamIndex !== s.index) fail(record, `the end of stream ${end.streamIndex} where stream ${s.index} is open`);
          if (end.chunks !== s.chunks || end.bytes !== s.bytes) {
            fail(record, `stream ${s.index} of ${file.path} was recorded as ${end.chunks} chunks / ${end.bytes} bytes but ${s.chunks} chunks / ${s.bytes} bytes were read`);
          }
          if (options.data) {
            const digest = s.hash ? s.hash.digest('hex') : await hasher!.digest(s.hashed);
            if (digest !== end.sha256) fail(record, `stream ${s.index} of ${file.path}: SHA-256 ${digest} where ${end.sha256} was recorded`);
          }
          manifest.stream(end);
          stream = null;
          nextStream++;
          yield { kind: 'streamEnd', end };
          break;
        }
        case RecordType.FILE_END: {
          const end = openJson<FileEnd>();
          if (!file || end.fileIndex !== file.fileIndex) fail(record, `the end of file ${end.fileIndex}, which is not open`);
          if (stream !== null) fail(record, `${file.path} ends while stream ${stream.index} is open`);
          if (end.status === 'ok' && nextStream !== file.streams.length) fail(record, `${file.path} ends after ${nextStream} of its ${file.streams.length} streams`);
          manifest.file(file.path, end);
          file = null;
          yield { kind: 'fileEnd', end };
          break;
        }
        case RecordType.ACCURATE: {
          const accurate = openJson<AccurateRecord>();
          if (file !== null) fail(record, `accurate-mode results while file ${file.path} is open`);
          manifest.accurate(accurate);
          yield { kind: 'accurate', record: accurate };
          break;
        }
        case RecordType.STATE: {
          const blob = meta(codec.openMeta(fields, record.payload, where(record)));
          manifest.state(blob);
          yield { kind: 'state', blob };
          break;
        }
        case RecordType.SESSION_END: {
          const end = parseClearJson<SessionEnd>(record.payload, 'session end');
          if (file !== null) fail(record, `the session ends while file ${file.path} is open`);
          const digest = manifest.digest(end.status);
          if (digest.toString('hex') !== end.manifestSha256) {
            fail(record, 'the manifest digest does not match the records: records were altered, removed or reordered');
          }
          if (options.verified && metaOrdinal !== options.verified.length) {
            fail(record, `the session ends after ${metaOrdinal} metadata records where the first read verified ${options.verified.length}: the volume changed during the restore`, 'E_SIGNATURE');
          }
          const signer = checkSignature(record, start, end, digest);
          yield { kind: 'end', end, signature: signer ? 'valid' : 'unsigned', signer, manifest: manifest.version, verified: collected };
          break;
        }
        default:
          // A record type from a newer agentfd inside a session: it cannot be interpreted safely.
          fail(record, `unknown record type ${record.type}: written by a newer agentfd? Upgrade to read this job`);
      }
    } catch (error) {
      if (error instanceof AgentfdError && error.message.startsWith(record.path)) throw error;
      if (error instanceof AgentfdError && (error.code === 'E_WRONG_KEY' || error.code === 'E_SIGNATURE' || error.code === 'E_WRONG_SESSION')) throw error;
      throw new AgentfdError(error instanceof AgentfdError ? error.code : 'E_CORRUPT_DATA', `${where(record)}: ${messageOf(error)}`, { cause: error });
    }
  }
}

/** The session on the volume is the one the catalog indexed: same UUID, same signer (or none). */
function checkExpected(record: VolumeRecord, start: SessionStart, expect: ExpectedSession, what: string): void {
  if (start.uuid !== expect.uuid) {
    fail(record, `holds job ${start.uuid}, but the catalog's ${what} is ${expect.uuid}: the volume was replaced or is another one with the same name`, 'E_WRONG_SESSION');
  }
  const found = start.signer ? signerKey(record, start.signer).fingerprint : null;
  if (expect.signer !== null && found === null) {
    fail(record, `an unsigned copy of a signed job: the catalog records ${what} as signed by ${expect.signer}, and this session carries no signer. Someone removed the signature, or replaced the job; do not trust it`, 'E_SIGNATURE');
  }
  if (expect.signer !== null && found !== expect.signer) {
    fail(record, `signed by ${found}, but the catalog records ${what} as signed by ${expect.signer}: the job was re-signed with another key or replaced; do not trust it`, 'E_SIGNATURE');
  }
  if (expect.signer === null && found !== null) {
    fail(record, `signed by ${found}, but the catalog records ${what} as unsigned: this is not the session the catalog indexed`, 'E_SIGNATURE');
  }
}

/** The signer's key from the header, named by its own fingerprint (the one written beside it is not trusted). */
function signerKey(record: VolumeRecord, signer: { publicKey: string; fingerprint: string }) {
  let key;
  try {
    key = publicKeyFromRaw('ed25519', Buffer.from(signer.publicKey, 'base64'));
  } catch {
    fail(record, 'the signer\'s public key is not an Ed25519 key', 'E_SIGNATURE');
  }
  const real = fingerprint(key);
  if (real !== signer.fingerprint) fail(record, `the signer's key is ${real}, not ${signer.fingerprint} as written beside it`, 'E_SIGNATURE');
  return { key, fingerprint: real };
}

/** The manifest signature: valid (returns the signer's fingerprint), or absent (null); E_SIGNATURE otherwise. */
function checkSignature(record: VolumeRecord, start: SessionStart, end: SessionEnd, digest: Buffer): string | null {
  if (!start.signer) return null; // an unsigned copy of a signed job was refused at its start (checkExpected)
  const { key, fingerprint: signer } = signerKey(record, start.signer);
  if (!end.signature) {
    fail(record, `an unsigned copy of a signed job: the session names the signer ${signer}, and its end carries no signature. Someone removed it; do not trust this job`, 'E_SIGNATURE');
  }
  if (!verifySignature(null, digest, key, Buffer.from(end.signature, 'base64'))) {
    fail(record, `the manifest signature by ${signer} does not verify: the job was altered after it was signed`, 'E_SIGNATURE');
  }
  return signer;
}
