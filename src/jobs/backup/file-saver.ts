/**
 * The saver of one file: its FILE record, then its streams' data, into the job's session. A small
 * file (small-files.ts) goes whole into one FILE_WHOLE record; any other is streamed: each stream
 * cut into chunks, hashed, compressed on the worker pool, then CHUNK records and a STREAM_END.
 *
 * A file that cannot be saved whole throws E_FILE_FAILED (or E_FILE_REFUSED when agentfd refused
 * it), after its FILE record is written, so the failed FILE_END the caller writes names its file.
 */
import { hash } from 'node:crypto';
import type { AgentFile, AgentIdentity } from '../../agents/agent.js';
import type { NewFile } from '../../catalog/catalog.js';
import { AgentfdError, messageOf } from '../../errors.js';
import { packChunk, type Compression } from '../../pipeline/codecs.js';
import { CompressPool } from '../../pipeline/compress-pool.js';
import { encodeStream, type StreamSummary } from '../../pipeline/stream-encoder.js';
import { StreamHasher } from '../../pipeline/stream-hasher.js';
import type { FileRecord, WholeStream } from '../../pipeline/records.js';
import type { SessionWriter } from '../../sink/session-writer.js';
import { fileRow } from './catalog-rows.js';
import { holdSmallFile, isSmall, type Held } from './small-files.js';

export interface BackupProgress {
  files: number;
  bytes: number;
  path: string;
}

export interface SavedFile {
  /** True when the file went into one FILE_WHOLE record, which ends the file too (no FILE_END follows). */
  whole: boolean;
  row: NewFile;
}

type Saver = Pick<AgentIdentity, 'name' | 'version' | 'abi'>;

export class FileSaver {
  /** Plaintext bytes saved so far, over every file. */
  bytes = 0;
  private readonly pool: CompressPool | null;
  /** Started with the first streamed file: a job of small files never needs the hashing thread. */
  private hasher: StreamHasher | null = null;

  constructor(
    private readonly writer: SessionWriter,
    private readonly agent: Saver,
    private readonly compression: Compression,
    /** Called after each chunk of a streamed file (a large file's progress). */
    private readonly onProgress?: (progress: BackupProgress) => void,
  ) {
    this.pool = compression.codec !== 'none' ? new CompressPool() : null;
  }

  /** Save `file` as the job's file number `fileIndex`. */
  async save(file: AgentFile, fileIndex: number): Promise<SavedFile> {
    const record = this.fileRecord(file, fileIndex);
    if (file.refused) {
      await this.writer.file(record); // the failed FILE_END the caller writes names its file
      throw new AgentfdError('E_FILE_REFUSED', file.refused);
    }
    let toStream = file.streams;
    if (isSmall(file)) {
      let held: Held;
      try {
        held = await holdSmallFile(file);
      } catch (e) {
        await this.writer.file(record); // so that the failed FILE_END the caller writes has its file
        throw new AgentfdError('E_FILE_FAILED', `${file.path}: reading it broke off: ${messageOf(e)}`, { cause: e });
      }
      if (held.whole) return { whole: true, row: await this.saveWhole(file, record, held.data) };
      toStream = held.streams;
    }
    await this.writer.file(record);
    const streams: NewFile['streams'] = [];
    for (const stream of toStream) {
      try {
        this.hasher ??= new StreamHasher();
        const encoder = encodeStream(stream.data(), { compression: this.compression, pool: this.pool, hasher: this.hasher });
        let step = await encoder.next();
        while (!step.done) {
          await this.writer.chunk(fileIndex, stream.index, step.value);
          this.bytes += step.value.plainLength;
          this.onProgress?.({ files: fileIndex + 1, bytes: this.bytes, path: file.path });
          step = await encoder.next();
        }
        const summary: StreamSummary = step.value;
        await this.writer.streamEnd(fileIndex, stream.index, summary);
        streams.push({ index: stream.index, name: stream.name, type: stream.type, rawRestorable: stream.rawRestorable, bytes: summary.bytes, sha256: summary.sha256 });
      } catch (e) {
        throw new AgentfdError('E_FILE_FAILED', `${file.path}: stream "${stream.name}" broke off: ${messageOf(e)}`, { cause: e });
      }
    }
    return { whole: false, row: fileRow(this.agent, file, fileIndex, 'ok', null, streams) };
  }

  /** Stop the compression and hashing threads. */
  async close(): Promise<void> {
    await this.pool?.close();
    await this.hasher?.close();
  }

  private fileRecord(file: AgentFile, fileIndex: number): FileRecord {
    const { name, version, abi } = this.agent;
    return {
      fileIndex,
      path: file.path,
      kind: file.kind,
      mode: file.mode,
      mtimeNs: file.mtimeNs.toString(),
      size: file.size,
      linkTarget: file.linkTarget,
      seen: file.seen,
      winAttributes: file.winAttributes,
      agent: { name, version, abi },
      streams: file.streams.map(({ index, type, name, sizeHint, rawRestorable }) => ({ index, type, name, sizeHint, rawRestorable })),
    };
  }

  private async saveWhole(file: AgentFile, record: FileRecord, data: Uint8Array[]): Promise<NewFile> {
    const streams: WholeStream[] = [];
    const stored: Uint8Array[] = [];
    data.forEach((plain, index) => {
      const packed = packChunk(plain, this.compression);
      stored.push(packed.stored);
      streams.push({ index, codec: packed.codecId, plainLength: plain.length, storedLength: packed.stored.length, sha256: hash('sha256', plain, 'hex') });
      this.bytes += plain.length;
    });
    await this.writer.wholeFile(record, streams, stored);
    const rows = file.streams.map((s, i) => ({ index: s.index, name: s.name, type: s.type, rawRestorable: s.rawRestorable, bytes: streams[i]!.plainLength, sha256: streams[i]!.sha256 }));
    return fileRow(this.agent, file, record.fileIndex, 'ok', null, rows);
  }
}
