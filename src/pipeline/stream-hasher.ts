/**
 * SHA-256 of large streams on a thread of its own. On the main thread the digest of an
 * uncompressed stream was the largest single cost of a backup (about 0.7 ms per MiB, a quarter
 * of the main thread), while the second core sat mostly idle.
 *
 * A chunk's buffer is moved to the hashing thread and moved back once hashed, so nothing is
 * copied; the caller keeps several chunks in flight (the stream encoder's queue), which bounds
 * memory, and writes or compresses each one when it comes back. The thread hashes in the order it
 * is given chunks, which is the stream's order.
 */
import { Worker } from 'node:worker_threads';
import { compiledScript } from '../compiled-script.js';
import { AgentfdError } from '../errors.js';

interface Pending {
  resolve: (value: Uint8Array | string) => void;
  reject: (error: Error) => void;
}

export class StreamHasher {
  private readonly worker: Worker;
  private nextStream = 1;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;

  constructor() {
    this.worker = new Worker(compiledScript(import.meta.url, 'hash-worker.js'));
    this.worker.on('message', (msg: { id: number; data?: Uint8Array; hex?: string }) => {
      const task = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      task?.resolve(msg.data ?? msg.hex!);
    });
    this.worker.on('error', (error) => {
      this.failure = new AgentfdError('E_HASH', `the hashing thread failed: ${error.message}`, { cause: error });
      for (const task of this.pending.values()) task.reject(this.failure);
      this.pending.clear();
    });
  }

  private ask(message: object, transfer: ArrayBuffer[]): Promise<Uint8Array | string> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  /** A new stream to hash; returns its handle. */
  begin(): number {
    return this.nextStream++;
  }

  /**
   * Add `chunk` to `stream`; resolves with the same bytes once hashed. The chunk's buffer moves to
   * the hashing thread and back when the chunk spans all of it, or when the caller says the whole
   * buffer is the chunk's own (`owned`: nothing else views it); otherwise the chunk is copied first,
   * so that no other view of a shared buffer (Node's small-Buffer pool) is ever detached.
   */
  update(stream: number, chunk: Uint8Array, owned = false): Promise<Buffer> {
    const buffer = chunk.buffer;
    const movable = buffer instanceof ArrayBuffer && (chunk.byteLength === buffer.byteLength || (owned && buffer.byteLength > Buffer.poolSize));
    let data = chunk;
    if (!movable) {
      data = Buffer.allocUnsafeSlow(chunk.byteLength); // a buffer of its own: never one from the pool
      data.set(chunk);
    }
    const offset = data.byteOffset; // read now: moving the buffer detaches `data`
    const length = data.byteLength;
    return this.ask({ op: 'update', stream, data }, [data.buffer as ArrayBuffer]).then((back) => Buffer.from((back as Uint8Array).buffer, offset, length));
  }

  /** The hex SHA-256 of everything given for `stream` (call it after the last update). */
  digest(stream: number): Promise<string> {
    return this.ask({ op: 'digest', stream }, []) as Promise<string>;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
