/**
 * The records every entry starts with: its attributes (stream 1) with the LStat Bacula keeps, and,
 * with aclsupport / xattrsupport, its ACL and xattr streams (xacl.ts).
 */
import type { BigIntStats } from 'node:fs';
import { FT, STREAM, encodeAttributes, encodeLStat, statFromNode, type BaculaStat } from '../../attributes/lstat.js';
import { lstatMode } from '../../attributes/windows.js';
import { DEBUG } from '../../wire/debug.js';
import type { IncludeOptions } from '../../fileset/fileset.js';
import type { BackupJob } from './job.js';

/**
 * The data stream of a FileSet's options (findlib/attribs.c select_data_stream). Every record's
 * LStat names it, directories and links too, so it does not depend on the file.
 */
export function dataStreamFor(options: Pick<IncludeOptions, 'sparse' | 'gzip'> & { lzo?: boolean }): number {
  if (options.sparse) return options.gzip !== null ? STREAM.SPARSE_GZIP_DATA : options.lzo ? STREAM.SPARSE_COMPRESSED_DATA : STREAM.SPARSE_DATA;
  return options.gzip !== null ? STREAM.GZIP_DATA : options.lzo ? STREAM.COMPRESSED_DATA : STREAM.FILE_DATA;
}

/** The attributes record of an entry of `type` (FT_*) named `fname`, with LinkFI `linkFI`. */
export async function sendAttributes(job: BackupJob, index: number, type: number, fname: string, st: BigIntStats, link: string, options: IncludeOptions, linkFI = 0): Promise<void> {
  const stat = statFromNode(st, dataStreamFor(options), linkFI);
  stat.mode = lstatMode(stat.mode); // Windows: directories get 'x' (windows.ts)
  const lstat = encodeLStat(stat);
  // Stream 1 with no attribsEx on Windows too, not a Windows bacula-fd's stream 5 (windows.ts).
  // (An earlier agentfd sent its Windows attributes as stream 19, which is STREAM_SIGNED_DIGEST,
  // and the Director rightly did not catalog them; stream 5 from agentfd is not yet tried.)
  const record = encodeAttributes({ fileIndex: index, type, fname, lstat, link, attribsEx: '', deltaSeq: 0 });
  job.totals.lastFile = fname;
  job.run.debug?.(DEBUG.files, 'backup', `FT=${type} saving: ${fname}${link ? ` -> ${link}` : ''}`);
  await job.run.sd.sendStream(index, STREAM.UNIX_ATTRIBUTES, 0, [record]);
}

/**
 * aclsupport / xattrsupport: the entry's ACL and xattr streams (xacl.ts), after its data and
 * before its digest as save_file sends them, counted as job bytes as bacula-fd counts them.
 */
export async function sendXacl(job: BackupJob, index: number, p: string, type: number, options: IncludeOptions): Promise<void> {
  if (!options.acl && !options.xattr) return;
  for (const { stream, data } of job.xacl.streamsOf(p, type, options)) job.totals.jobBytes += await job.run.sd.sendStream(index, stream, 0, [data]);
}

/** An entry with no data of its own (a directory's FT_DIREND, a symlink, a device node): attributes, ACL and xattrs. */
export async function sendAttributesOnly(job: BackupJob, type: number, fname: string, p: string, st: BigIntStats, link: string, options: IncludeOptions): Promise<number> {
  const index = job.nextIndex();
  await sendAttributes(job, index, type, fname, st, link, options);
  await sendXacl(job, index, p, type, options);
  job.totals.files++;
  return index;
}

/** An FT_DELETED record (accurate.c): the name, and of the stat only the times the file had. */
export function deletedRecord(index: number, fname: string, mtime: bigint, ctime: bigint): Buffer {
  const zero: BaculaStat = {
    dev: 0n, ino: 0n, mode: 0, nlink: 0n, uid: 0, gid: 0, rdev: 0n, size: 0n, blksize: 0n, blocks: 0n,
    atime: 0n, mtime, ctime, linkFI: 0, flags: 0, dataStream: 0,
  };
  return encodeAttributes({ fileIndex: index, type: FT.DELETED, fname, lstat: encodeLStat(zero), link: '', attribsEx: '', deltaSeq: 0 });
}
