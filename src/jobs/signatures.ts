/**
 * Whose signature a job must carry, and what restore and verify do about it.
 *
 * A job's catalog row records the fingerprint of the key that signed it (the backup's sign_with, or
 * what scan found and trusted). Its session must be signed by exactly that key: a session without
 * a signature is an unsigned copy of a signed job, one signed by another key was re-signed or
 * replaced; both are refused (session-reader.ts). A job scan found signed by a key the operator
 * does not trust is recorded as untrusted, and restore and verify refuse it unless told otherwise.
 */
import type { Catalog, JobRow } from '../catalog/catalog.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { fingerprint, loadPrivateIdentity, loadPublicIdentity } from '../crypto/keys.js';
import { AgentfdError, messageOf } from '../errors.js';
import type { VerifiedRecords } from '../sink/manifest.js';
import { readSession, type ExpectedSession } from '../sink/session-reader.js';
import { createPublicKey } from 'node:crypto';

export type SignatureState = 'valid' | 'untrusted' | 'unsigned' | 'unchecked';

export function expectedSession(job: JobRow): ExpectedSession {
  return { uuid: job.uuid, signer: job.signer };
}

/** Refuse a job signed by a key the operator did not trust at scan, unless `allow`. */
export function checkTrust(job: JobRow, allow: boolean): void {
  if (job.signer === null || job.signer_trusted !== 0 || allow) return;
  throw new AgentfdError(
    'E_UNTRUSTED_SIGNER',
    `job ${job.id} (${job.name}) is signed by ${job.signer}, a key that was not trusted when the job was scanned: anyone can sign a job, so this signature proves nothing about who made it. ` +
      'Rescan into an empty data directory with --trust-signer FILE.pub (or trusted_signers in the configuration) if that key is yours, or pass --allow-untrusted-signer to use the job anyway',
  );
}

/** The state a job's signature is reported with, once its session's signature checked. */
export function signatureState(job: JobRow): SignatureState {
  return job.signer === null ? 'unsigned' : job.signer_trusted === 0 ? 'untrusted' : 'valid';
}

const RANK: Record<SignatureState, number> = { unchecked: 3, valid: 2, untrusted: 1, unsigned: 0 };

/** The weaker of two states: a chain is as trustworthy as its least trusted job. */
export function weakest(a: SignatureState, b: SignatureState): SignatureState {
  return RANK[a] <= RANK[b] ? a : b;
}

/**
 * The first read of a signed job's restore: every record read and checked, chunks not opened, the
 * signature checked against the catalog's signer. Returns the metadata records it verified, which
 * the second read (the one that writes) must find again: so nothing is written for a job whose
 * signature does not hold, and each file written is the one the signature covers.
 */
export async function verifySignedSession(catalog: Catalog, job: JobRow, secrets: UnwrapSecrets): Promise<VerifiedRecords> {
  const placements = catalog.jobVolumes(job.id).map((v) => ({ path: v.path, firstOffset: v.first_offset }));
  let verified: VerifiedRecords | null = null;
  for await (const event of readSession({ jobId: job.id, placements, secrets, data: false, what: `job ${job.id} (${job.name})`, expect: expectedSession(job), collect: true })) {
    if (event.kind === 'end') verified = event.verified;
  }
  if (!verified) throw new AgentfdError('E_INTERNAL', `job ${job.id}: the first read ended without the session's end (this is a bug in agentfd)`);
  return verified;
}

/**
 * The signing keys scan accepts: fingerprint -> where it came from. From public key files
 * (--trust-signer, trusted_signers) and, per job name, the public half of that job's sign_with.
 */
export interface TrustedSigners {
  all: Map<string, string>;
  byJob: Map<string, string>;
  /** Key files that could not be read (a sign_with of the configuration): reported, not fatal. */
  problems: string[];
}

export function trustedSigners(publicFiles: string[], signWith: Record<string, string | undefined>): TrustedSigners {
  const all = new Map<string, string>();
  for (const file of publicFiles) {
    const identity = loadPublicIdentity(file);
    if (!identity.signing) throw new AgentfdError('E_KEY', `${file} holds no Ed25519 public key to trust signatures by; pass the .pub file of agentfd keys generate`);
    all.set(fingerprint(identity.signing), file);
  }
  const byJob = new Map<string, string>();
  const problems: string[] = [];
  for (const [job, file] of Object.entries(signWith)) {
    if (!file) continue;
    try {
      const signing = loadPrivateIdentity(file).signing;
      if (signing) byJob.set(job, fingerprint(createPublicKey(signing)));
    } catch (error) {
      problems.push(`the sign_with key of job ${job} is not trusted for this scan: ${messageOf(error)}`);
    }
  }
  return { all, byJob, problems };
}

export function isTrusted(trusted: TrustedSigners, jobName: string, signer: string): boolean {
  return trusted.all.has(signer) || trusted.byJob.get(jobName) === signer;
}
