/**
 * The restore job: volumes -> session reader (authenticate, decrypt, decompress, re-digest) ->
 * routing -> the agent that saved each file (or an override, or raw plain files). As stages, under
 * restore/: agent-runs (the agents checked, then started once each) and file-restorer (a session's
 * file events into agent calls); here the chain is verified and read, job by job.
 *
 * Nothing is written before the job's key opened and every agent it needs is known to be there.
 * Agents write each file under a temporary name and only give it its real name when the host says
 * the file is whole (endFile(true)), which happens after the stream's digest was checked; a file
 * whose data turns out bad is discarded, never left looking complete.
 */
import path from 'node:path';
import picomatch from 'picomatch';
import type { LogLevel } from '../agents/types.js';
import type { AgentRegistry } from '../agents/registry.js';
import type { Catalog, JobRow } from '../catalog/catalog.js';
import type { AgentfdConfig } from '../config/load.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError, messageOf } from '../errors.js';
import { NAMES_IGNORE_CASE } from '../platform/os.js';
import { prefetch } from '../pipeline/prefetch.js';
import { StreamHasher } from '../pipeline/stream-hasher.js';
import type { VerifiedRecords } from '../sink/manifest.js';
import { readSession } from '../sink/session-reader.js';
import { planRestore } from './chain.js';
import { AgentRuns, checkAgentsInstalled } from './restore/agent-runs.js';
import { FileRestorer } from './restore/file-restorer.js';
import { checkTrust, expectedSession, signatureState, verifySignedSession, weakest, type SignatureState } from './signatures.js';
import { unescapeBytes } from '../platform/byte-names.js';

export interface RestoreOptions {
  /** For how agents are run (isolation); the defaults when absent. */
  config?: AgentfdConfig;
  catalog: Catalog;
  registry: AgentRegistry;
  jobId: number;
  to: string;
  /** Route every file to this agent instead of the one recorded. */
  agent?: string;
  /** Write every stream as a plain file under `to`. */
  raw?: boolean;
  /** Agent options that replace the ones recorded on the volume (a Bacula plugin's `command`). */
  optionOverrides?: Record<string, string>;
  include?: string[];
  secrets: UnwrapSecrets;
  /** Restore a job signed by a key not trusted at scan (see signatures.ts). */
  allowUntrustedSigner?: boolean;
  onProgress?: (p: { files: number; bytes: number; path: string }) => void;
  onLog?: (level: LogLevel, message: string) => void;
}

export interface RestoreReport {
  jobId: number;
  status: 'restored' | 'failed';
  to: string;
  mode: 'agent' | 'raw';
  files: number;
  skipped: number;
  bytes: number;
  agents: string[];
  signature: SignatureState;
  errors: string[];
  seconds: number;
  /** The jobs restored, full first: the point in time. */
  chain: { jobId: number; level: string; files: number }[];
  deleted: number;
}

export { rawPath } from './restore/file-restorer.js';

/** Session events read ahead of the agent's writes (each chunk event holds up to 1 MiB). */
const READ_AHEAD = 4;

