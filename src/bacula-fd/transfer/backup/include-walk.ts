/**
 * The walk of one Include block's File entries (findlib/find_one.c), each entry saved as its kind
 * asks: a directory after its contents (FT_DIREND), a symlink (FT_LNK), a socket skipped, anything
 * else by entry.ts.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, opendir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { messageOf } from '../../../errors.js';
import { FT } from '../../attributes/lstat.js';
import { baculaName, childName } from '../../attributes/windows.js';
import { ignoreDirMarker, topLevelOptions, traceAcceptFile, type IncludeBlock, type IncludeOptions } from '../../fileset/fileset.js';
import { sendEntry } from './entry.js';
import { putBackAccessTime } from './file-data.js';
import type { BackupJob } from './job.js';
import { mustSave } from './must-save.js';
import { sendAttributesOnly } from './records.js';

/** Every File entry of the block, in order, and what lies below each. */
export async function walkInclude(job: BackupJob, block: IncludeBlock): Promise<void> {
  const options = topLevelOptions(block, job.run.fileset);
  job.leftOver = null;
  for (const file of block.files) {
    // The first File entry gets all the block's Options together; a later one, what matching the
    // previous entry's files left in bacula-fd's flags (see traceAcceptFile): its digest, say.
    // baculaName: on Windows a File line written with backslashes is sent with '/' (windows.ts).
    await walk(job, baculaName(file), null, job.leftOver ?? options, block, true);
  }
}

/** Exclude Dir Containing: a directory holding the block's marker is skipped whole. */
async function holdsMarker(dir: string, block: IncludeBlock): Promise<boolean> {
  const marker = ignoreDirMarker(block);
  if (marker === null) return false;
  return stat(path.join(dir, marker)).then(() => true, () => false);
}

/**
 * One entry of the walk (find_one.c). A File entry (`top`) is saved whatever the patterns say and
 * always descended into; below it each entry is matched by acceptFile, and a directory it rejects
 * is neither saved nor descended into. `parentDev` decides onefs (the parent's device, as Bacula;
 * null for a File entry, which is always descended into).
 */
async function walk(job: BackupJob, p: string, parentDev: bigint | null, options: IncludeOptions, block: IncludeBlock, top: boolean): Promise<void> {
  const { run } = job;
  if (run.isCancelled()) return;
  let st: BigIntStats;
  try {
    st = await lstat(p, { bigint: true });
  } catch (error) {
    job.problem(`Could not stat "${p}": ${messageOf(error)}`);
    return;
  }
  if (!top) {
    const traced = traceAcceptFile(block, run.fileset, p, st.isDirectory());
    if (traced.left) job.leftOver = traced.left;
    if (traced.options === null) return;
    options = traced.options;
  }
  if (st.isDirectory()) {
    if (await holdsMarker(p, block)) return;
    const descend = top || (!options.noRecursion && (options.crossFilesystems || st.dev === parentDev));
    if (descend) {
      let names: string[] = [];
      try {
        const dir = await opendir(p);
        for await (const entry of dir) names.push(entry.name);
      } catch (error) {
        job.problem(`Could not open directory "${p}": ${messageOf(error)}`);
        names = [];
      }
      // In the order the directory gives them (readdir), unsorted as bacula-fd walks: FileIndexes,
      // which hard link comes first and the options left over for the next File entry (see
      // traceAcceptFile) then come out as the real FD's on the same file system.
      // childName: path.join on Linux; '/' on Windows, the names a Windows bacula-fd sends (windows.ts).
      for (const name of names) await walk(job, childName(p, name), st.dev, options, block, false);
    } else if (!options.crossFilesystems && st.dev !== parentDev) {
      run.log('info', `"${p}" is a different filesystem. Will not descend from "${path.dirname(p)}" into it.`);
    }
    // The directory itself after its contents, named with a trailing slash (FT_DIREND).
    if (await mustSave(run, p, st, options, block)) await sendAttributesOnly(job, FT.DIREND, p.endsWith('/') ? p : `${p}/`, p, st, '', options);
    if (options.keepAtime) await putBackAccessTime(p, st);
    return;
  }
  if (!(await mustSave(run, p, st, options, block))) return;
  if (st.isSymbolicLink()) {
    await sendAttributesOnly(job, FT.LNK, p, p, st, await readlink(p), options);
    return;
  }
  if (st.isSocket()) {
    // save_file: "Socket file skipped" (M_SKIPPED), and nothing is sent.
    run.log('info', `Socket file skipped: ${p}`);
    return;
  }
  await sendEntry(job, p, st, options, top);
}
