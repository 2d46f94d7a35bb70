/**
 * `agentfd estimate`: what a backup of a job would save, without saving it. The agent is prepared
 * as for a backup and asked its estimate() (agents that declare AFD_CAP_ESTIMATE); the built-in
 * filesystem agent is counted by walking (no data is read). Nothing is written: no volume, no
 * catalog row, no storage lock. The agent is told the "backup" failed (backup_finish with
 * AFD_STATUS_FAILED), since nothing was saved, so that it discards nothing.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Agent } from '../agents/agent.js';
import type { Level } from '../agents/types.js';
import type { AgentRegistry } from '../agents/registry.js';
import { Catalog } from '../catalog/catalog.js';
import type { AgentfdConfig } from '../config/load.js';
import { AgentfdError } from '../errors.js';
import { agentOptions, configuredJob, resolveAgent } from './agents.js';
import { referenceJob } from './backup/level-policy.js';
import { buildFileset } from '../agents/fileset.js';

export interface EstimateReport {
  job: string;
  agent: string;
  level: Level;
  /** How the numbers were found: the agent's estimate(), or a walk of the filesystem agent. */
  method: 'agent' | 'walk';
  /** Null where the agent says it does not know. */
  files: number | null;
  bytes: number | null;
  warnings: string[];
}

/** The reference job of an incremental or differential, read from the catalog if there is one. */
function reference(config: AgentfdConfig, jobName: string, level: Level) {
  if (level === 'full' || !existsSync(path.join(config.dataDir, 'catalog.sqlite'))) return null;
  const catalog = Catalog.open(config.dataDir);
  try {
    return referenceJob(catalog, jobName, level);
  } finally {
    catalog.close();
  }
}

export async function runEstimate(options: { config: AgentfdConfig; registry: AgentRegistry; jobName: string; level?: Level }): Promise<EstimateReport> {
  const { config, jobName } = options;
  const job = configuredJob(config, jobName);
  const agent: Agent = resolveAgent(job.agent, options.registry, config);
  if (agent.kind !== 'builtin' && !agent.capabilities.includes('estimate')) {
    throw new AgentfdError(
      'E_NO_ESTIMATE',
      `agent "${agent.name}" cannot estimate a backup (it does not declare AFD_CAP_ESTIMATE); run the backup to learn its size`,
    );
  }
  const warnings: string[] = [];
  let level: Level = options.level ?? 'full';
  if (!agent.capabilities.includes(level)) {
    warnings.push(`agent "${agent.name}" cannot make ${level} backups; estimated a full backup`);
    level = 'full';
  }
  const ref = reference(config, jobName, level);
  if (level !== 'full' && !ref) {
    warnings.push(`no committed job "${jobName}" to base a ${level} on; estimated a full backup`);
    level = 'full';
  }
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const run = await agent.backup({
    jobName,
    jobId: 0, // no catalog job: the header's "0 when there is no catalog"
    options: agentOptions(config, job),
    filesetCheck: buildFileset(job.include, job.exclude),
    fileset: { include: job.include ?? [], exclude: job.exclude ?? [] },
    log: (lvl, message) => {
      if (lvl === 'warning' || lvl === 'error') warnings.push(message);
    },
    isCancelled: () => false,
    level,
    sinceNs: ref ? BigInt(ref.started_ns) : 0n,
    jobStartNs: startedNs,
    referenceState: ref?.state ? new Uint8Array(ref.state) : null,
  });
  try {
    if (run.estimate) return { job: jobName, agent: agent.name, level: run.deliveredLevel, method: 'agent', ...(await run.estimate()), warnings };
    // The filesystem agent: walk, count, read nothing (a file's streams are never opened).
    let files = 0;
    let bytes = 0;
    for await (const file of run.files) {
      files++;
      if (file.kind === 'regular' && !file.seen) bytes += file.size ?? 0;
    }
    return { job: jobName, agent: agent.name, level: run.deliveredLevel, method: 'walk', files, bytes, warnings };
  } finally {
    await run.finish(false).catch(() => undefined);
    await run.close();
  }
}
