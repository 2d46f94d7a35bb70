/**
 * The committer: how a backup job ends, in the volumes, the catalog and the agent, in that order.
 *
 * commit() ends a job whose agent run went to its end or stopped (a failed file, a crash, a
 * cancel): the session's closing records are written (accurate mode's changes, the agent's state,
 * the signed SESSION_END with the status), the volumes synced, the catalog's rows written and the
 * job finished in one transaction, and only then is the agent told whether the job was committed
 * (and so whether it may discard what it gave: Exchange truncates its logs).
 *
 * fail() ends a job that something below the agent broke (a full disk, a lost volume): the job is
 * failed in the catalog, and in the volume too when it can still be written; the agent is told at
 * once and its host stopped.
 */
import type { AgentIdentity, BackupRun } from '../../agents/agent.js';
import type { Level } from '../../agents/types.js';
import type { KeyObject } from 'node:crypto';
import type { Catalog } from '../../catalog/catalog.js';
import { messageOf } from '../../errors.js';
import type { SessionEnd } from '../../pipeline/records.js';
import type { SessionWriter } from '../../sink/session-writer.js';
import type { VolumeWriter } from '../../volume/index.js';
import type { AccurateRecord } from '../../pipeline/records.js';
import { deletedRows } from './catalog-rows.js';
import type { CatalogBatch } from './catalog-batch.js';
import { isAbort, jobFailure } from './errors.js';
import type { JobLog } from './job-log.js';
import type { FilesOutcome } from './save-files.js';

const nowNs = () => BigInt(Date.now()) * 1_000_000n;

/** What the job saved, as the committer records it. */
export interface JobOutcome extends FilesOutcome {
  bytes: number;
  accurate: AccurateRecord;
  /** The level the agent delivered. */
  level: Level;
}

/** Where the job was being written. */
export interface OpenJob {
  volumes: Pick<VolumeWriter, 'sync'>;
  writer: SessionWriter;
  batch: CatalogBatch;
  run: BackupRun;
  /** Signs the session's manifest, or null. */
  signer: KeyObject | null;
}

export interface Committed {
  status: SessionEnd['status'];
  end: SessionEnd;
}

export class Committer {
  constructor(
    private readonly job: {
      catalog: Catalog;
      jobId: number;
      jobName: string;
      agent: Pick<AgentIdentity, 'name' | 'version' | 'abi'>;
      log: JobLog;
    },
  ) {}

  /** End the job: committed when nothing failed and nothing was logged as an error; else failed, or aborted (errors.ts). */
  async commit(open: OpenJob, outcome: JobOutcome): Promise<Committed> {
    const { catalog, jobId, agent, log } = this.job;
    const { writer, run } = open;
    const { accurate } = outcome;
    if (accurate.deleted.length > 0 || accurate.renamed.length > 0) await writer.accurate(accurate);
    open.batch.addAll(deletedRows(agent, accurate.deleted, outcome.files));
    const state = outcome.fatal ? null : run.state();
    if (state) await writer.state(state);
    const ok = outcome.fatal === null && outcome.failedFiles === 0 && log.errors.length === 0;
    const status = ok ? 'committed' : isAbort(outcome.fatal) ? 'aborted' : 'failed';
    // Read when written: an agent may still log an error while the volumes sync.
    const error = () => (ok ? null : log.firstError);
    const end = await writer.end(
      { status, endedNs: nowNs().toString(), files: outcome.files, failedFiles: outcome.failedFiles, bytes: outcome.bytes, error: error() },
      open.signer,
    );
    await open.volumes.sync();
    await open.batch.commit();
    catalog.transaction(() => {
      for (const r of accurate.renamed) catalog.setRenamedFrom(jobId, r.to, r.from);
      for (const p of writer.placements) catalog.addJobVolume(jobId, p.label, p.path, p.firstOffset);
      catalog.finishJob(jobId, {
        status, endedNs: nowNs(), files: outcome.files, bytes: outcome.bytes, storedBytes: end.storedBytes, error: error(), state, level: outcome.level,
      });
    });
    try {
      await run.finish(ok);
    } catch (e) {
      log.warn(`the job is ${status}, but agent "${agent.name}" failed to finish: ${messageOf(e)}`);
    }
    await run.close();
    return { status, end };
  }

  /**
   * End a job that failed below the agent; returns the error to throw (its code kept, the job named).
   * `writer` and `run` are null when the job failed before it had them.
   */
  async fail(error: unknown, writer: SessionWriter | null, run: BackupRun | null): Promise<Error> {
    const { catalog, jobId, jobName, log } = this.job;
    const message = messageOf(error);
    log.keepError(message);
    let catalogNote = '';
    await writer
      ?.end({ status: 'failed', endedNs: nowNs().toString(), files: 0, failedFiles: 0, bytes: 0, error: message }, null)
      .catch(() => undefined);
    const markFailed = () => catalog.finishJob(jobId, { status: 'failed', endedNs: nowNs(), files: 0, bytes: 0, storedBytes: 0, error: message, state: null });
    try {
      try {
        markFailed();
      } catch (full) {
        // The catalog's disk is full too: free the reserve kept for this moment, and try again.
        if (!catalog.releaseSpaceReserve()) throw full;
        markFailed();
      }
    } catch (catalogError) {
      // Still no room (or another catalog failure): the job stays "running" there until the next
      // backup opens the catalog and marks it aborted (abortStaleJobs).
      catalogNote = `; the catalog could not mark the job failed (${messageOf(catalogError)}): the next backup marks it aborted`;
    }
    // The agent is told at once and its host stopped (an isolated host is killed after a short
    // grace): a write error must not wait for the agent.
    await run?.finish(false).catch(() => undefined);
    await run?.close().catch(() => undefined);
    return jobFailure(jobId, jobName, error, `${message}${catalogNote}`);
  }
}
