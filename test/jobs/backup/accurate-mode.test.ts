/**
 * Accurate mode in a backup, against a real catalog: what the reference job had and this job
 * neither sent nor saw is deleted, a new path with a deleted one's content is a rename, an agent
 * that does not report every file is asked about the rest, and only an agent that declares
 * "accurate", at a level that has a reference, is ever in accurate mode.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPluginDir } from '../../../src/agents/registry.js';
import { Catalog } from '../../../src/catalog/catalog.js';
import { AccurateMode } from '../../../src/jobs/backup/accurate-mode.js';
import { fileRow } from '../../../src/jobs/backup/catalog-rows.js';
import { SAMPLE_DIR, tempDir } from '../../helpers/native.js';
import { describedFile, filesystemAgent } from './agent-files.js';
import { catalogJob } from './stage-session.js';

const content = (digit: string) => [{ index: 0, name: 'data', type: 'data', rawRestorable: false, bytes: 100, sha256: digit.repeat(64) }];

/** A catalog whose committed full job "web" saved /a, /b and /c (each its own content). */
function referenceCatalog() {
  const catalog = Catalog.open(path.join(tempDir('accurate-mode'), 'data'));
  const id = catalogJob(catalog, 'web', 'full', 'committed');
  catalog.insertFiles(id, ['a', 'b', 'c'].map((name, i) => fileRow(filesystemAgent, describedFile(`/${name}`, []), i, 'ok', null, content(name))));
  return { catalog, reference: catalog.job(id)! };
}

describe('accurate mode', () => {
  it('finds what the reference job had and this one neither sent nor saw, and a new path with a deleted one\'s content as a rename', async () => {
    const { catalog, reference } = referenceCatalog();
    try {
      const mode = AccurateMode.of(catalog, filesystemAgent, 'incremental', reference)!;
      mode.saved({ ...describedFile('/a', []), seen: true }, []); // unchanged
      mode.saved(describedFile('/moved-c', [{ sizeHint: 100, pieces: [] }]), content('c')); // /c under a new name
      mode.saved(describedFile('/new', [{ sizeHint: 100, pieces: [] }]), content('d'));
      expect(await mode.changes({})).toEqual({
        deleted: [{ path: '/b', kind: 'regular' }, { path: '/c', kind: 'regular' }],
        renamed: [{ from: '/c', to: '/moved-c' }],
      });
    } finally {
      catalog.close();
    }
  });

  it('asks an agent that does not report every file about the ones it did not report, and keeps those it still has', async () => {
    const { catalog, reference } = referenceCatalog();
    try {
      const mode = AccurateMode.of(catalog, filesystemAgent, 'differential', reference)!;
      mode.saved(describedFile('/a', [{ sizeHint: 100, pieces: [] }]), content('A'));
      const asked: string[][] = [];
      const changes = await mode.changes({
        stillExisting: async (paths) => {
          asked.push(paths);
          return ['/c'];
        },
      });
      expect(asked).toEqual([['/b', '/c']]);
      expect(changes).toEqual({ deleted: [{ path: '/b', kind: 'regular' }], renamed: [] });
    } finally {
      catalog.close();
    }
  });

  it('is off for a full backup, and for an agent that does not declare "accurate"', async () => {
    const { catalog, reference } = referenceCatalog();
    try {
      const synthetic = (await loadPluginDir(SAMPLE_DIR)).get('SyntheticFiles');
      expect(synthetic.capabilities).not.toContain('accurate');
      expect(AccurateMode.of(catalog, synthetic, 'incremental', reference)).toBeNull();
      expect(AccurateMode.of(catalog, filesystemAgent, 'full', null)).toBeNull();
      expect(AccurateMode.of(catalog, filesystemAgent, 'incremental', reference)).toBeInstanceOf(AccurateMode);
    } finally {
      catalog.close();
    }
  });
});
