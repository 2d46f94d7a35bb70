/**
 * Accurate mode, at the end of the job: every listed file this job did not meet is reported as
 * FT_DELETED (accurate_send_deleted_list).
 */
import { STREAM } from '../../attributes/lstat.js';
import type { BackupJob } from './job.js';
import { deletedRecord } from './records.js';

/** Send the deleted files' records and log how many of the Director's list they were. */
export async function sendDeletedFiles(job: BackupJob): Promise<void> {
  const { run, totals } = job;
  if (!run.accurate || run.isCancelled()) return;
  let deleted = 0;
  for (const gone of run.accurate.unseen()) {
    if (run.isCancelled()) break;
    const index = job.nextIndex();
    await run.sd.sendStream(index, STREAM.UNIX_ATTRIBUTES, 0, [deletedRecord(index, gone.name, gone.stat.mtime, gone.stat.ctime)]);
    totals.files++;
    deleted++;
  }
  run.log('info', `accurate: ${deleted} deleted of ${run.accurate.size} files in the previous jobs' list`);
}
