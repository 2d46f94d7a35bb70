/**
 * A Bacula restore from the Storage Daemon's records (filed/restore.c, findlib/create_file.c): an
 * attributes record opens each entry, data records fill it, and the next attributes record closes
 * it and sets its mode, owner and times; directories get theirs at the end, deepest first. ACL and
 * xattr records are set as bacula-fd sets them (xacl.ts), and a plugin's files go to its agent.
 * Each stage is a unit of its own under restore/:
 *
 *   entry-record.ts   the attributes record of one entry
 *   output-names.ts   where it goes: under where, or renamed by a RegexWhere (bregexp.ts)
 *   create-entry.ts   creating the entry as create_file does (replace=, every file type; hard-link.ts)
 *   file-data.ts      its data: plain, GZIP and sparse records
 *   entries.ts        the entry in progress, closed with its attributes (set-attributes.ts)
 *   agent-file.ts     a plugin's files, given to its agent
 *   restore-root.ts   the one guard every write goes through: nothing lands outside `where`
 */
import { DIGEST_STREAMS, STREAM, STREAM_MASK } from '../attributes/lstat.js';
import { isXaclStream } from '../attributes/xacl.js';
import { PluginBrackets, startAgentFile } from './restore/agent-file.js';
import { FileEntry, noEntry, type RestoringEntry } from './restore/entries.js';
import { isAttributesStream, readEntryRecord, type EntryRecord } from './restore/entry-record.js';
import { isDataStream } from './restore/file-data.js';
import { RestoreJob, type RestoreRun, type RestoreTotals } from './restore/job.js';
import { undecodableStream } from './restore/undecodable.js';

export type { RestoreRun, RestoreTotals } from './restore/job.js';
export { parseReplace, type ReplaceMode } from './restore/replace.js';
export { parseRegexWhere, type Bregexp } from './restore/bregexp.js';
export { restorePath } from './restore/restore-root.js';
export { undecodableStream } from './restore/undecodable.js';

export async function receiveRestore(run: RestoreRun): Promise<RestoreTotals> {
  const job = new RestoreJob(run);
  const plugins = new PluginBrackets(job);
  let entry: RestoringEntry = noEntry(job, '');
  try {
    for await (const record of run.records) {
      const stream = record.stream & STREAM_MASK;
      if (stream === STREAM.PLUGIN_NAME) {
        await entry.end();
        entry = noEntry(job, entry.name);
        await plugins.record(record.data);
      } else if (isAttributesStream(stream)) {
        await entry.end();
        const entryRecord = readEntryRecord(stream, record.data);
        record.release?.(); // its fields are strings now
        run.onEntry?.(entryRecord.fname);
        entry = await beginEntry(job, plugins, entryRecord);
      } else if (isXaclStream(stream)) {
        // Even when skipping: a directory gets its ACLs and xattrs whether it was made or kept, as with bacula-fd.
        await job.xacl.receive(stream, record.data, entry.skipping);
      } else if (entry.skipping || DIGEST_STREAMS.has(stream)) {
        record.release?.(); // digests are not checked on restore, as in bacula-fd
      } else if (isDataStream(stream)) {
        await entry.data(stream, record.data, record.release);
      } else {
        await entry.undecodable(undecodableStream(stream, record.data));
      }
    }
    await entry.end();
    await job.finish();
  } finally {
    job.close();
  }
  return job.totals;
}

/** The entry an attributes record opens: a plugin's file for its agent, or a plain entry made under where. */
function beginEntry(job: RestoreJob, plugins: PluginBrackets, record: EntryRecord): Promise<RestoringEntry> {
  job.xacl.begin(null, 0);
  const agent = plugins.agent;
  return agent ? startAgentFile(job, agent, record) : FileEntry.begin(job, record);
}
