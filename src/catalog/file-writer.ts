/**
 * Writes a backup's file rows into the catalog from a worker thread of its own, with its own
 * connection to the database. Inserting a small file's rows (two indexed tables) costs about as
 * much as everything else the main thread does for it; on a thread of its own it overlaps with
 * the job instead of adding to it. SQLite's WAL mode lets the main thread's connection read
 * meanwhile; the job's own rows (jobs, job_volumes) are written by the main thread before the
 * first batch and after drain().
 *
 * Memory stays bounded: add() waits while MAX_PENDING batches are still being written.
 */
import { Worker } from 'node:worker_threads';
import { compiledScript } from '../compiled-script.js';
import { AgentfdError } from '../errors.js';
import { fileRows, type NewFile } from './catalog.js';

const MAX_PENDING = 4;

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
}

export class CatalogFileWriter {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly waits: Promise<void>[] = [];
  private nextId = 1;
  private failure: Error | null = null;

  constructor(dataDir: string) {
    this.worker = new Worker(compiledScript(import.meta.url, 'file-writer-worker.js'), { workerData: { dataDir } });
    this.worker.on('message', (msg: { id: number; error?: string }) => {
      const task = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error === undefined) return task?.resolve();
      this.fail(new AgentfdError('E_CATALOG', `cannot record the job's files in the catalog: ${msg.error}`));
      task?.reject(this.failure!); // no longer pending, so fail() did not reach it: drain() waits on it
    });
    this.worker.on('error', (error) => this.fail(new AgentfdError('E_CATALOG', `the catalog writer failed: ${error.message}`, { cause: error })));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const task of this.pending.values()) task.reject(this.failure);
    this.pending.clear();
  }

  /** Queue a batch of files; resolves at once unless too many batches are still being written. */
  async add(jobId: number, files: readonly NewFile[]): Promise<void> {
    if (this.failure) throw this.failure;
    if (files.length === 0) return;
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    done.catch(() => undefined); // observed by drain() or a later add()
    this.waits.push(done);
    // As JSON text: cloning a string costs a fraction of cloning arrays of thousands of values.
    this.worker.postMessage({ id, rows: JSON.stringify(fileRows(jobId, files)) });
    while (this.waits.length > MAX_PENDING) await this.waits.shift();
  }

  /** Wait until every batch is in the catalog; rejects with the first failure. */
  async drain(): Promise<void> {
    while (this.waits.length > 0) await this.waits.shift();
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
