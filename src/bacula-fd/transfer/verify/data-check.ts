/**
 * A Data verify's check of each file (verify_vol.c's v_ctx): its data records decoded as a restore
 * decodes them (restore/file-data.ts) and digested; at its digest record the digest computed is
 * compared with the volume's, and with `verify = ...s` the size of the data with the file's st_size.
 * What differs is told in a job message, and the job ends "Verify Differences".
 *
 * What is checked comes from the FileSet as bacula-fd reads it (scan_fileset): digests when a
 * `verify =` has 1, 2, 3 or 5, with the first `signature =` found; sizes when it has s.
 */
import { createHash, type Hash } from 'node:crypto';
import { messageOf } from '../../../errors.js';
import { FT, FT_MASK, decodeLStat } from '../../attributes/lstat.js';
import type { Digest, FileSet } from '../../fileset/fileset.js';
import { decodeDataRecord, isDataStream } from '../restore/file-data.js';
import { undecodableStream } from '../restore/undecodable.js';
import { DIGEST_NAMES, digestText, type RecordFields } from './director-records.js';
import type { VerifyRun, VerifyTotals } from './job.js';
import { decodeName } from '../../../platform/byte-names.js'; // the name's bytes, in messages too

export interface DataChecks {
  size: boolean;
  digest: Digest | null;
}

/**
 * scan_fileset: every Options block of every Include in turn sets whether sizes are checked; the
 * first with a digest letter ends the scan. Digests are checked only when some `verify =` asks.
 * Returns what is checked, and the warning bacula-fd gives when a digest is asked but none is made.
 */
export function dataChecks(fileset: FileSet): DataChecks & { warning: string | null } {
  let size = false;
  let asked = false;
  for (const block of fileset.includes) {
    for (const fo of block.options) {
      size = fo.verify.includes('s');
      if (/[1235]/.test(fo.verify)) asked = true;
      if (fo.digest) return { size, digest: asked ? fo.digest : null, warning: null };
    }
  }
  const warning = asked ? 'Checksum verification required in Verify FileSet option, but no Signature found in the FileSet' : null;
  return { size, digest: null, warning };
}

/** The streams that hold a file's data, which bacula-fd decodes in a Data verify. */
const DATA_STREAMS_OTHERS = new Set([11, 12, 20, 21, 23, 24, 27, 29, 30, 31, 32, 33]);
const WITH_DATA = new Set<number>([FT.RAW, FT.FIFO, FT.REG, FT.REGE]);

/** The file being checked: the last attributes record's. */
interface Current {
  name: string;
  type: number;
  stSize: bigint;
  /** Size of its data so far, -1 before any. */
  size: bigint;
  hash: Hash | null;
  /** Its data was in a stream agentfd cannot decode (told once). */
  undecodable: boolean;
}

export class DataCheck {
  private readonly checks: DataChecks;
  private current: Current | null = null;

  constructor(
    private readonly run: VerifyRun,
    private readonly totals: VerifyTotals,
  ) {
    const { warning, ...checks } = dataChecks(run.fileset);
    this.checks = checks;
    if (warning) run.log('warning', warning);
  }

  openFile(fields: RecordFields): void {
    this.totals.files++;
    this.current = { name: decodeName(fields.fname), type: fields.type & FT_MASK, stSize: decodeLStat(fields.lstat).size, size: -1n, hash: null, undecodable: false };
  }

  /** close_previous_stream: the size check, then the digest of what was read (base64, '' when none). */
  async closeFile(): Promise<string> {
    const file = this.current;
    if (!file) return '';
    if (this.checks.size && file.size >= 0n) {
      if (file.type === FT.REG && file.size !== file.stSize) {
        await this.differs(`   st_size  differs on "${file.name}". Vol: ${file.size} File: ${file.stSize}`);
      }
      file.size = -1n;
    }
    const computed = file.hash ? digestText(file.hash.digest()) : '';
    file.hash = null;
    return computed;
  }

  /**
   * The volume's digest of the current file, compared with the one computed from its data. Not for
   * a further hard link (FT_LNKSAVED), which has no data of its own: bacula-fd 9.6 compares the
   * empty digest with its first name's and reports every hard link as different.
   */
  async digest(stream: number, value: Buffer): Promise<void> {
    const file = this.current;
    const known = DIGEST_NAMES.get(stream);
    if (!file || !known || !this.checks.digest || file.type === FT.LNKSAVED || file.undecodable) return;
    file.hash ??= createHash(this.checks.digest);
    const computed = await this.closeFile();
    const volume = digestText(value.subarray(0, known.size));
    if (computed !== volume) await this.differs(`   ${known.name} digest differs on "${file.name}". File=${computed} Vol=${volume}`);
  }

  /** One record that is neither attributes nor digest; false when its data cannot be decoded (the job ends). */
  async data(stream: number, record: Buffer): Promise<boolean> {
    const file = this.current;
    if (!file || !WITH_DATA.has(file.type)) return true;
    if (!isDataStream(stream)) {
      if (DATA_STREAMS_OTHERS.has(stream) && !file.undecodable) this.undecodable(file, undecodableStream(stream, record));
      return true;
    }
    this.totals.readBytes += record.length;
    let decoded: ReturnType<typeof decodeDataRecord>;
    try {
      decoded = decodeDataRecord(stream, record);
    } catch (error) {
      this.problem(`Uncompression error on file ${file.name}. ERR=${messageOf(error)}`);
      this.totals.failed = true;
      return false;
    }
    if (decoded.position !== null && BigInt(decoded.position) > file.size) file.size = BigInt(decoded.position);
    if (this.checks.digest) (file.hash ??= createHash(this.checks.digest)).update(decoded.data);
    this.totals.jobBytes += decoded.data.length;
    file.size = (file.size < 0n ? 0n : file.size) + BigInt(decoded.data.length);
    return true;
  }

  /** Data agentfd cannot decode is not verified: the file is named, and the job cannot end OK. */
  private undecodable(file: Current, what: string): void {
    file.undecodable = true;
    file.hash = null;
    this.totals.failed = true;
    this.problem(`"${file.name}" cannot be verified: its data is in ${what}; verify it with a bacula-fd that can`);
  }

  private problem(message: string): void {
    this.totals.errors.push(message);
    this.run.log('error', message);
  }

  private async differs(message: string): Promise<void> {
    this.totals.differences = true;
    await this.run.info(message);
  }
}
