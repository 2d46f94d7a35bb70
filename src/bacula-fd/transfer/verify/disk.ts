/**
 * The Verify levels that read the disk (InitCatalog, Catalog, DiskToCatalog; filed/verify.c): the
 * FileSet is walked as a backup walks it (backup/include-walk.ts, so the same files with the same
 * options and types), and each entry's attributes go to the Director instead of the SD, with the
 * digest its `signature =` asks for when it is a regular file. As bacula-fd's verify_file: the
 * LStat without LinkFI and data stream, no digest for a further hard link, a raw device or a fifo,
 * no data read when no digest is wanted, no ACLs, xattrs or plugin files.
 */
import { FT, STREAM, decodeLStat, encodeLStat } from '../../attributes/lstat.js';
import { topLevelOptions, verifyOptions, type FileSet } from '../../fileset/fileset.js';
import { BackupJob, newTotals, type StreamSink } from '../backup/job.js';
import { walkInclude } from '../backup/include-walk.js';
import { DIGEST_NAMES, attributesMessage, digestMessage, recordFields } from './director-records.js';
import type { VerifyRun, VerifyTotals } from './job.js';

/** The FileSet as a verify reads it: nothing compressed, no ACLs or xattrs read (none is sent). */
export function verifyFileSet(fileset: FileSet): FileSet {
  const plain = <T extends { options: FileSet['includes'][number]['options'] }>(block: T): T => ({
    ...block,
    options: block.options.map((fo) => ({ ...fo, gzip: null, acl: false, xattr: false })),
  });
  return { ...fileset, includes: fileset.includes.map(plain), ...(fileset.excludeBlocks ? { excludeBlocks: fileset.excludeBlocks.map(plain) } : {}) };
}

/** The backup's streams of one entry, turned into the Director's verify records. */
export class DiskVerifySink implements StreamSink {
  /** The Verify options of the Include block being walked. */
  verifyOptions = 'V';
  /** Whether a regular file's data is read: when its block may ask for a digest. */
  readData = false;
  /** The type of the entry whose records come now (FT_*). */
  private type = 0;

  constructor(
    private readonly run: VerifyRun,
    private readonly totals: VerifyTotals,
  ) {}

  private get digestible(): boolean {
    return this.type === FT.REG || this.type === FT.REGE;
  }

  async sendStream(index: number, stream: number, _length: bigint | number, frames: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<number> {
    if (stream === STREAM.UNIX_ATTRIBUTES) {
      for await (const record of frames) await this.attributes(index, record);
    } else if (DIGEST_NAMES.has(stream)) {
      for await (const digest of frames) if (this.digestible) await this.run.director.send(digestMessage(index, stream, digest));
    } else if (this.digestible && this.readData) {
      // A regular file's data, read only for its digest (the backup's digest stream follows it).
      for await (const _ of frames);
    }
    return 0;
  }

  private async attributes(index: number, record: Buffer): Promise<void> {
    const fields = recordFields(record);
    this.type = fields.type;
    const stat = decodeLStat(fields.lstat);
    // encode_stat(..., LinkFI, 0) in verify_file: ff_pkt's LinkFI is never set there, and no data stream.
    const lstat = encodeLStat({ ...stat, linkFI: 0, dataStream: 0 });
    await this.run.director.send(attributesMessage(index, this.verifyOptions, fields.fname, lstat, fields.link));
    this.totals.files = index;
    this.run.progress?.(this.totals);
  }
}

/** Walk the FileSet's File entries and send what verify_file sends; counts into `totals`. */
export async function verifyDisk(run: VerifyRun, totals: VerifyTotals): Promise<void> {
  const fileset = verifyFileSet(run.fileset);
  const sink = new DiskVerifySink(run, totals);
  const read = newTotals();
  const job = new BackupJob({ sd: sink, fileset, since: null, log: run.log, isCancelled: run.isCancelled, skipPlugins: true }, read);
  try {
    for (const block of fileset.includes) {
      if (run.isCancelled()) break;
      sink.verifyOptions = verifyOptions(block);
      // Every digest letter of the block's Options (or what it inherits) is in its top-level options.
      sink.readData = topLevelOptions(block, fileset).digest !== null;
      await walkInclude(job, block);
    }
  } finally {
    await job.close(); // the digest thread, if a large file started it
    totals.readBytes = totals.jobBytes = read.readBytes;
    totals.errors.push(...read.errors);
  }
}
