/**
 * The backup job: agent -> bridge -> pipeline -> volumes + catalog, top to bottom, as a list of
 * stages, each in its own module under backup/ with its own tests:
 *
 *   level-policy   the level the job is made at, and the job it builds on
 *   job-start      the storage claimed, the volumes opened, the job's catalog row and session start
 *   agent-run      what the agent is asked for, and the session's record of it
 *   save-files     the loop over the agent's files: each one through the file saver (file-saver,
 *                  small-files), its row into the catalog batch (catalog-batch), noted for accurate
 *                  mode (accurate-mode); which failures end the job (errors)
 *   committer      the job's end: committed, failed or aborted, in the volumes, the catalog, the agent
 *
 * A job is committed only when every file and stream arrived whole, its records are on disk
 * (fdatasync) and the catalog says so; only then is the agent told it may discard what it gave
 * (Exchange truncates its logs). Anything less ends the session as failed in the volume and the
 * catalog, and a failed session's files are never restored as if they were good.
 */
import type { Agent, BackupRun } from '../agents/agent.js';
import type { Level } from '../agents/types.js';
import type { AgentRegistry } from '../agents/registry.js';
import { Catalog } from '../catalog/catalog.js';
import type { AgentfdConfig } from '../config/load.js';
import { formatCompression, parseCompression } from '../pipeline/codecs.js';
import { SessionWriter } from '../sink/session-writer.js';
import type { VolumeWriter } from '../volume/index.js';
import { agentOptions, configuredJob, resolveAgent } from './agents.js';
import { AccurateMode, NO_CHANGES } from './backup/accurate-mode.js';
import { backupRequest, beginSession, deliveredNote, type RunPlan } from './backup/agent-run.js';
import { CatalogBatch } from './backup/catalog-batch.js';
import { Committer } from './backup/committer.js';
import { FileSaver, type BackupProgress } from './backup/file-saver.js';
import { JobLog } from './backup/job-log.js';
import { openVolumes, startJob } from './backup/job-start.js';
import { decideLevel } from './backup/level-policy.js';
import { saveFiles } from './backup/save-files.js';
import { jobCrypto } from './encryption.js';
import { lockStorage } from './lock.js';

export type { BackupProgress } from './backup/file-saver.js';

export interface BackupOptions {
  config: AgentfdConfig;
  registry: AgentRegistry;
  jobName: string;
  level?: Level;
  onProgress?: (progress: BackupProgress) => void;
  onLog?: (level: string, message: string) => void;
  /** Set to cancel the job (the agent sees it through is_cancelled). */
  signal?: AbortSignal;
  /** Use this agent instead of the job's (library use: benchmarks, embedding). */
  agent?: Agent;
}

export interface BackupReport {
  jobId: number;
  uuid: string;
  status: 'committed' | 'failed' | 'aborted';
  job: string;
  agent: string;
  requestedLevel: Level;
  level: Level;
  files: number;
  failedFiles: number;
  /** Accurate mode: files found deleted, and renamed, since the reference job. */
  deleted: number;
  renamed: { from: string; to: string }[];
  referenceJob: number | null;
  /** Why the level differs from the one asked for, if it does. */
  levelNote: string | null;
  bytes: number;
  storedBytes: number;
  compression: string;
  encrypted: boolean;
  signed: boolean;
  volumes: string[];
  errors: string[];
  warnings: string[];
  seconds: number;
}

export async function runBackup(options: BackupOptions): Promise<BackupReport> {
  const { config, jobName } = options;
  const job = configuredJob(config, jobName);
  const compression = parseCompression(job.compression);
  const agent: Agent = options.agent ?? resolveAgent(job.agent, options.registry, config);
  const crypto = jobCrypto(job);
  const started = Date.now();
  const startedNs = BigInt(started) * 1_000_000n;
  const requestedLevel = options.level ?? 'full';
  const log = new JobLog(options.onLog);

  const lock = lockStorage(config.storageDir);
  const catalog = Catalog.open(config.dataDir);
  catalog.keepSpaceReserve();
  let volumes: VolumeWriter | null = null;
  let saver: FileSaver | null = null;
  let batch: CatalogBatch | null = null;
  try {
    const stale = catalog.abortStaleJobs();
    if (stale > 0) log.warn(`${stale} job(s) left running by an agentfd that stopped were marked aborted`);
    const { level, reference, note } = decideLevel(catalog, { agent, jobName, policy: job.level_policy, requested: requestedLevel });
    if (note) log.warn(note);
    volumes = await openVolumes(catalog, config, log);
    const { jobId, uuid, start } = startJob(catalog, {
      jobName, agent, level, requestedLevel, reference, startedNs, compression: formatCompression(compression), crypto,
    });
    const committer = new Committer({ catalog, jobId, jobName, agent, log });
    let writer: SessionWriter | null = null;
    let run: BackupRun | null = null;
    try {
      writer = new SessionWriter(volumes, start, crypto.key);
      saver = new FileSaver(writer, agent, compression, options.onProgress);
      const plan: RunPlan = { jobName, jobId, job, options: agentOptions(config, job), level, requestedLevel, reference, startedNs, log, signal: options.signal };
      run = await agent.backup(backupRequest(plan));
      const delivered = run.deliveredLevel;
      await beginSession(writer, plan, agent, delivered);
      batch = new CatalogBatch(catalog, config.dataDir, jobId);
      const accurateMode = AccurateMode.of(catalog, agent, level, reference);
      const files = await saveFiles(run.files, { saver, writer, batch, accurate: accurateMode, agent, log, onProgress: options.onProgress });
      const accurate = files.fatal === null && accurateMode ? await accurateMode.changes(run) : NO_CHANGES;
      const { status, end } = await committer.commit(
        { volumes, writer, batch, run, signer: crypto.signer },
        { ...files, bytes: saver.bytes, accurate, level: delivered },
      );
      return {
        jobId, uuid, status, job: jobName, agent: agent.name, requestedLevel, level: delivered, files: files.files, failedFiles: files.failedFiles,
        deleted: accurate.deleted.length, renamed: accurate.renamed, referenceJob: reference?.id ?? null,
        levelNote: note ?? deliveredNote(agent, delivered, level), bytes: saver.bytes, storedBytes: end.storedBytes,
        compression: start.compression, encrypted: crypto.key !== null, signed: crypto.signer !== null,
        volumes: writer.placements.map((p) => p.path), errors: log.errors, warnings: log.warnings, seconds: (Date.now() - started) / 1000,
      };
    } catch (e) {
      throw await committer.fail(e, writer, run);
    }
  } finally {
    await saver?.close();
    await batch?.close();
    await volumes?.close({ final: false }).catch(() => undefined);
    catalog.close();
    lock.release();
  }
}
