/**
 * The catalog batch of a backup, on a real catalog: rows of fewer files than a batch are written at
 * commit on the job's thread; full batches go to the catalog writer thread as they fill; commit
 * waits for every row and fails loudly when the writer thread could not write one.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog, type NewFile } from '../../../src/catalog/catalog.js';
import { CatalogBatch } from '../../../src/jobs/backup/catalog-batch.js';
import { deletedRows, fileRow } from '../../../src/jobs/backup/catalog-rows.js';
import { tempDir } from '../../helpers/native.js';
import { describedFile, filesystemAgent } from './agent-files.js';
import { catalogJob } from './stage-session.js';

function row(index: number): NewFile {
  const file = describedFile(`/f${index}`, [{ sizeHint: 1, pieces: [] }]);
  return fileRow(filesystemAgent, file, index, 'ok', null, [{ index: 0, name: 'data', type: 'data', rawRestorable: false, bytes: index, sha256: `${index}`.padStart(64, '0') }]);
}

function openCatalog(): { catalog: Catalog; dataDir: string; jobId: number } {
  const dataDir = path.join(tempDir('catalog-batch'), 'data');
  const catalog = Catalog.open(dataDir);
  return { catalog, dataDir, jobId: catalogJob(catalog, 'job', 'full', 'running') };
}

async function until(condition: () => boolean): Promise<boolean> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) if (condition()) return true;
  return condition();
}

describe('catalog batch', () => {
  it('holds the rows of fewer files than a batch until commit, then writes them all with their streams', async () => {
    const { catalog, dataDir, jobId } = openCatalog();
    const batch = new CatalogBatch(catalog, dataDir, jobId);
    try {
      for (let i = 0; i < 3; i++) {
        batch.add(row(i));
        await batch.writeIfFull();
      }
      batch.addAll(deletedRows(filesystemAgent, [{ path: '/gone', kind: 'regular' }], 3));
      expect(catalog.files(jobId)).toEqual([]);
      await batch.commit();
      const files = catalog.files(jobId);
      expect(files.map((f) => [f.file_index, f.path, f.status])).toEqual([[0, '/f0', 'ok'], [1, '/f1', 'ok'], [2, '/f2', 'ok'], [3, '/gone', 'deleted']]);
      expect(catalog.streams(files[2]!.id)).toMatchObject([{ stream_index: 0, name: 'data', bytes: 2 }]);
      expect(catalog.streams(files[3]!.id)).toEqual([]);
    } finally {
      await batch.close();
      catalog.close();
    }
  });

  it('sends each full batch to the writer thread as it fills, before the commit, which then waits for the rest', async () => {
    const { catalog, dataDir, jobId } = openCatalog();
    const batch = new CatalogBatch(catalog, dataDir, jobId, 4);
    try {
      for (let i = 0; i < 10; i++) {
        batch.add(row(i));
        await batch.writeIfFull();
      }
      // Two full batches (8 rows) are written by the thread without a commit; the last 2 wait for it.
      expect(await until(() => catalog.files(jobId).length === 8)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(catalog.files(jobId)).toHaveLength(8);
      await batch.commit();
      expect(catalog.files(jobId).map((f) => f.file_index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      await batch.close();
      catalog.close();
    }
  });

  it('fails the commit with E_CATALOG when the writer thread could not write a batch', async () => {
    const { catalog, dataDir, jobId } = openCatalog();
    const batch = new CatalogBatch(catalog, dataDir, jobId, 2);
    try {
      for (const index of [0, 1, 1, 2]) {
        batch.add(row(index)); // file 1 twice: the second batch breaks the catalog's (job, file index) key
        await batch.writeIfFull();
      }
      await expect(batch.commit()).rejects.toMatchObject({ code: 'E_CATALOG', message: expect.stringContaining("cannot record the job's files in the catalog") });
      // The broken batch was rolled back whole: only the first batch is there.
      expect(catalog.files(jobId).map((f) => f.file_index)).toEqual([0, 1]);
    } finally {
      await batch.close();
      catalog.close();
    }
  });
});
