/**
 * The walk of one Include block's File entries (findlib/find_one.c) on the shared tree walker
 * (agents/filesystem/tree-walk.ts: names in readdir order, lstat'ed a batch at a time ahead of the
 * entry being sent, small files read ahead too: look-ahead.ts), each entry saved as its kind asks: a directory after its contents (FT_DIREND), a symlink
 * (FT_LNK), a socket skipped, anything else by entry.ts. A File entry (`top`) is saved whatever
 * the patterns say and always descended into; below it each entry is matched by acceptFile, and a
 * directory it rejects is neither saved nor descended into.
 */
import type { BigIntStats } from 'node:fs';
import { readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { TreeWalk, namesInReaddirOrder } from '../../../agents/filesystem/tree-walk.js';
import { messageOf } from '../../../errors.js';
import { FT } from '../../attributes/lstat.js';
import { baculaName } from '../../attributes/windows.js';
import { ignoreDirMarker, topLevelOptions, traceAcceptFile, type IncludeBlock, type IncludeOptions } from '../../fileset/fileset.js';
import { sendEntry } from './entry.js';
import { putBackAccessTime } from './file-data.js';
import type { BackupJob } from './job.js';
import { LOOK_AHEAD, lstatEntry, probeBatch, type Probe } from './look-ahead.js';
import { mustSave } from './must-save.js';
import { sendAttributesOnly } from './records.js';
import { decodeName, fsPath } from '../../../platform/byte-names.js';

/** A directory the walk descended into: what its FT_DIREND record, sent when it is left, needs. */
interface Dir {
  path: string;
  st: BigIntStats;
  options: IncludeOptions;
}


/** Every File entry of the block, in order, and what lies below each. */
export async function walkInclude(job: BackupJob, block: IncludeBlock): Promise<void> {
  const options = topLevelOptions(block, job.run.fileset);
  job.leftOver = null;
  for (const file of block.files) {
    // The first File entry gets all the block's Options together; a later one, what matching the
    // previous entry's files left in bacula-fd's flags (see traceAcceptFile): its digest, say.
    // baculaName: on Windows a File line written with backslashes is sent with '/' (windows.ts).
    await walkFileEntry(job, block, baculaName(file), job.leftOver ?? options);
  }
}

/** One File entry and the tree below it, one entry at a time as find_one.c walks it. */
async function walkFileEntry(job: BackupJob, block: IncludeBlock, file: string, options: IncludeOptions): Promise<void> {
  const probe = (dir: Dir, names: string[]) => probeBatch(job, block, dir, names);
  const tree = new TreeWalk<Dir, string, Probe>({ probe, ...LOOK_AHEAD });
  try {
    await visit(job, block, tree, await lstatEntry(job, file), null, options, true);
    for (let step = await tree.next(); step !== null; step = await tree.next()) {
      if (step.kind === 'leave') await leaveDirectory(job, block, step.dir);
      // Entries lstat'ed ahead are not sent once the job is cancelled (nor lstat'ed any more).
      else if (!job.run.isCancelled()) await visit(job, block, tree, await relinked(job, step.entry), step.dir.st.dev, step.dir.options, false);
    }
  } finally {
    await tree.close();
  }
}

/**
 * An entry lstat'ed ahead that has other links is lstat'ed again when reached: reading an earlier
 * name of it (its atime) or putting back that name's atime (its ctime) may have changed what
 * bacula-fd, which lstats each entry when it reaches it, would see.
 */
async function relinked(job: BackupJob, found: Probe): Promise<Probe> {
  if (found === null || 'error' in found || found.st.isDirectory() || found.st.nlink <= 1n) return found;
  const again = await lstatEntry(job, found.path);
  return again && !('error' in again) && again.st.isDirectory() === found.st.isDirectory() ? { ...again, traced: found.traced } : again;
}

/**
 * One entry (find_one.c). `parentDev` decides onefs (the parent's device, as Bacula; null for a
 * File entry, which is always descended into). A directory descended into is entered in `tree`
 * and saved when the walk leaves it; any other is saved here.
 */
async function visit(job: BackupJob, block: IncludeBlock, tree: TreeWalk<Dir, string, Probe>, found: Probe, parentDev: bigint | null, options: IncludeOptions, top: boolean): Promise<void> {
  const { run } = job;
  if (found === null) return;
  if ('error' in found) {
    job.problem(`Could not stat "${found.path}": ${messageOf(found.error)}`);
    return;
  }
  const { path: p, st } = found;
  if (!top) {
    const traced = found.traced ?? traceAcceptFile(block, run.fileset, p, st.isDirectory());
    if (traced.left) job.leftOver = traced.left;
    if (traced.options === null) return;
    options = traced.options;
  }
  if (st.isDirectory()) {
    if (await holdsMarker(p, block)) return;
    const dir: Dir = { path: p, st, options };
    if (top || (!options.noRecursion && (options.crossFilesystems || st.dev === parentDev))) {
      tree.enter(dir, await listDirectory(job, p));
      return;
    }
    if (!options.crossFilesystems && st.dev !== parentDev) {
      run.log('info', `"${p}" is a different filesystem. Will not descend from "${path.dirname(p)}" into it.`);
    }
    await leaveDirectory(job, block, dir);
    return;
  }
  job.totals.examined++;
  if (!(await mustSave(run, p, st, options, block))) return;
  if (st.isSymbolicLink()) {
    await sendAttributesOnly(job, FT.LNK, p, p, st, decodeName(await readlink(fsPath(p), { encoding: 'buffer' })), options);
    return;
  }
  if (st.isSocket()) {
    // save_file: "Socket file skipped" (M_SKIPPED), and nothing is sent.
    run.log('info', `Socket file skipped: ${p}`);
    return;
  }
  await sendEntry(job, p, st, options, top, found.content);
}

/** A directory's names, or none (reported) when it cannot be listed: it is still saved itself. */
async function listDirectory(job: BackupJob, p: string): Promise<string[]> {
  try {
    return await namesInReaddirOrder(p);
  } catch (error) {
    job.problem(`Could not open directory "${p}": ${messageOf(error)}`);
    return [];
  }
}

/** The directory itself after its contents, named with a trailing slash (FT_DIREND). */
async function leaveDirectory(job: BackupJob, block: IncludeBlock, { path: p, st, options }: Dir): Promise<void> {
  job.totals.examined++;
  if (await mustSave(job.run, p, st, options, block)) await sendAttributesOnly(job, FT.DIREND, p.endsWith('/') ? p : `${p}/`, p, st, '', options);
  if (options.keepAtime) await putBackAccessTime(p, st);
}

/** Exclude Dir Containing: a directory holding the block's marker is skipped whole. */
async function holdsMarker(dir: string, block: IncludeBlock): Promise<boolean> {
  const marker = ignoreDirMarker(block);
  if (marker === null) return false;
  return stat(fsPath(path.join(dir, marker))).then(() => true, () => false);
}
