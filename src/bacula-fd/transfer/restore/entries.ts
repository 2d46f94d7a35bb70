/**
 * The entry a restore is in: the one the last attributes record opened, which the records that
 * follow belong to until the next attributes (or plugin) record ends it. A plain file's data goes
 * into the file made for it (FileEntry); a plugin's file goes to its agent (agent-file.ts).
 */
import { unlink } from 'node:fs/promises';
import { AgentfdError, messageOf } from '../../../errors.js';
import { createEntry } from './create-entry.js';
import type { EntryRecord } from './entry-record.js';
import { UndecodableData } from '../lzo-records.js';
import { DescriptorSink, closeFileData, restoredSize, writeDataRecord, type OpenFile } from './file-data.js';
import type { RestoreJob } from './job.js';
import { outputNames } from './output-names.js';
import { codeOf } from './restore-root.js';
import { setAttributes, setDescriptorAttributes } from './set-attributes.js';
import { pathText } from '../../../platform/byte-names.js';

export interface RestoringEntry {
  /** The entry's name as backed up (for messages). */
  readonly name: string;
  /** Its data records are not wanted: made without data, kept, failed, or refused. */
  skipping: boolean;
  /** One data record (plain, GZIP, LZO, sparse); `release` (SdRecord's) once its memory is not needed, if this entry knows when. */
  data(stream: number, data: Buffer, release?: () => void): Promise<void>;
  /** A record of a stream this version cannot decode (`what`: undecodable.ts's words). */
  undecodable(what: string): Promise<void>;
  /** The entry is over: what it was written into is closed and its attributes set. */
  end(): Promise<void>;
}

/** A plain entry: made under the root (create-entry.ts), with the file its data goes into, if any. */
export class FileEntry implements RestoringEntry {
  constructor(
    private readonly job: RestoreJob,
    readonly name: string,
    private file: OpenFile | null,
    public skipping: boolean,
  ) {}

  /** Make the entry of `record` (its xattrs and ACLs follow it); a failure is the entry's error, and its records are skipped. */
  static async begin(job: RestoreJob, record: EntryRecord): Promise<FileEntry> {
    let target = record.fname;
    try {
      const context = await job.createContext();
      const names = outputNames(context.root, job.run.regexWhere, context.prefixLinks, record);
      target = names.target;
      const created = await createEntry(context, { ...record, link: names.link }, target);
      if (created.restored) job.totals.files++;
      const root = context.root;
      job.xacl.begin(target, record.type, (body) => root.at(target, (p) => body(pathText(p))));
      return new FileEntry(job, record.fname, created.file, created.file === null);
    } catch (error) {
      job.problem(error instanceof AgentfdError ? messageOf(error) : `Could not create "${target}": ${messageOf(error)}`);
      return new FileEntry(job, record.fname, null, true);
    }
  }

  async data(stream: number, data: Buffer, release?: () => void): Promise<void> {
    const file = this.file;
    if (!file) {
      this.job.problem(`data (stream ${stream}) arrived with no file open; the volume's records are out of order`);
      return;
    }
    try {
      this.job.totals.bytes += await writeDataRecord(file, stream, data, release);
    } catch (error) {
      if (error instanceof UndecodableData) return this.fail(`its stream ${stream} record cannot be decoded: ${error.message}`, '');
      this.job.problem(`Write error on "${file.target}": ${messageOf(error)}; the rest of its data is skipped`);
      this.skipping = true;
    }
  }

  async undecodable(what: string): Promise<void> {
    if (!this.file) {
      this.skipping = true;
      this.job.problem(`"${this.name}": a record of ${what} was ignored; restore it with a bacula-fd that can`);
      return;
    }
    return this.fail(`its data is in ${what}`, '; restore it with a bacula-fd that can');
  }

  /**
   * The file fails, loudly, and is not left as if restored: what was written of it is removed
   * (bacula-fd too stops extracting it). Its other records are skipped.
   */
  private async fail(reason: string, advice: string): Promise<void> {
    this.skipping = true;
    const file = this.file!;
    this.file = null;
    await file.handle.close().catch(() => undefined);
    let removed = '';
    if (file.regular) {
      const root = await this.job.root();
      removed = await root.at(file.target, (p) => unlink(p)).then(
        () => `; ${file.target} was removed`,
        (error: unknown) => `; ${file.target} could not be removed (${codeOf(error)}) and is incomplete`,
      );
    }
    this.job.problem(`"${file.fname}" is not restored: ${reason}${removed}${advice}`);
  }

  async end(): Promise<void> {
    const file = this.file;
    if (!file) return;
    this.file = null;
    // A file with a descriptor of its own gets its attributes through it before the close, as
    // bacula-fd's set_mod_own_time; any other (a fifo, a device, a file on Windows) by its path after.
    const descriptor = file.handle instanceof DescriptorSink ? file.handle.fd : null;
    // Its queued writes first (file-data.ts DescriptorSink): its times must come after its data.
    await file.handle.flush?.().catch((error: unknown) => this.job.problem(`Write error on "${file.target}": ${messageOf(error)}; the rest of its data is skipped`));
    try {
      await closeFileData(file, () => {
        if (descriptor !== null) this.attributes(file, () => setDescriptorAttributes(descriptor, file.stat));
      });
      this.checkSize(file);
    } catch (error) {
      this.job.problem(`Could not set the size of "${file.target}" to ${file.stat.size}: ${messageOf(error)}`);
    }
    if (descriptor === null) {
      const root = await this.job.root();
      await this.attributes(file, () => setAttributes(root, file.target, file.stat, false, file.attribsEx));
    }
    // Its ACLs and xattrs now, after the mode: chmod would change an ACL's mask (restore.c's delayed streams).
    await this.job.xacl.applyDelayed();
    this.job.totals.files++;
  }

  /** Set `file`'s attributes with `set`; a failure is the job's error, worded as bacula-fd's. */
  private attributes(file: OpenFile, set: () => void | Promise<void>): void | Promise<void> {
    const fail = (error: unknown) => this.job.problem(`Unable to set the attributes of "${file.target}": ${messageOf(error)}`);
    try {
      const pending = set();
      if (pending) return pending.catch(fail);
    } catch (error) {
      fail(error);
    }
  }

  /**
   * A regular file whose data came out longer or shorter than it was backed up (records missing
   * from the volume, or the file changed while it was read) is an error, worded as bacula-fd's
   * set_attributes words it; like bacula-fd, a file that got no data is not compared.
   */
  private checkSize(file: OpenFile): void {
    const restored = restoredSize(file);
    if (file.regular && restored > 0n && file.stat.size > 0n && restored !== file.stat.size) {
      this.job.problem(`File size of restored file ${file.target} not correct. Original ${file.stat.size}, restored ${restored}.`);
    }
  }
}

/** No entry open: before the first attributes record, or after a plugin record ended one. */
export function noEntry(job: RestoreJob, name: string): RestoringEntry {
  return new FileEntry(job, name, null, false);
}
