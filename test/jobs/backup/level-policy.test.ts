/**
 * The level policy of a backup: the level asked for when the agent can make it and a committed job
 * of the same name exists to build on; else a full backup with the reason said, or (level_policy =
 * "refuse") an error before anything is written. Real catalogs, real agent descriptors.
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AgentIdentity } from '../../../src/agents/agent.js';
import { createFilesystemAgent } from '../../../src/agents/filesystem/index.js';
import { loadPluginDir } from '../../../src/agents/registry.js';
import { Catalog } from '../../../src/catalog/catalog.js';
import { decideLevel, referenceJob } from '../../../src/jobs/backup/level-policy.js';
import { SAMPLE_DIR, tempDir } from '../../helpers/native.js';
import { catalogJob } from './stage-session.js';

const filesystem = createFilesystemAgent();
/** LegacyFlatFiles declares full backups only (native-samples/legacy). */
let legacy: Pick<AgentIdentity, 'name' | 'capabilities'>;

beforeAll(async () => {
  legacy = (await loadPluginDir(SAMPLE_DIR)).get('LegacyFlatFiles');
});

function freshCatalog(): Catalog {
  return Catalog.open(path.join(tempDir('level-policy'), 'data'));
}

describe('level policy', () => {
  it('builds an incremental on the last committed job of its name, a differential on its last committed full', () => {
    const catalog = freshCatalog();
    try {
      const full = catalogJob(catalog, 'web', 'full', 'committed');
      const incremental = catalogJob(catalog, 'web', 'incremental', 'committed');
      catalogJob(catalog, 'web', 'incremental', 'failed');
      catalogJob(catalog, 'web', 'full', 'aborted');
      catalogJob(catalog, 'mail', 'full', 'committed');
      const asked = (requested: 'incremental' | 'differential') => decideLevel(catalog, { agent: filesystem, jobName: 'web', policy: 'upgrade', requested });
      expect(asked('incremental')).toMatchObject({ level: 'incremental', note: null, reference: { id: incremental } });
      expect(asked('differential')).toMatchObject({ level: 'differential', note: null, reference: { id: full } });
      expect(decideLevel(catalog, { agent: filesystem, jobName: 'web', policy: 'upgrade', requested: 'full' })).toEqual({ level: 'full', note: null, reference: null });
    } finally {
      catalog.close();
    }
  });

  it('makes a full backup, and says why, when no committed job of its name is there to build on', () => {
    const catalog = freshCatalog();
    try {
      catalogJob(catalog, 'web', 'full', 'failed');
      catalogJob(catalog, 'web', 'full', 'running');
      catalogJob(catalog, 'mail', 'full', 'committed');
      expect(decideLevel(catalog, { agent: filesystem, jobName: 'web', policy: 'refuse', requested: 'incremental' })).toEqual({
        level: 'full', reference: null, note: 'no committed job "web" to base an incremental on; a full backup was made instead',
      });
      catalogJob(catalog, 'web', 'incremental', 'committed'); // not a full: a differential still has nothing to build on
      expect(decideLevel(catalog, { agent: filesystem, jobName: 'web', policy: 'upgrade', requested: 'differential' })).toEqual({
        level: 'full', reference: null, note: 'no committed full job "web" to base a differential on; a full backup was made instead',
      });
      expect(referenceJob(catalog, 'web', 'differential')).toBeNull();
    } finally {
      catalog.close();
    }
  });

  it('upgrades a level the agent cannot make to a full backup under level_policy = "upgrade"', () => {
    const catalog = freshCatalog();
    try {
      catalogJob(catalog, 'flat', 'full', 'committed');
      expect(decideLevel(catalog, { agent: legacy, jobName: 'flat', policy: 'upgrade', requested: 'incremental' })).toEqual({
        level: 'full', reference: null,
        note: 'agent "LegacyFlatFiles" cannot make incremental backups; a full backup was made instead (level_policy = "upgrade")',
      });
    } finally {
      catalog.close();
    }
  });

  it('refuses a level the agent cannot make under level_policy = "refuse", naming the levels it declares', () => {
    const catalog = freshCatalog();
    try {
      catalogJob(catalog, 'flat', 'full', 'committed');
      const refused = () => decideLevel(catalog, { agent: legacy, jobName: 'flat', policy: 'refuse', requested: 'differential' });
      expect(refused).toThrow(expect.objectContaining({ code: 'E_LEVEL_UNSUPPORTED' }));
      expect(refused).toThrow('agent "LegacyFlatFiles" cannot make differential backups (it declares full), and job "flat" has level_policy = "refuse"');
    } finally {
      catalog.close();
    }
  });
});
