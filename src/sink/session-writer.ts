/**
 * Writes one backup session (one job) into the volumes: numbers its records, seals their payloads
 * (SessionCodec), repeats the session header at the top of every new volume so each volume can be
 * read on its own, remembers where the session starts in each volume (for the catalog), and builds
 * the manifest (manifest.ts) that the session's end signs.
 */
import { sign, type KeyObject } from 'node:crypto';
import type { VolumeWriter } from '../volume/index.js';
import { RECORD_HEADER_SIZE, RecordType, type RecordFields } from '../volume/format.js';
import type { EncodedChunk, StreamSummary } from '../pipeline/stream-encoder.js';
import {
  type AccurateRecord,
  clearJson,
  metaPlain,
  type FileEnd,
  type FileRecord,
  SessionCodec,
  type SessionEnd,
  type SessionInfo,
  type SessionStart,
  type StreamEnd,
  type WholeStream,
} from '../pipeline/records.js';
import { Manifest } from './manifest.js';

export interface VolumePlacement {
  label: string;
  path: string;
  firstOffset: number;
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
    this.manifest = new Manifest(start);
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

  /**
   * A metadata record: sealed, and its plaintext added to the manifest. (The manifest's v1 lines
   * are added too, by the callers: they count only in a session of format 2 or older.)
   */
  private async meta(type: number, body: unknown): Promise<void> {
    const f = this.fields(type);
    const plain = metaPlain(body);
    this.manifest.record(type, plain);
    await this.append(f, this.codec.sealPlain(f, plain));
  }

  async begin(info: SessionInfo): Promise<void> {
    await this.append(this.fields(RecordType.SESSION_START, 0, 0), clearJson(this.start));
    await this.meta(RecordType.SESSION_INFO, info);
  }

  async file(record: FileRecord): Promise<void> {
    await this.meta(RecordType.FILE, record);
  }

  async chunk(fileIndex: number, streamIndex: number, chunk: EncodedChunk): Promise<void> {
    const f = this.fields(RecordType.CHUNK, chunk.codecId);
    await this.append(f, this.codec.sealChunk(f, { fileIndex, streamIndex, chunkIndex: chunk.index, plainLength: chunk.plainLength }, chunk.stored));
  }

  async streamEnd(fileIndex: number, streamIndex: number, summary: StreamSummary): Promise<StreamEnd> {
    const end: StreamEnd = { fileIndex, streamIndex, chunks: summary.chunks, bytes: summary.bytes, sha256: summary.sha256 };
    await this.meta(RecordType.STREAM_END, end);
    this.manifest.stream(end);
    return end;
  }

  async fileEnd(path: string, end: FileEnd): Promise<void> {
    await this.meta(RecordType.FILE_END, end);
    this.manifest.file(path, end);
  }

  /** A small file whose streams are all in memory, in one FILE_WHOLE record (see records.ts). */
  async wholeFile(record: FileRecord, streams: readonly WholeStream[], stored: readonly Uint8Array[]): Promise<void> {
    const f = this.fields(RecordType.FILE_WHOLE);
    const meta = metaPlain({ file: record, streams });
    this.manifest.record(RecordType.FILE_WHOLE, meta);
    await this.append(f, this.codec.sealWhole(f, meta, stored));
    for (const s of streams) {
      this.manifest.stream({ fileIndex: record.fileIndex, streamIndex: s.index, chunks: s.plainLength > 0 ? 1 : 0, bytes: s.plainLength, sha256: s.sha256 });
    }
    this.manifest.file(record.path, { fileIndex: record.fileIndex, status: 'ok', error: null });
  }

  async accurate(record: AccurateRecord): Promise<void> {
    await this.meta(RecordType.ACCURATE, record);
    this.manifest.accurate(record);
  }

  async state(blob: Uint8Array): Promise<void> {
    await this.meta(RecordType.STATE, blob);
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
