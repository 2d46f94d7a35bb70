/**
 * The manifest: the digest a session's end records and its Ed25519 signature signs. Writer and
 * reader build it from the same records, so a reader that gets the same digest read the records the
 * signer wrote.
 *
 * v2 (session format 3 and later) covers everything that decides what a restore writes:
 * - the session header's fields (job id, UUID, level, cipher, compression and the key stanzas that
 *   wrap the data key; not the signer, whose key is what the signature is checked with),
 * - the plaintext of every metadata record in order: the job's info (agent and its options: a
 *   Bacula plugin's command runs at restore), each file's record (path, kind, mode, link target,
 *   agent, streams), each stream's end (size, SHA-256), each file's end (its outcome), accurate-mode
 *   results and agent state,
 * - the session's outcome.
 * Chunk bytes are covered through their stream's SHA-256, which the reader checks.
 *
 * v1 (formats 1 and 2) covered only each stream's size and SHA-256, each file's path and outcome,
 * accurate results, state and the outcome: the metadata of an unencrypted v1 job is not signed.
 */
import { createHash } from 'node:crypto';
import type { AccurateRecord, FileEnd, SessionStart, StreamEnd } from '../pipeline/records.js';

/** The first session format whose manifest is v2. */
export const MANIFEST_V2_FORMAT = 3;

/** What of the session header the manifest binds (JSON of these fields, in this order). */
function boundHeader(start: SessionStart): string {
  return JSON.stringify([start.format, start.jobId, start.uuid, start.startedNs, start.level, start.cipher, start.compression, start.stanzas, start.agentfdVersion]);
}

export class Manifest {
  readonly version: 1 | 2;
  private readonly hash = createHash('sha256');
  /** Lines not yet hashed: hashed in batches (the digest of the whole text is the same). */
  private text: string;

  constructor(start: SessionStart) {
    this.version = start.format >= MANIFEST_V2_FORMAT ? 2 : 1;
    this.text = this.version === 2
      ? `agentfd manifest v2\n${start.uuid}\nH\t${createHash('sha256').update(boundHeader(start)).digest('hex')}\n`
      : `agentfd manifest v1\n${start.uuid}\n`;
  }

  private add(line: string): void {
    this.text += line;
    if (this.text.length >= 64 * 1024) {
      this.hash.update(this.text);
      this.text = '';
    }
  }

  /**
   * A metadata record's plaintext (for FILE_WHOLE: its JSON part, which holds its streams' digests).
   * Returns the plaintext's SHA-256, which a restore also uses to see that a second read of the
   * session finds the records the first one verified (see VerifiedRecords).
   */
  record(type: number, plain: Uint8Array): Buffer {
    const digest = createHash('sha256').update(plain).digest();
    if (this.version === 2) this.add(`R\t${type}\t${digest.toString('hex')}\n`);
    return digest;
  }

  // The v1 lines: v2 covers the same through record().
  stream(end: StreamEnd): void {
    if (this.version === 1) this.add(`S\t${end.fileIndex}\t${end.streamIndex}\t${end.bytes}\t${end.sha256}\n`);
  }

  file(path: string, end: FileEnd): void {
    if (this.version === 1) this.add(`F\t${end.fileIndex}\t${JSON.stringify(path)}\t${end.status}\n`);
  }

  accurate(record: AccurateRecord): void {
    if (this.version === 1) this.add(`A\t${JSON.stringify(record)}\n`);
  }

  state(blob: Uint8Array): void {
    if (this.version === 1) this.add(`T\t${createHash('sha256').update(blob).digest('hex')}\n`);
  }

  digest(status: string): Buffer {
    this.hash.update(`${this.text}E\t${status}\n`);
    this.text = '';
    return this.hash.digest();
  }
}

/** Bytes of each metadata record's digest kept between the two reads of a restore. */
const KEPT = 16;

/**
 * The digests of a session's metadata records, in order, as a first read found them under a
 * valid signature: the second read (the one that writes) must find exactly these records. 16 bytes
 * a record (a truncated SHA-256, still 128 bits against a second preimage) in one growing buffer.
 */
export class VerifiedRecords {
  private bytes = Buffer.alloc(KEPT * 1024);
  private count = 0;

  push(digest: Buffer): void {
    if ((this.count + 1) * KEPT > this.bytes.length) {
      const bigger = Buffer.alloc(this.bytes.length * 2);
      this.bytes.copy(bigger);
      this.bytes = bigger;
    }
    digest.copy(this.bytes, this.count * KEPT, 0, KEPT);
    this.count++;
  }

  get length(): number {
    return this.count;
  }

  /** Whether record `ordinal` (0-based, among metadata records) has this digest. */
  matches(ordinal: number, digest: Buffer): boolean {
    return ordinal < this.count && this.bytes.subarray(ordinal * KEPT, ordinal * KEPT + KEPT).equals(digest.subarray(0, KEPT));
  }
}
