/**
 * Writes one backup session (one job) into the volumes: numbers its records, seals their payloads
 * (SessionCodec), repeats the session header at the top of every new volume so each volume can be
 * read on its own, remembers where the session starts in each volume (for the catalog), and builds
 * the manifest of digests that the session's end signs.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import type { AccurateRecord } from '../jobs/accurate.js';
import type { VolumeWriter } from '../volume/index.js';
import { RECORD_HEADER_SIZE, RecordType, type RecordFields } from '../volume/format.js';
import type { EncodedChunk, StreamSummary } from '../pipeline/stream-encoder.js';
import {
  clearJson,
  type FileEnd,
  type FileRecord,
  SessionCodec,
  type SessionEnd,
  type SessionInfo,
  type SessionStart,
  type StreamEnd,
  type WholeStream,
} from '../pipeline/records.js';

export interface VolumePlacement {
  label: string;
  path: string;
  firstOffset: number;
}

/** The manifest: a digest over every file's outcome and every stream's size and SHA-256. */
export class Manifest {
  private readonly hash = createHash('sha256');
  /** Lines not yet hashed: hashed in batches (the digest of the whole text is the same). */
  private text: string;

  constructor(uuid: string) {
    this.text = `agentfd manifest v1\n${uuid}\n`;
  }

  private add(line: string): void {
    this.text += line;
    if (this.text.length >= 64 * 1024) {
      this.hash.update(this.text);
      this.text = '';
    }
  }

  stream(end: StreamEnd): void {
    this.add(`S\t${end.fileIndex}\t${end.streamIndex}\t${end.bytes}\t${end.sha256}\n`);
  }

  file(path: string, end: FileEnd): void {
    this.add(`F\t${end.fileIndex}\t${JSON.stringify(path)}\t${end.status}\n`);
  }

  accurate(record: AccurateRecord): void {
    this.add(`A\t${JSON.stringify(record)}\n`);
  }

  state(blob: Uint8Array): void {
    this.add(`T\t${createHash('sha256').update(blob).digest('hex')}\n`);
  }

  digest(status: string): Buffer {
    this.hash.update(`${this.text}E\t${status}\n`);
    this.text = '';
    return this.hash.digest();
  }
}

export class SessionWriter {
  readonly jobId: number;
  readonly codec: SessionCodec;
  readonly placements: VolumePlacement[] = [];
  readonly manifest: Manifest;
  private readonly volumes: VolumeWriter;
  private readonly start: SessionStart;
  private seq = 0;
  private currentVolume: string | null = null;
  storedBytes = 0;

  constructor(volumes: VolumeWriter, start: SessionStart, key: Buffer | null) {
    this.volumes = volumes;
    this.start = start;
    this.jobId = start.jobId;
    this.codec = new SessionCodec(start.uuid, key);
    this.manifest = new Manifest(start.uuid);
  }

  get recordCount(): number {
    return this.seq;
  }

  private fields(type: number, codec = 0, cipher = this.codec.cipherId): RecordFields {
    return { type, codec, cipher, flags: 0, session: this.jobId, seq: this.seq };
  }

  private async append(fields: RecordFields, payload: Uint8Array | Uint8Array[]): Promise<void> {
    const placed = await this.volumes.append({ ...fields, payload });
    this.seq++;
    this.storedBytes += placed.length - RECORD_HEADER_SIZE;
    if (placed.volume !== this.currentVolume) {
      const first = this.currentVolume === null;
      this.currentVolume = placed.volume;
      this.placements.push({ label: placed.volume, path: placed.path, firstOffset: placed.offset });
      // A session that rotates into a new volume repeats its header there, so that volume alone can
      // be scanned and decrypted. (The record that caused the rotation precedes it; readers
      // accept SESSION_CONTINUE anywhere in a volume.)
      if (!first && fields.type !== RecordType.SESSION_CONTINUE) {
        await this.append(this.fields(RecordType.SESSION_CONTINUE, 0, 0), clearJson(this.start));
      }
    }
  }

  async begin(info: SessionInfo): Promise<void> {
    await this.append(this.fields(RecordType.SESSION_START, 0, 0), clearJson(this.start));
    const f = this.fields(RecordType.SESSION_INFO);
    await this.append(f, this.codec.sealMeta(f, info));
  }

  async file(record: FileRecord): Promise<void> {
    const f = this.fields(RecordType.FILE);
    await this.append(f, this.codec.sealMeta(f, record));
  }

  async chunk(fileIndex: number, streamIndex: number, chunk: EncodedChunk): Promise<void> {
    const f = this.fields(RecordType.CHUNK, chunk.codecId);
    await this.append(f, this.codec.sealChunk(f, { fileIndex, streamIndex, chunkIndex: chunk.index, plainLength: chunk.plainLength }, chunk.stored));
  }

  async streamEnd(fileIndex: number, streamIndex: number, summary: StreamSummary): Promise<StreamEnd> {
    const end: StreamEnd = { fileIndex, streamIndex, chunks: summary.chunks, bytes: summary.bytes, sha256: summary.sha256 };
    const f = this.fields(RecordType.STREAM_END);
    await this.append(f, this.codec.sealMeta(f, end));
    this.manifest.stream(end);
    return end;
  }

  async fileEnd(path: string, end: FileEnd): Promise<void> {
    const f = this.fields(RecordType.FILE_END);
    await this.append(f, this.codec.sealMeta(f, end));
    this.manifest.file(path, end);
  }

  /** A small file whose streams are all in memory, in one FILE_WHOLE record (see records.ts). */
  async wholeFile(record: FileRecord, streams: readonly WholeStream[], stored: readonly Uint8Array[]): Promise<void> {
    const f = this.fields(RecordType.FILE_WHOLE);
    await this.append(f, this.codec.sealWhole(f, { file: record, streams: streams as WholeStream[] }, stored));
    for (const s of streams) {
      this.manifest.stream({ fileIndex: record.fileIndex, streamIndex: s.index, chunks: s.plainLength > 0 ? 1 : 0, bytes: s.plainLength, sha256: s.sha256 });
    }
    this.manifest.file(record.path, { fileIndex: record.fileIndex, status: 'ok', error: null });
  }

  async accurate(record: AccurateRecord): Promise<void> {
    const f = this.fields(RecordType.ACCURATE);
    await this.append(f, this.codec.sealMeta(f, record));
    this.manifest.accurate(record);
  }

  async state(blob: Uint8Array): Promise<void> {
    const f = this.fields(RecordType.STATE);
    await this.append(f, this.codec.sealMeta(f, blob));
    this.manifest.state(blob);
  }

  /** Close the session: the manifest digest, signed when a signing key is given. */
  async end(outcome: Omit<SessionEnd, 'records' | 'manifestSha256' | 'signature' | 'storedBytes'>, signer: KeyObject | null): Promise<SessionEnd> {
    const digest = this.manifest.digest(outcome.status);
    const end: SessionEnd = {
      ...outcome,
      storedBytes: this.storedBytes,
      records: this.seq + 1,
      manifestSha256: digest.toString('hex'),
      signature: signer ? sign(null, digest, signer).toString('base64') : null,
    };
    await this.append(this.fields(RecordType.SESSION_END, 0, 0), clearJson(end));
    return end;
  }
}
