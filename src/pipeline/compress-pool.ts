/**
 * A small pool of compression workers, one per core. Chunks are handed over by transferring their
 * ArrayBuffer (no copy); results come back the same way. Callers keep their own order: compress()
 * returns a promise per chunk, and the stream encoder awaits them in sequence.
 *
 * The worker script is compress-worker.ts (agentfd's codecs) unless the caller names another that
 * answers the same messages ({ id, data, compression } in; { id, data, raw } or { id, error } out):
 * serve's frame worker compresses Bacula's records with its own settings. Such a script may also
 * answer messages of its own (request(): { id, ...message } in, { id, ... } or { id, error } out).
 */
import { compiledScript } from '../compiled-script.js';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { AgentfdError } from '../errors.js';
import type { Compression } from './codecs.js';

export interface Compressed {
  data: Uint8Array;
  /** True when compression did not shrink the chunk and `data` is the input, returned. */
  raw: boolean;
}

interface Reply {
  id: number;
  data?: Uint8Array;
  raw?: boolean;
  error?: string;
}

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
}

export class CompressPool<Settings = Compression> {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private next = 0;
  private failure: Error | null = null;

  /** `task`: what the workers do, for the errors they report ("compression failed: ..."). */
  constructor(size = Math.max(1, os.availableParallelism()), script = compiledScript(import.meta.url, 'compress-worker.js'), task = 'compression') {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(script);
      worker.on('message', (msg: Reply) => {
        const waiting = this.pending.get(msg.id);
        if (!waiting) return;
        this.pending.delete(msg.id);
        if (msg.error !== undefined) waiting.reject(new AgentfdError('E_COMPRESS', `${task} failed: ${msg.error}`));
        else waiting.resolve(msg);
      });
      worker.on('error', (error) => this.fail(error));
      this.workers.push(worker);
    }
  }

  private fail(error: Error): void {
    this.failure = error;
    for (const task of this.pending.values()) task.reject(error);
    this.pending.clear();
  }

  /** Compress `data`; its buffer is transferred to the worker and must not be used afterwards. */
  async compress(data: Uint8Array, compression: Settings): Promise<Compressed> {
    const transferable = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : Uint8Array.from(data);
    const reply = await this.request({ data: transferable, compression }, [transferable.buffer as ArrayBuffer]);
    return { data: reply.data!, raw: reply.raw ?? false };
  }

  /**
   * Posts `message` (with an id added) to the next worker, moving the buffers of `transfer`
   * there; resolves with its answer, or rejects with the error it reports.
   */
  request<R = Reply>(message: object, transfer: ArrayBuffer[] = []): Promise<R> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const worker = this.workers[this.next++ % this.workers.length]!;
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (reply: Reply) => void, reject });
      worker.postMessage({ ...message, id }, transfer);
    });
  }

  /** How many workers compress at once. */
  get size(): number {
    return this.workers.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
