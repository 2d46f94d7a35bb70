/**
 * The committer, ending real jobs of real agents in their host processes: a job whose files all
 * arrived is committed in the volume and the catalog before the agent is told (the Exchange sample
 * truncates its logs only then); a job with a failed file, or an error logged, is failed and the
 * agent told so (the logs stay); a cancelled job is aborted; and a job broken below the agent is
 * failed everywhere it can still be written, with its error's code kept.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Agent, BackupRun } from '../../../src/agents/agent.js';
import { loadAgentLibrary } from '../../../src/agents/load.js';
import { loadPluginDir, type AgentRegistry } from '../../../src/agents/registry.js';
import { NativeAgent } from '../../../src/bridge/native-agent.js';
import { Catalog } from '../../../src/catalog/catalog.js';
import { AgentfdError } from '../../../src/errors.js';
import { resolveAgent } from '../../../src/jobs/agents.js';
import { NO_CHANGES } from '../../../src/jobs/backup/accurate-mode.js';
import { CatalogBatch } from '../../../src/jobs/backup/catalog-batch.js';
import { Committer } from '../../../src/jobs/backup/committer.js';
import { FileSaver } from '../../../src/jobs/backup/file-saver.js';
import { saveFiles, type FilesOutcome } from '../../../src/jobs/backup/save-files.js';
import { parseCompression } from '../../../src/pipeline/codecs.js';
import type { SessionEvent } from '../../../src/sink/session-reader.js';
import { SAMPLE_DIR, makePluginDir, tempDir } from '../../helpers/native.js';
import { openStageSession, type StageSession } from './stage-session.js';

let registry: AgentRegistry;
/** The test agent that breaks one rule at a time and traces the calls it gets (test/fixtures/native/contract_agent.c). */
let contract: AgentRegistry;
beforeAll(async () => {
  registry = await loadPluginDir(SAMPLE_DIR);
  contract = await loadPluginDir(makePluginDir(['contract_agent']));
});

const logName = (n: number) => `E${n.toString(16).toUpperCase().padStart(8, '0')}.log`;

/** An Exchange-like store (native-samples/exchange): one database and three logs. */
function exchangeStore(): { store: string; logs: string } {
  const store = path.join(tempDir('committer-store'), 'store');
  const logs = path.join(store, 'SG1', 'logs');
  mkdirSync(logs, { recursive: true });
  writeFileSync(path.join(store, 'SG1', 'DB1.edb'), randomBytes(200_000));
  for (let n = 1; n <= 3; n++) writeFileSync(path.join(logs, logName(n)), randomBytes(3000 + n));
  return { store, logs };
}

interface SavedJob {
  agent: Agent;
  session: StageSession;
  run: BackupRun;
  saver: FileSaver;
  batch: CatalogBatch;
  files: FilesOutcome;
  committer: Committer;
}

/** A job of `agentName` with `options`, its files saved through the job's stages, ready to be ended. */
async function savedJob(agentName: string | Agent, options: Record<string, string>, isCancelled = () => false, onFile?: (files: number) => void): Promise<SavedJob> {
  const agent = typeof agentName === 'string' ? resolveAgent(agentName, registry) : agentName;
  agentName = agent.name;
  const session = await openStageSession({ agent, jobName: agentName });
  const run = await agent.backup({
    jobName: agentName, jobId: session.jobId, options, filesetCheck: () => true, log: session.log.log, isCancelled,
    level: 'full', sinceNs: 0n, jobStartNs: BigInt(Date.now()) * 1_000_000n, referenceState: null,
  });
  const saver = new FileSaver(session.writer, agent, parseCompression('none'));
  const batch = new CatalogBatch(session.catalog, session.dataDir, session.jobId);
  const files = await saveFiles(run.files, { saver, writer: session.writer, batch, accurate: null, agent, log: session.log, onProgress: (p) => onFile?.(p.files) });
  const committer = new Committer({ catalog: session.catalog, jobId: session.jobId, jobName: agentName, agent, log: session.log });
  return { agent, session, run, saver, batch, files, committer };
}

async function commit(job: SavedJob) {
  const { session, run, saver, batch, files } = job;
  return job.committer.commit({ volumes: session.volumes, writer: session.writer, batch, run, signer: null }, { ...files, bytes: saver.bytes, accurate: NO_CHANGES, level: 'full' });
}

async function release(job: SavedJob): Promise<void> {
  await job.saver.close();
  await job.batch.close();
  await job.session.close();
}

const sessionEnd = (events: SessionEvent[]) => events.find((e) => e.kind === 'end');

