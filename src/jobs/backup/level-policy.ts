/**
 * Which level a backup is made at, and on which earlier job it builds. An incremental or a
 * differential needs an agent that can make it and a committed job to build on; when either is
 * missing the job's level_policy decides: "upgrade" (the default) makes a full backup and says why,
 * "refuse" fails the job before anything is written.
 */
import type { AgentIdentity } from '../../agents/agent.js';
import type { Level } from '../../agents/types.js';
import type { Catalog, JobRow } from '../../catalog/catalog.js';
import type { JobConfig } from '../../config/schema.js';
import { AgentfdError } from '../../errors.js';

export interface LevelDecision {
  level: Level;
  /** The committed job this one builds on (null for a full backup). */
  reference: JobRow | null;
  /** Why the level differs from the one asked for, if it does. */
  note: string | null;
}

/** The job a backup of `level` builds on: the last committed one of the job, or (differential) its last full. */
export function referenceJob(catalog: Catalog, jobName: string, level: Level): JobRow | null {
  if (level === 'full') return null;
  const committed = catalog.jobs().filter((j) => j.name === jobName && j.status === 'committed');
  const candidates = level === 'differential' ? committed.filter((j) => j.level === 'full') : committed;
  return candidates.at(-1) ?? null;
}

export function decideLevel(
  catalog: Catalog,
  request: { agent: Pick<AgentIdentity, 'name' | 'capabilities'>; jobName: string; policy: JobConfig['level_policy']; requested: Level },
): LevelDecision {
  const { agent, jobName } = request;
  let level = request.requested;
  let note: string | null = null;
  if (!agent.capabilities.includes(level)) {
    if (request.policy === 'refuse') {
      throw new AgentfdError(
        'E_LEVEL_UNSUPPORTED',
        `agent "${agent.name}" cannot make ${level} backups (it declares ${agent.capabilities.filter((c) => ['full', 'incremental', 'differential'].includes(c)).join(', ')}), and job "${jobName}" has level_policy = "refuse". Run a full backup, or set level_policy = "upgrade".`,
      );
    }
    note = `agent "${agent.name}" cannot make ${level} backups; a full backup was made instead (level_policy = "upgrade")`;
    level = 'full';
  }
  const reference = referenceJob(catalog, jobName, level);
  if (level !== 'full' && !reference) {
    note = `no committed ${level === 'differential' ? 'full ' : ''}job "${jobName}" to base ${level === 'incremental' ? 'an' : 'a'} ${level} on; a full backup was made instead`;
    level = 'full';
  }
  return { level, reference, note };
}
