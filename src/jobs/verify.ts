/**
 * agentfd verify: re-read a job from its volumes and check everything: every record's CRC in
 * every volume the job touches (damage outside this job's records is reported as a warning: it
 * is another job's loss, and this job stays restorable when its own records are sound),
 * the volumes' text headers, then the job's own records through the session reader (sequence,
 * AEAD tags, chunk places, sizes, SHA-256 digests, the manifest and its signature, which must be by
 * the signer the catalog records: see signatures.ts). It reports the first bad record precisely.
 */
import type { Catalog } from '../catalog/catalog.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError, messageOf } from '../errors.js';
import { readSession } from '../sink/session-reader.js';
import { readRecords } from '../volume/index.js';
import { checkTrust, expectedSession, signatureState, type SignatureState } from './signatures.js';

export interface VerifyReport {
  jobId: number;
  status: 'ok' | 'bad';
  jobStatus: string;
  volumes: string[];
  volumeRecords: number;
  files: number;
  streams: number;
  bytes: number;
  signature: SignatureState;
  error: string | null;
  errorCode: string | null;
  /** Damage found in the job's volumes outside the job's own records. */
  warnings: string[];
}

export async function runVerify(options: { catalog: Catalog; jobId: number; secrets: UnwrapSecrets; allowUntrustedSigner?: boolean }): Promise<VerifyReport> {
  const { catalog, jobId } = options;
  const job = catalog.job(jobId);
  if (!job) throw new AgentfdError('E_UNKNOWN_JOB', `there is no job ${jobId} in the catalog ${catalog.file}`);
  const placements = catalog.jobVolumes(jobId).map((v) => ({ path: v.path, firstOffset: v.first_offset }));
  const report: VerifyReport = {
    jobId, status: 'ok', jobStatus: job.status, volumes: placements.map((p) => p.path), volumeRecords: 0,
    files: 0, streams: 0, bytes: 0, signature: 'unchecked', error: null, errorCode: null, warnings: [],
  };
  try {
    if (placements.length === 0) throw new AgentfdError('E_SESSION_INCOMPLETE', `job ${jobId} has no records in any volume (it was aborted before writing)`);
    for (const p of placements) {
      try {
        for await (const _record of readRecords(p.path)) report.volumeRecords++;
      } catch (error) {
        // The job's own records are read below, from where the catalog says they start: if they
        // are sound, this damage belongs to another job, whose own verify fails on it.
        report.warnings.push(`${messageOf(error)} (the walk of the whole volume stopped there; job ${jobId}'s own records are checked on their own: verify the other jobs of this volume)`);
      }
    }
    for await (const event of readSession({ jobId, placements, secrets: options.secrets, data: true, what: `job ${jobId} (${job.name})`, expect: expectedSession(job) })) {
      if (event.kind === 'fileEnd') report.files++;
      else if (event.kind === 'streamEnd') {
        report.streams++;
        report.bytes += event.end.bytes;
      } else if (event.kind === 'end') {
        report.signature = signatureState(job);
        if (event.end.status !== 'committed') {
          throw new AgentfdError('E_JOB_FAILED', `job ${jobId} is intact on its volumes, but it ended as ${event.end.status}: ${event.end.error ?? 'no reason recorded'}`);
        }
      }
    }
    if (job.status !== 'committed') {
      throw new AgentfdError('E_JOB_FAILED', `the catalog records job ${jobId} as ${job.status}${job.error ? `: ${job.error}` : ''}`);
    }
    checkTrust(job, options.allowUntrustedSigner ?? false);
  } catch (error) {
    if (error instanceof AgentfdError && error.code === 'E_WRONG_KEY') throw error;
    report.status = 'bad';
    report.error = messageOf(error);
    report.errorCode = error instanceof AgentfdError ? error.code : 'E_INTERNAL';
  }
  return report;
}