export async function runRestore(options: RestoreOptions): Promise<RestoreReport> {
  const started = Date.now();
  const { catalog, jobId } = options;
  const job = catalog.job(jobId);
  if (!job) throw new AgentfdError('E_UNKNOWN_JOB', `there is no job ${jobId} in the catalog ${catalog.file}; agentfd jobs lists them, agentfd scan adds jobs from volumes`);
  // The point in time: the job and the jobs it builds on, full first (refuses failed or aborted ones).
  const plan = planRestore(catalog, jobId);
  const raw = options.raw ?? false;
  if (raw && options.agent) throw new AgentfdError('E_USAGE', '--raw and --agent exclude each other');
  checkAgentsInstalled(raw ? [] : options.agent ? [options.agent] : plan.agents, options.registry, jobId, options.agent);

  const to = path.resolve(options.to);
  const errors: string[] = [];
  const log = (level: LogLevel, message: string) => {
    if (level === 'error') errors.push(message);
    options.onLog?.(level, message);
  };
  const runs = new AgentRuns(
    { registry: options.registry, config: options.config, jobName: job.name, jobId, target: to, overrides: options.optionOverrides ?? {}, log },
    { abi: job.agent_abi, version: job.agent_version },
  );
  // Windows names ignore case; a byte that is not UTF-8 is written \xNN in a pattern, as `files` shows it.
  const include = options.include && options.include.length > 0 ? picomatch(options.include.map(unescapeBytes), { dot: true, nocase: NAMES_IGNORE_CASE }) : null;
  const restorer = new FileRestorer({ runFor: (name) => runs.runFor(name), raw, agent: options.agent, include, log, onProgress: options.onProgress });
  const hasher = new StreamHasher();
  let signature: SignatureState = 'unchecked';
  try {
    const verified = await verifyChain(plan.chain, catalog, options);
    for (const part of plan.chain) {
      const read = await restoreJob(part, plan.select.get(part.id)!, verified.get(part.id), { ...options, runs, restorer, hasher });
      if (read !== null) signature = weakest(signature, read); // the weakest state of the chain is reported
    }
    await runs.finish();
  } catch (error) {
    // Bad data or a failing agent: the open file is discarded, and nothing is called complete.
    await restorer.abort();
    errors.push(messageOf(error));
    await runs.close(true);
    await hasher.close();
    throw Object.assign(error instanceof AgentfdError ? error : new AgentfdError('E_RESTORE', messageOf(error), { cause: error }), { jobId, restoredFiles: restorer.files });
  }
  await runs.close();
  await hasher.close();
  return {
    jobId, status: errors.length === 0 ? 'restored' : 'failed', to, mode: raw ? 'raw' : 'agent', files: restorer.files, skipped: restorer.skipped, bytes: restorer.bytes,
    agents: runs.names(), signature, errors, seconds: (Date.now() - started) / 1000,
    chain: plan.chain.map((j) => ({ jobId: j.id, level: j.level, files: plan.select.get(j.id)!.size })), deleted: plan.deleted.length,
  };
}

/**
 * Each signed job of the chain is read once before anything is written: its signature is checked
 * against the signer the catalog records, and the records it covers are kept for the second read.
 */
async function verifyChain(chain: readonly JobRow[], catalog: Catalog, options: RestoreOptions): Promise<Map<number, VerifiedRecords>> {
  const verified = new Map<number, VerifiedRecords>();
  for (const part of chain) {
    checkTrust(part, options.allowUntrustedSigner ?? false);
    if (part.signer !== null) verified.set(part.id, await verifySignedSession(catalog, part, options.secrets));
  }
  return verified;
}

/** One job of the chain, read from its volumes into the restorer; its signature state once its end was read. */
async function restoreJob(
  part: JobRow,
  select: ReadonlySet<number>,
  verified: VerifiedRecords | undefined,
  ctx: RestoreOptions & { runs: AgentRuns; restorer: FileRestorer; hasher: StreamHasher },
): Promise<SignatureState | null> {
  const placements = ctx.catalog.jobVolumes(part.id).map((v) => ({ path: v.path, firstOffset: v.first_offset }));
  // The reader runs a few events ahead (reading, opening, decompressing and checking the next
  // chunks) while the agent writes this one.
  const events = prefetch(
    readSession({ jobId: part.id, placements, secrets: ctx.secrets, data: true, what: `job ${part.id} (${part.name})`, hasher: ctx.hasher, expect: expectedSession(part), verified }),
    READ_AHEAD,
  );
  const selected = (fileIndex: number) => select.has(fileIndex);
  let signature: SignatureState | null = null;
  for await (const event of events) {
    switch (event.kind) {
      case 'info':
        ctx.runs.recorded({ options: event.info.options, trusted: signatureState(part) === 'valid', abi: event.info.agent.abi, version: event.info.agent.version });
        break;
      case 'file':
      case 'chunk':
      case 'streamEnd':
      case 'fileEnd':
        await ctx.restorer.event(event, selected);
        break;
      case 'end':
        signature = signatureState(part);
        break;
      default:
        break;
    }
  }
  return signature;
}
