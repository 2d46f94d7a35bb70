/**
 * A scanned job entered into the catalog, in one transaction: its row, its files (and those
 * accurate mode recorded as deleted), renames, volumes, and its end. A session without an end is
 * entered as aborted, so nothing restores it as complete. A signature is only as good as the key
 * behind it: a job signed by a key not among the trusted signers is entered as untrusted, which
 * restore and verify refuse (signatures.ts).
 */
import type { Catalog } from '../../catalog/catalog.js';
import { isTrusted, type TrustedSigners } from '../signatures.js';
import type { FoundSession } from './find-sessions.js';
import type { ScannedJob } from './read-job.js';

/** Why the job is not to be trusted as it is (a warning for the report), or null. */
export function enterJob(catalog: Catalog, found: FoundSession, job: ScannedJob & { start: NonNullable<ScannedJob['start']> }, trusted: TrustedSigners): { status: string; files: number; warning: string | null } {
  const { start, info, end } = job;
  const status = end ? end.status : 'aborted';
  // Without an end the signature was not checked: the signer named is recorded, untrusted (the job
  // is aborted then, which restore refuses anyway, and the error says why).
  const signer = end ? job.verifiedSigner : (start.signer?.fingerprint ?? null);
  const name = info?.jobName ?? '(unknown)';
  const signerTrusted = signer === null || (end !== null && isTrusted(trusted, name, signer));
  const warning =
    !signerTrusted && end !== null
      ? `job ${found.jobId} (${name}) is signed by ${signer}, which is not a trusted signer: it is entered as untrusted, and restore and verify refuse it. ` +
        'If the key is yours, scan into an empty data directory with --trust-signer FILE.pub (or trusted_signers in the configuration)'
      : null;
  const agent = { agent: info?.agent.name ?? '(unknown)', agentVersion: info?.agent.version ?? null, agentAbi: info?.agent.abi ?? 0 };
  const files = [...job.files];
  catalog.transaction(() => {
    catalog.createJob({
      id: found.jobId, uuid: found.uuid, name, ...agent, level: start.level, requestedLevel: info?.requestedLevel ?? start.level,
      referenceJob: info?.referenceJob?.id ?? null, startedNs: BigInt(start.startedNs), compression: start.compression, cipher: start.cipher,
      signer, signerTrusted,
    });
    job.accurate.deleted.forEach((gone, i) =>
      files.push({
        fileIndex: job.files.length + i, path: gone.path, kind: gone.kind, mode: 0, mtimeNs: 0n, size: null, seen: false, linkTarget: null,
        ...agent, status: 'deleted', error: null, streams: [],
      }),
    );
    catalog.insertFiles(found.jobId, files);
    for (const r of job.accurate.renamed) catalog.setRenamedFrom(found.jobId, r.to, r.from);
    for (const p of found.placements) catalog.addJobVolume(found.jobId, p.label, p.path, p.firstOffset);
    catalog.finishJob(found.jobId, {
      status, endedNs: BigInt(end?.endedNs ?? start.startedNs), files: job.files.length, bytes: end?.bytes ?? 0, storedBytes: end?.storedBytes ?? 0,
      error: end?.error ?? job.error ?? (end ? null : 'the session has no end (the job was interrupted)'), state: job.state, level: info?.deliveredLevel,
    });
  });
  return { status, files: files.length, warning };
}
