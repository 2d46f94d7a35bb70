/**
 * A real backup session for the backup stages' unit tests: a catalog and a storage directory in a
 * temp directory, the job's catalog row and SESSION_START made by the job-start stage, a
 * SessionWriter over real volumes, and the means to read the session back as restore does.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { AgentIdentity } from '../../../src/agents/agent.js';
import type { Level } from '../../../src/agents/types.js';
import { Catalog, type JobStatus } from '../../../src/catalog/catalog.js';
import { JobLog } from '../../../src/jobs/backup/job-log.js';
import { openVolumes, startJob } from '../../../src/jobs/backup/job-start.js';
import { SessionWriter } from '../../../src/sink/session-writer.js';
import { readSession, type SessionEvent } from '../../../src/sink/session-reader.js';
import { readRecords, recordTypeName, type VolumeWriter } from '../../../src/volume/index.js';
import { tempDir } from '../../helpers/native.js';

export const VOLUME_SIZE = 64 * 1024 * 1024;

export interface StageSession {
  dir: string;
  dataDir: string;
  catalog: Catalog;
  volumes: VolumeWriter;
  writer: SessionWriter;
  jobId: number;
  log: JobLog;
  /** The record types of the session as they stand in the volumes. */
  recordTypes(): Promise<string[]>;
  /** The session read back and checked as restore reads it (digests, sequence, manifest): it must be ended first. */
  events(): Promise<SessionEvent[]>;
  close(): Promise<void>;
}

export interface StageSessionOptions {
  agent: Pick<AgentIdentity, 'name' | 'version' | 'abi' | 'kind' | 'capabilities'>;
  jobName?: string;
  level?: Level;
  compression?: string;
  /** An existing workspace (a second job of the same catalog). */
  dir?: string;
}

export async function openStageSession(options: StageSessionOptions): Promise<StageSession> {
  const dir = options.dir ?? tempDir('stage');
  const dataDir = path.join(dir, 'data');
  const storageDir = path.join(dir, 'storage');
  const catalog = Catalog.open(dataDir);
  const log = new JobLog();
  const volumes = await openVolumes(catalog, { storageDir, volumeSize: VOLUME_SIZE }, log);
  const level = options.level ?? 'full';
  const { jobId, start } = startJob(catalog, {
    jobName: options.jobName ?? 'stage', agent: options.agent, level, requestedLevel: level, reference: null,
    startedNs: BigInt(Date.now()) * 1_000_000n, compression: options.compression ?? 'none', crypto: { key: null, stanzas: [], signerInfo: null },
  });
  const writer = new SessionWriter(volumes, start, null);
  const { name, version, abi, kind, capabilities } = options.agent;
  await writer.begin({
    jobName: options.jobName ?? 'stage', agent: { name, version, abi, kind, capabilities }, options: {}, requestedLevel: level, deliveredLevel: level,
    referenceJob: null, fileset: { include: [], exclude: [] },
  });
  return {
    dir, dataDir, catalog, volumes, writer, jobId, log,
    async recordTypes() {
      await volumes.sync(); // the writer buffers: put what it holds on disk first
      const types: string[] = [];
      for (const p of writer.placements) {
        for await (const record of readRecords(p.path, { from: p.firstOffset })) if (record.session === jobId) types.push(recordTypeName(record.type));
      }
      return types;
    },
    async events() {
      await volumes.sync();
      const events: SessionEvent[] = [];
      const placements = writer.placements.map((p) => ({ path: p.path, firstOffset: p.firstOffset }));
      for await (const event of readSession({ jobId, placements, secrets: {}, data: true, what: `job ${jobId}` })) events.push(event);
      return events;
    },
    async close() {
      await volumes.close({ final: false }).catch(() => undefined);
      catalog.close();
    },
  };
}

/** A job row of `name` in `catalog` with `status`, as a finished backup leaves it. */
export function catalogJob(catalog: Catalog, name: string, level: Level, status: JobStatus): number {
  const id = catalog.createJob({
    uuid: randomUUID(), name, agent: 'filesystem', agentVersion: null, agentAbi: 0, level, requestedLevel: level, referenceJob: null,
    startedNs: BigInt(Date.now()) * 1_000_000n, compression: 'none', cipher: 'none', signer: null,
  });
  if (status !== 'running') catalog.finishJob(id, { status, endedNs: BigInt(Date.now()) * 1_000_000n, files: 0, bytes: 0, storedBytes: 0, error: null, state: null });
  return id;
}
