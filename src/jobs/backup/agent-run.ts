/**
 * What the agent is asked for (the backup request: level, reference, fileset, options, cancel)
 * and what the session records of it once the agent said which level it delivers.
 */
import type { AgentIdentity, BackupRequest } from '../../agents/agent.js';
import type { Level } from '../../agents/types.js';
import type { JobRow } from '../../catalog/catalog.js';
import type { JobConfig } from '../../config/schema.js';
import type { SessionWriter } from '../../sink/session-writer.js';
import { buildFileset } from '../../agents/fileset.js';
import type { JobLog } from './job-log.js';

export interface RunPlan {
  jobName: string;
  jobId: number;
  job: Pick<JobConfig, 'include' | 'exclude'>;
  /** The agent's options for the job (agentOptions()). */
  options: Record<string, string>;
  level: Level;
  requestedLevel: Level;
  reference: JobRow | null;
  startedNs: bigint;
  log: JobLog;
  /** Set to cancel the job (the agent sees it through is_cancelled). */
  signal?: AbortSignal;
}

export function backupRequest(plan: RunPlan): BackupRequest {
  const { job, reference } = plan;
  return {
    jobName: plan.jobName,
    jobId: plan.jobId,
    options: plan.options,
    filesetCheck: buildFileset(job.include, job.exclude),
    fileset: { include: job.include ?? [], exclude: job.exclude ?? [] },
    log: plan.log.log,
    isCancelled: () => plan.signal?.aborted ?? false,
    level: plan.level,
    sinceNs: reference ? BigInt(reference.started_ns) : 0n,
    jobStartNs: plan.startedNs,
    referenceState: reference?.state ? new Uint8Array(reference.state) : null,
  };
}

/** What to say when the agent delivers another level than the one asked for, or null. */
export function deliveredNote(agent: Pick<AgentIdentity, 'name'>, delivered: Level, level: Level): string | null {
  return delivered !== level ? `agent "${agent.name}" delivered a ${delivered} backup where ${level} was asked` : null;
}

/** The session's SESSION_INFO: the agent, its options, the levels asked for and delivered, the reference, the fileset. */
export async function beginSession(writer: SessionWriter, plan: RunPlan, agent: AgentIdentity, delivered: Level): Promise<void> {
  const note = deliveredNote(agent, delivered, plan.level);
  if (note) plan.log.warn(note);
  await writer.begin({
    jobName: plan.jobName,
    agent: { name: agent.name, version: agent.version, abi: agent.abi, kind: agent.kind, capabilities: agent.capabilities },
    options: plan.options,
    requestedLevel: plan.requestedLevel,
    deliveredLevel: delivered,
    referenceJob: plan.reference ? { id: plan.reference.id, uuid: plan.reference.uuid } : null,
    fileset: { include: plan.job.include ?? [], exclude: plan.job.exclude ?? [] },
  });
}
