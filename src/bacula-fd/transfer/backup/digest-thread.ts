/**
 * A job's digest thread (digest-worker.ts): the digest of a large file is made there, a read at a
 * time, while the main thread sends the same bytes: bacula-fd digests and sends each block in turn
 * on one thread, and MD5 alone costs about what reading and sending cost together. A read's buffer
 * is moved to the thread and back (no copy); the reads of one file are digested in the order given.
 */
import { compiledScript } from '../../../compiled-script.js';
import { CompressPool } from '../../../pipeline/compress-pool.js';

export class DigestThread {
  private readonly worker = new CompressPool<never>(1, compiledScript(import.meta.url, 'digest-worker.js'), 'the digest');
  private files = 0;

  /** A new file's digest with `algorithm` (a node:crypto name). */
  start(algorithm: string): ThreadedHash {
    return new ThreadedHash(this.worker, ++this.files, algorithm);
  }

  async close(): Promise<void> {
    await this.worker.close();
  }
}

/** One file's digest, made on the digest thread. */
export class ThreadedHash {
  constructor(
    private readonly worker: CompressPool<never>,
    private readonly file: number,
    private readonly algorithm: string,
  ) {}

  /**
   * Digests the parts of `buffer` (offset, length, ...), after those given before. `buffer` must
   * own its whole ArrayBuffer: it is moved to the thread, so it and its views are empty until the
   * promise gives it back.
   */
  async update(buffer: Buffer, parts: number[]): Promise<Buffer> {
    const reply = await this.worker.request<{ data: Uint8Array }>({ file: this.file, algorithm: this.algorithm, data: buffer, parts }, [buffer.buffer as ArrayBuffer]);
    return Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
  }

  /** The digest of everything given. */
  async digest(): Promise<Buffer> {
    const reply = await this.worker.request<{ data: Uint8Array }>({ file: this.file, algorithm: this.algorithm, end: true });
    return Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
  }
}
