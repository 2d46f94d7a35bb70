/**
 * A backup's file rows on their way to the catalog: gathered in batches, each full batch written by
 * the catalog writer thread (catalog/file-writer.ts) while the job goes on. The thread starts with
 * the first full batch: a job of fewer files than a batch writes its rows at the end, on this
 * thread, in one transaction, and never pays for a thread.
 */
import type { Catalog, NewFile } from '../../catalog/catalog.js';
import { CatalogFileWriter } from '../../catalog/file-writer.js';

export const CATALOG_BATCH = 1000;

export class CatalogBatch {
  private rows: NewFile[] = [];
  private writer: CatalogFileWriter | null = null;

  constructor(
    private readonly catalog: Catalog,
    private readonly dataDir: string,
    private readonly jobId: number,
    private readonly size = CATALOG_BATCH,
  ) {}

  /** Hold the row of a file; it is written by writeIfFull() or commit(). */
  add(row: NewFile): void {
    this.rows.push(row);
  }

  /** Hold rows that come once the files are done (accurate mode's deletions): they go with the last batch. */
  addAll(rows: readonly NewFile[]): void {
    for (const row of rows) this.rows.push(row); // not push(...rows): a million deletions would overflow the stack
  }

  /** A full batch goes to the writer thread (waiting only while it is several batches behind). */
  async writeIfFull(): Promise<void> {
    if (this.rows.length < this.size) return;
    this.writer ??= new CatalogFileWriter(this.dataDir);
    await this.writer.add(this.jobId, this.rows);
    this.rows = [];
  }

  /** Write the rows still held, and wait until every row is in the catalog; rejects with the writer's first failure. */
  async commit(): Promise<void> {
    if (this.writer) {
      await this.writer.add(this.jobId, this.rows);
      await this.writer.drain();
    } else this.catalog.insertFiles(this.jobId, this.rows);
    this.rows = [];
  }

  /** Stop the writer thread (after commit(), or when the job failed). */
  async close(): Promise<void> {
    await this.writer?.close();
  }
}
