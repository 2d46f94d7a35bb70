/**
 * Restore chains: a point in time is a full backup, then the differential and incrementals built
 * on it, in order. The state a job leaves is its reference's state, plus what it reported, minus
 * what it recorded as deleted (accurate mode); a "seen" file keeps the version an earlier job
 * saved. Restoring a point in time hands each path's latest saved version to its agent, job by job,
 * full first, and never brings back a deleted file.
 */
import type { Catalog, JobRow } from '../catalog/catalog.js';
import { AgentfdError } from '../errors.js';

/** The job and the jobs it builds on, back to its full backup: oldest (the full) first. */
export function restoreChain(catalog: Catalog, jobId: number): JobRow[] {
  const chain: JobRow[] = [];
  const visited = new Set<number>();
  for (let id: number | null = jobId; id !== null; ) {
    const job = catalog.job(id);
    if (!job) {
      throw new AgentfdError('E_CHAIN_BROKEN', `job ${jobId} builds on job ${id}, which is not in the catalog; scan the volume that holds it (agentfd scan) or restore an older point in time`);
    }
    if (visited.has(id)) throw new AgentfdError('E_CHAIN_BROKEN', `the catalog's reference jobs form a loop at job ${id}`);
    visited.add(id);
    if (job.status !== 'committed') {
      throw new AgentfdError('E_JOB_NOT_RESTORABLE', `job ${job.id} (${job.name}) is ${job.status}${job.error ? ` (${job.error})` : ''}: its files are not known to be complete, so agentfd will not restore them as if they were`);
    }
    chain.unshift(job);
    if (job.level === 'full') break;
    if (job.reference_job === null) throw new AgentfdError('E_CHAIN_BROKEN', `job ${job.id} is ${job.level} but records no reference job`);
    id = job.reference_job;
  }
  return chain;
}

export interface RestorePlan {
  /** Oldest first. */
  chain: JobRow[];
  /** For each job of the chain, the file indexes whose version is restored from it. */
  select: Map<number, Set<number>>;
  /** Paths the point in time has, and those deleted on the way. */
  paths: number;
  deleted: string[];
  /** Seen files whose saved version no job of the chain has (an agent's error). */
  missing: string[];
  /** The agents that saved the versions restored. */
  agents: string[];
}

export function planRestore(catalog: Catalog, jobId: number): RestorePlan {
  const chain = restoreChain(catalog, jobId);
  // path -> where its version comes from
  let state = new Map<string, { jobId: number; fileIndex: number; agent: string }>();
  const missing = new Set<string>();
  const deleted: string[] = [];
  for (const job of chain) {
    const next = job.level === 'full' ? new Map<string, { jobId: number; fileIndex: number; agent: string }>() : new Map(state);
    for (const file of catalog.files(job.id)) {
      if (file.status === 'deleted') {
        next.delete(file.path);
        deleted.push(file.path);
      } else if (file.status === 'ok' && file.seen === 0) {
        next.set(file.path, { jobId: job.id, fileIndex: file.file_index, agent: file.agent });
        missing.delete(file.path);
      } else if (file.status === 'ok' && file.seen === 1 && !state.has(file.path)) {
        missing.add(file.path);
      }
    }
    state = next;
  }
  const select = new Map(chain.map((job) => [job.id, new Set<number>()]));
  for (const source of state.values()) select.get(source.jobId)!.add(source.fileIndex);
  const agents = [...new Set([...state.values()].map((source) => source.agent))];
  return { chain, select, paths: state.size, deleted, missing: [...missing], agents };
}

/** The newest committed job named `name` that started at or before `at`. */
export function jobAt(catalog: Catalog, name: string, at: Date): JobRow {
  const limit = BigInt(at.getTime()) * 1_000_000n;
  const candidates = catalog.jobs().filter((j) => j.name === name && j.status === 'committed' && BigInt(j.started_ns) <= limit);
  const job = candidates.at(-1);
  if (!job) {
    throw new AgentfdError('E_UNKNOWN_JOB', `no committed job "${name}" started at or before ${at.toISOString()}; agentfd jobs lists them`);
  }
  return job;
}
