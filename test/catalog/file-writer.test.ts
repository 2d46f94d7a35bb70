/**
 * The catalog writer thread (file-writer.ts), with its own connection to a real catalog: batches
 * land in order while the job goes on, and a batch it cannot write fails drain() with E_CATALOG
 * instead of leaving the job waiting for ever.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog, type NewFile } from '../../src/catalog/catalog.js';
import { CatalogFileWriter } from '../../src/catalog/file-writer.js';
import { tempDir } from '../helpers/native.js';

const row = (fileIndex: number): NewFile => ({
  fileIndex, path: `/f${fileIndex}`, kind: 'regular', mode: 0o600, mtimeNs: 1n, size: 1, seen: false, linkTarget: null,
  agent: 'filesystem', agentVersion: null, agentAbi: 0, status: 'ok', error: null, streams: [{ index: 0, name: 'data', type: 'data', rawRestorable: false, bytes: 1, sha256: null }],
});

function catalogWithJob() {
  const dataDir = path.join(tempDir('file-writer'), 'data');
  const catalog = Catalog.open(dataDir);
  const jobId = catalog.createJob({
    uuid: randomUUID(), name: 'j', agent: 'filesystem', agentVersion: null, agentAbi: 0, level: 'full', requestedLevel: 'full',
    referenceJob: null, startedNs: 1n, compression: 'none', cipher: 'none', signer: null,
  });
  return { dataDir, catalog, jobId };
}

describe('catalog writer thread', () => {
  it('writes batches in the order they were added, each with its streams', async () => {
    const { dataDir, catalog, jobId } = catalogWithJob();
    const writer = new CatalogFileWriter(dataDir);
    try {
      for (let b = 0; b < 10; b++) await writer.add(jobId, Array.from({ length: 50 }, (_, i) => row(b * 50 + i)));
      await writer.drain();
      const files = catalog.files(jobId);
      expect(files.map((f) => f.file_index)).toEqual(Array.from({ length: 500 }, (_, i) => i));
      // Ids follow the order of the batches, so each batch was written after the one before it.
      expect(files.map((f) => f.id)).toEqual([...files.map((f) => f.id)].sort((a, b) => a - b));
      expect(catalog.streams(files[499]!.id)).toHaveLength(1);
    } finally {
      await writer.close();
      catalog.close();
    }
  });

  it('fails drain() with E_CATALOG when a batch cannot be written, and every later add() too', { timeout: 15_000 }, async () => {
    const { dataDir, catalog, jobId } = catalogWithJob();
    const writer = new CatalogFileWriter(dataDir);
    try {
      await writer.add(jobId, [row(0), row(1)]);
      await writer.add(jobId, [row(1)]); // file 1 again: the catalog's (job, file index) key refuses it
      const drained = await Promise.race([writer.drain().then(() => 'drained', (e: unknown) => e), new Promise((r) => setTimeout(() => r('still waiting after 10 s'), 10_000))]);
      expect(drained).toMatchObject({ code: 'E_CATALOG', message: expect.stringContaining("cannot record the job's files in the catalog: UNIQUE constraint failed") });
      await expect(writer.add(jobId, [row(2)])).rejects.toMatchObject({ code: 'E_CATALOG' });
      expect(catalog.files(jobId).map((f) => f.file_index)).toEqual([0, 1]);
    } finally {
      await writer.close();
      catalog.close();
    }
  });
});
