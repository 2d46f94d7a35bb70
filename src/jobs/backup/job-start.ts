/**
 * How a backup starts writing: the storage directory claimed for this catalog, its volumes opened
 * (the catalog's finished jobs protected), then the job's row in the catalog ("running" until the
 * committer ends it) and the session header every volume of the job repeats.
 */
import { randomUUID } from 'node:crypto';
import type { AgentIdentity } from '../../agents/agent.js';
import type { Level } from '../../agents/types.js';
import type { Catalog, JobRow } from '../../catalog/catalog.js';
import { SESSION_FORMAT, type SessionStart } from '../../pipeline/records.js';
import { HOST_VERSION } from '../../version.js';
import { storageRepository, VolumeWriter } from '../../volume/index.js';
import type { JobCrypto } from '../encryption.js';
import type { JobLog } from './job-log.js';

export async function openVolumes(catalog: Catalog, storage: { storageDir: string; volumeSize: number }, log: JobLog): Promise<VolumeWriter> {
  const repository = storageRepository(storage.storageDir);
  catalog.claimStorage(storage.storageDir, repository);
  const volumes = await VolumeWriter.open({
    dir: storage.storageDir, set: 'agentfd', maxVolumeBytes: storage.volumeSize, agentfdVersion: HOST_VERSION, repository,
    protectedSessions: (volume) => catalog.jobsInVolume(volume),
  });
  for (const warning of volumes.warnings) log.warn(warning);
  return volumes;
}

export interface JobStart {
  jobName: string;
  agent: Pick<AgentIdentity, 'name' | 'version' | 'abi'>;
  level: Level;
  requestedLevel: Level;
  reference: JobRow | null;
  startedNs: bigint;
  /** As formatCompression() writes it. */
  compression: string;
  crypto: Pick<JobCrypto, 'key' | 'stanzas' | 'signerInfo'>;
}

/** The job's catalog row, created "running", and its session's SESSION_START. */
export function startJob(catalog: Catalog, job: JobStart): { jobId: number; uuid: string; start: SessionStart } {
  const uuid = randomUUID();
  const cipher = job.crypto.key ? 'aes-256-gcm' : 'none';
  const jobId = catalog.createJob({
    uuid,
    name: job.jobName,
    agent: job.agent.name,
    agentVersion: job.agent.version,
    agentAbi: job.agent.abi,
    level: job.level,
    requestedLevel: job.requestedLevel,
    referenceJob: job.reference?.id ?? null,
    startedNs: job.startedNs,
    compression: job.compression,
    cipher,
    signer: job.crypto.signerInfo?.fingerprint ?? null,
  });
  const start: SessionStart = {
    format: SESSION_FORMAT,
    jobId,
    uuid,
    startedNs: job.startedNs.toString(),
    level: job.level,
    cipher,
    compression: job.compression,
    stanzas: job.crypto.stanzas,
    signer: job.crypto.signerInfo,
    agentfdVersion: HOST_VERSION,
  };
  return { jobId, uuid, start };
}
