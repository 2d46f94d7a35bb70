/**
 * A Bacula backup of a file tree, as a 9.6 File Daemon sends it to the Storage Daemon
 * (filed/backup.c, findlib/find_one.c): per file a FileIndex, then its attributes record (stream
 * 1), its data in frames of at most 64 KiB (stream 2, or 4 with each frame an independent zlib
 * stream when the FileSet asks for GZIP; with sparse = yes, 6 or 7: each frame an 8-byte offset
 * then the data, all-zero blocks left out), with aclsupport / xattrsupport its ACL and xattr
 * streams (1008, 1007, 1998: xacl.ts), and the digest its `signature =` names. A directory's
 * record comes after its contents, its name ending in '/', as the real FD sends it. A file's
 * further hard links are sent as FT_LNKSAVED records pointing at the first; fifos and device nodes
 * as FT_SPEC (or read, for a fifo or block device named by a File line with readfifo = yes or
 * raw); sockets are skipped, as bacula-fd skips them.
 *
 * The stages, in backup/: the walk of one Include block (include-walk.ts), the saver of one entry
 * (entry.ts) with its data (file-data.ts) and records (records.ts), whether an entry is saved at
 * all (must-save.ts), a Plugin line's files (plugin-files.ts), accurate mode's deleted files
 * (deleted-files.ts), and the state they share (job.ts).
 */
import { lzo, lzoMissing } from '../../platform/lzo.js';
import { asksForLzo, topLevelOptions, withoutLzo } from '../fileset/fileset.js';
import { sendDeletedFiles } from './backup/deleted-files.js';
import { walkInclude } from './backup/include-walk.js';
import { BackupJob, newTotals, type BackupRun, type BackupTotals } from './backup/job.js';
import { sendPlugin } from './backup/plugin-files.js';

export { newTotals, type BackupRun, type BackupTotals, type StreamSink } from './backup/job.js';
export { dataStreamFor } from './backup/records.js';

/**
 * Send every file the FileSet names (File lines, then Plugin lines through their agents) to the SD,
 * counting into `totals` (which keeps what was done if this throws).
 */
export async function sendBackup(run: BackupRun, totals: BackupTotals = newTotals()): Promise<BackupTotals> {
  const job = new BackupJob(withLzoChecked(run), totals);
  const { fileset, skipPlugins } = job.run;
  try {
    for (const block of fileset.includes) {
      await walkInclude(job, block);
      // After the block's File entries, as bacula-fd (find_files, then plugin_save per command).
      if (skipPlugins) continue;
      for (const command of block.plugins) await sendPlugin(job, command, topLevelOptions(block, fileset));
    }
    await sendDeletedFiles(job);
    job.xacl.finish();
    return totals;
  } finally {
    await job.close();
  }
}

/**
 * A FileSet asking for LZO where liblzo2 cannot be loaded: its files go uncompressed, as a
 * bacula-fd built without LZO sends them (select_data_stream then keeps the plain streams), but
 * not silently: one job warning says so and what to install.
 */
function withLzoChecked(run: BackupRun): BackupRun {
  if (!asksForLzo(run.fileset) || lzo()) return run;
  run.log('warning', `The FileSet asks for compression = LZO, but ${lzoMissing()}: its files are sent uncompressed. Install liblzo2 (Debian: liblzo2-2) to compress them.`);
  return { ...run, fileset: withoutLzo(run.fileset) };
}
