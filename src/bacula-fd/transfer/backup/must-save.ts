/**
 * Whether an entry goes into this job: accurate mode compares it with the Director's list (and
 * marks it met); otherwise an incremental compares its times with the since-time.
 */
import type { BigIntStats } from 'node:fs';
import { accurateOptions, type IncludeBlock, type IncludeOptions } from '../../fileset/fileset.js';
import type { BackupRun } from './job.js';

export async function mustSave(run: Pick<BackupRun, 'since' | 'accurate'>, p: string, st: BigIntStats, options: IncludeOptions, block: IncludeBlock): Promise<boolean> {
  if (!run.accurate) return changedSince(run.since, st, options);
  const name = st.isDirectory() && !p.endsWith('/') ? `${p}/` : p;
  return run.accurate.mustSave(name, st, accurateOptions(block), options.digest, st.isFile());
}

/** Incremental test of find_one.c's check_changes: mtime, and ctime unless mtimeonly; a full (null) saves all. */
export function changedSince(since: bigint | null, st: BigIntStats, options: Pick<IncludeOptions, 'mtimeOnly'>): boolean {
  return since === null || st.mtimeMs / 1000n >= since || (!options.mtimeOnly && st.ctimeMs / 1000n >= since);
}