describe('committer', () => {
  it('commits a whole job in the volume and the catalog, then tells the agent, which may then discard what it gave', async () => {
    const { store, logs } = exchangeStore();
    const job = await savedJob('MicrosoftExchange', { store });
    try {
      expect(readdirSync(logs)).toHaveLength(3);
      const { status, end } = await commit(job);
      expect(status).toBe('committed');
      expect(end).toMatchObject({ status: 'committed', files: 4, failedFiles: 0, error: null });
      const { catalog, jobId } = job.session;
      expect(catalog.job(jobId)).toMatchObject({ status: 'committed', files: 4, bytes: job.saver.bytes, stored_bytes: end.storedBytes, error: null, level: 'full' });
      expect(catalog.job(jobId)!.state).not.toBeNull(); // the agent's log checkpoint, for the next incremental
      expect(catalog.files(jobId).map((f) => [f.path, f.status])).toEqual([
        ['/@exchange/SG1/DB1.edb', 'ok'],
        ...[1, 2, 3].map((n) => [`/@exchange/SG1/logs/${logName(n)}`, 'ok']),
      ]);
      expect(catalog.jobVolumes(jobId).map((v) => v.path)).toEqual(job.session.writer.placements.map((p) => p.path));
      const events = await job.session.events();
      expect(events.some((e) => e.kind === 'state')).toBe(true);
      expect(sessionEnd(events)).toMatchObject({ end: { status: 'committed' } });
      // Told the job was committed, the agent truncated the logs it saved (the newest stays).
      expect(readdirSync(logs)).toEqual([logName(3)]);
    } finally {
      await release(job);
    }
  });

  it('fails a job in which an error was logged, and the agent, told so, keeps everything', async () => {
    const { store, logs } = exchangeStore();
    const job = await savedJob('MicrosoftExchange', { store });
    try {
      job.session.log.log('error', 'a catalog row could not be checked');
      const { status, end } = await commit(job);
      expect(status).toBe('failed');
      expect(end).toMatchObject({ status: 'failed', files: 4, error: 'a catalog row could not be checked' });
      expect(job.session.catalog.job(job.session.jobId)).toMatchObject({ status: 'failed', error: 'a catalog row could not be checked' });
      expect(sessionEnd(await job.session.events())).toMatchObject({ end: { status: 'failed' } });
      expect(readdirSync(logs)).toHaveLength(3);
      expect(job.session.log.warnings).toContain('the job failed: transaction log truncation skipped');
    } finally {
      await release(job);
    }
  });

  it('aborts a cancelled job: no agent state kept, the cancel as its error', async () => {
    let cancelled = false;
    const job = await savedJob('SyntheticFiles', { files: '1000000', size: '16' }, () => cancelled, (files) => (cancelled ||= files >= 100));
    try {
      expect(job.files.fatal).toMatchObject({ code: 'E_CANCELLED' });
      expect(job.files.files).toBeLessThan(1_000_000);
      const { status, end } = await commit(job);
      expect(status).toBe('aborted');
      expect(end.error).toMatch(/the job was cancelled while/);
      const row = job.session.catalog.job(job.session.jobId)!;
      expect(row).toMatchObject({ status: 'aborted', state: null, files: job.files.files });
      expect(job.session.catalog.files(job.session.jobId)).toHaveLength(job.files.files);
      const events = await job.session.events();
      expect(events.some((e) => e.kind === 'state')).toBe(false);
      expect(sessionEnd(events)).toMatchObject({ end: { status: 'aborted' } });
    } finally {
      await release(job);
    }
  });

  it("keeps no agent state of a job its agent's failure ended, and tells the agent the job failed", async () => {
    const trace = path.join(tempDir('committer-trace'), 'trace');
    // In this process: an isolated agent's host sends its state only with the run's last file.
    const job = await savedJob(new NativeAgent(loadAgentLibrary(contract.get('Contract'))), { files: '3', file_bytes: '100', state_sizes: '8', fail_read_at: '2', trace });
    try {
      expect(job.files).toMatchObject({ files: 2, failedFiles: 1, fatal: { code: 'E_FILE_FAILED' } });
      expect(job.run.state()).not.toBeNull(); // the agent did store a state blob
      const { status } = await commit(job);
      expect(status).toBe('failed');
      expect(job.session.catalog.job(job.session.jobId)).toMatchObject({ status: 'failed', state: null });
      expect((await job.session.events()).some((e) => e.kind === 'state')).toBe(false);
      expect(readFileSync(trace, 'utf8').trim().split('\n').slice(-2)).toEqual(['backup_finish 1', 'close']);
    } finally {
      await release(job);
    }
  });

  it('fails a job broken below the agent everywhere it can still be written, keeping its error code, and tells the agent at once', async () => {
    const { store, logs } = exchangeStore();
    const job = await savedJob('MicrosoftExchange', { store });
    try {
      const error = await job.committer.fail(new AgentfdError('E_STORAGE', 'no space left on the volume disk'), job.session.writer, job.run);
      expect(error).toMatchObject({ code: 'E_STORAGE', jobId: job.session.jobId, message: `job ${job.session.jobId} (MicrosoftExchange) failed: no space left on the volume disk` });
      expect(job.session.catalog.job(job.session.jobId)).toMatchObject({ status: 'failed', error: 'no space left on the volume disk', files: 0 });
      expect(sessionEnd(await job.session.events())).toMatchObject({ end: { status: 'failed', error: 'no space left on the volume disk' } });
      expect(readdirSync(logs)).toHaveLength(3);
      expect(job.session.log.errors).toEqual(['no space left on the volume disk']);
    } finally {
      await release(job);
    }
  });

  it('when the catalog cannot mark the job failed, frees its space reserve, says so, and the next backup marks the job aborted', async () => {
    const { store } = exchangeStore();
    const job = await savedJob('MicrosoftExchange', { store });
    const { catalog, dataDir, jobId } = job.session;
    catalog.keepSpaceReserve();
    expect(existsSync(path.join(dataDir, 'catalog.reserve'))).toBe(true);
    try {
      catalog.close(); // the catalog can no longer be written
      const error = await job.committer.fail(new Error('write EIO'), job.session.writer, job.run);
      expect(error).toMatchObject({ code: 'E_JOB_FAILED' });
      expect(error.message).toMatch(/^job \d+ \(MicrosoftExchange\) failed: write EIO; the catalog could not mark the job failed \(.+\): the next backup marks it aborted$/);
      expect(existsSync(path.join(dataDir, 'catalog.reserve'))).toBe(false);
      const reopened = Catalog.open(dataDir);
      try {
        expect(reopened.job(jobId)!.status).toBe('running');
        expect(reopened.abortStaleJobs()).toBe(1);
        expect(reopened.job(jobId)!.status).toBe('aborted');
      } finally {
        reopened.close();
      }
    } finally {
      await job.saver.close();
      await job.batch.close();
      await job.session.volumes.close({ final: false }).catch(() => undefined);
    }
  });
});
