/**
 * A job's ACL and xattr streams, as bacula-fd 9.6 sends and applies them (filed/backup.c save_file,
 * restore.c; the formats are acl.ts's and xattr.ts's).
 *
 * Backup: for each entry, after its data and before its digest, the access ACL (1008; not for a
 * symlink), a directory's default ACL (1007), then the xattrs (1998), each when the FileSet's
 * aclsupport / xattrsupport asks and there is something to save. Agent files get none (bacula-fd
 * asks a plugin for its own).
 *
 * Restore: a directory's streams are applied as they come; a file's wait until its data is written
 * and its attributes set, so that setting the mode cannot undo them, and only a file whose data was
 * written (regular files, and fifos and raw devices with data) gets them: bacula-fd does not apply
 * them to symlinks, hard links or special files either, nor to a file it skipped.
 *
 * Neither ever fails the job: a filesystem without ACLs or xattrs is skipped (and counted on
 * restore), and what cannot be read or set is a warning, 25 of each kind per job at most, then a
 * count at the end, as bacula-fd reports them.
 */
import { lstatSync } from 'node:fs';
import { FT } from './lstat.js';
import { ACL_STREAM, readAclText, writeAclText, type AclKind } from './acl.js';
import { STREAM_LINUX_XATTR, decodeXattrStream, encodeXattrStream, readXattrs, writeXattrs } from './xattr.js';
import { fsPath } from '../../platform/byte-names.js';

/** bacula-fd's ACL_MAX_ERROR_PRINT_PER_JOB and XATTR_MAX_ERROR_PRINT_PER_JOB (filed.h). */
export const MAX_WARNINGS_PER_JOB = 25;

export interface XaclStream {
  stream: number;
  data: Buffer;
}

type Warn = (message: string) => void;

/** One kind's problems in a job: the first few as warnings, all counted. */
class ProblemCount {
  count = 0;

  constructor(private readonly warn: Warn) {}

  report(message: string): void {
    if (this.count < MAX_WARNINGS_PER_JOB) this.warn(message);
    this.count++;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The streams of the ACL and xattr ranges (streams.h: ACLs 15, 16 and 1000-1020; xattrs 1988-1999). */
export function isXaclStream(stream: number): boolean {
  return isAclStream(stream) || isXattrStream(stream);
}

function isAclStream(stream: number): boolean {
  return stream === ACL_STREAM.UNIX_ACCESS || stream === ACL_STREAM.UNIX_DEFAULT || (stream >= 1000 && stream <= 1020);
}

function isXattrStream(stream: number): boolean {
  return stream >= 1988 && stream <= 1999;
}

/** The ACL a stream sets on Linux, or null for another system's stream. */
function aclKindOf(stream: number): AclKind | null {
  if (stream === ACL_STREAM.LINUX_ACCESS || stream === ACL_STREAM.UNIX_ACCESS) return 'access';
  if (stream === ACL_STREAM.LINUX_DEFAULT || stream === ACL_STREAM.UNIX_DEFAULT) return 'default';
  return null;
}

/** The ACL and xattr streams of a backup's entries. */
export class XaclBackup {
  private readonly acl: ProblemCount;
  private readonly xattr: ProblemCount;

  constructor(private readonly warn: Warn) {
    this.acl = new ProblemCount(warn);
    this.xattr = new ProblemCount(warn);
  }

  /** What follows the data of the entry `path` of FT type `type`, in bacula-fd's order. */
  streamsOf(path: string, type: number, options: { acl: boolean; xattr: boolean }): XaclStream[] {
    const streams: XaclStream[] = [];
    if (options.acl && type !== FT.LNK) streams.push(...this.aclStreams(path, type === FT.DIREND));
    if (options.xattr) {
      const xattrs = this.xattrStream(path, options.acl);
      if (xattrs) streams.push(xattrs);
    }
    return streams;
  }

  private aclStreams(path: string, isDir: boolean): XaclStream[] {
    const streams: XaclStream[] = [];
    const kinds: [AclKind, number][] = [['access', ACL_STREAM.LINUX_ACCESS]];
    if (isDir) kinds.push(['default', ACL_STREAM.LINUX_DEFAULT]);
    for (const [kind, stream] of kinds) {
      try {
        const text = readAclText(path, kind);
        if (text) streams.push({ stream, data: text });
      } catch (error) {
        // bacula-fd 9.6 drops this one silently; a lost ACL deserves a word.
        this.acl.report(`${messageOf(error)}; the ${kind} ACL of this file is not saved`);
      }
    }
    return streams;
  }

  private xattrStream(path: string, skipAclNames: boolean): XaclStream | null {
    try {
      const xattrs = readXattrs(path, skipAclNames);
      return xattrs ? { stream: STREAM_LINUX_XATTR, data: encodeXattrStream(xattrs) } : null;
    } catch (error) {
      this.xattr.report(`${messageOf(error)}; the extended attributes of this file are not saved`);
      return null;
    }
  }

  /** blast_data_to_storage_daemon's end: how many problems there were. */
  finish(): void {
    if (this.acl.count > 0) this.warn(`Had ${this.acl.count} acl errors while doing backup`);
    if (this.xattr.count > 0) this.warn(`Had ${this.xattr.count} xattr errors while doing backup`);
  }
}

/**
 * How a restored entry is reached to set its ACLs and xattrs: `body` gets a path for it that the
 * l- calls (lstat, lsetxattr) may use. In place that is its path; under a where, a path through its
 * parent as the restore opened it (transfer/restore/restore-root.ts), so a swapped parent is never
 * followed.
 */
export type XaclAccess = (body: (path: string) => void) => Promise<void>;

/** The ACL and xattr streams of a restore, applied to the entry the last attributes record made. */
export class XaclRestore {
  private target: { path: string; isDir: boolean; access: XaclAccess } | null = null;
  private delayed: XaclStream[] = [];
  private readonly acl: ProblemCount;
  private readonly xattr: ProblemCount;
  /** Devices found without ACL or xattr support: their further streams are counted, not tried. */
  private readonly noAcl = new Set<bigint>();
  private readonly noXattr = new Set<bigint>();

  constructor(private readonly warn: Warn) {
    this.acl = new ProblemCount(warn);
    this.xattr = new ProblemCount(warn);
  }

  /** The entry the next streams belong to (null: none, e.g. an agent's file or a refused name). */
  begin(path: string | null, type: number, access: XaclAccess = async (body) => body(path!)): void {
    this.target = path === null ? null : { path, isDir: type === FT.DIREND || type === FT.DIRBEGIN, access };
    this.delayed = [];
  }

  /** One ACL or xattr record. `skipping`: the entry is not being extracted (made without data, kept, or failed). */
  async receive(stream: number, data: Buffer, skipping: boolean): Promise<void> {
    if (!this.target) return;
    if (this.target.isDir) await this.apply(stream, data);
    else if (!skipping) this.delayed.push({ stream, data });
  }

  /** A file's held-back streams, once its data and attributes are set (pop_delayed_data_streams). */
  async applyDelayed(): Promise<void> {
    const delayed = this.delayed;
    this.delayed = [];
    for (const { stream, data } of delayed) await this.apply(stream, data);
  }

  private async apply(stream: number, data: Buffer): Promise<void> {
    const { path, access } = this.target!;
    const count = isAclStream(stream) ? this.acl : this.xattr;
    try {
      await access((reach) => {
        let dev: bigint;
        try {
          dev = lstatSync(fsPath(reach), { bigint: true }).dev;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // nothing there to set: as bacula-fd, no error
          count.report(`Unable to stat file "${path}": ${messageOf(error)}`);
          return;
        }
        if (isAclStream(stream)) this.applyAcl(path, reach, dev, stream, data);
        else this.applyXattrs(path, reach, dev, stream, data);
      });
    } catch (error) {
      // The entry cannot be reached (gone, or under a where a parent swapped for a link): not set.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') count.report(`Unable to stat file "${path}": ${messageOf(error)}`);
    }
  }

  private applyAcl(path: string, reach: string, dev: bigint, stream: number, data: Buffer): void {
    if (this.noAcl.has(dev)) {
      this.acl.count++;
      return;
    }
    const kind = aclKindOf(stream);
    if (kind === null) {
      this.acl.report(`Can't restore ACLs of ${path} - incompatible acl stream encountered - ${stream} (saved on another system; agentfd restores Linux ACLs only)`);
      return;
    }
    try {
      if (writeAclText(reach, kind, data, undefined, path) === 'unsupported') {
        this.noAcl.add(dev);
        this.acl.report(`acl_set_file error on file "${path}": filesystem doesn't support ACLs; restore to a filesystem with ACLs (ext4, xfs, tmpfs ...) to keep them`);
      }
    } catch (error) {
      this.acl.report(messageOf(error));
    }
  }

  private applyXattrs(path: string, reach: string, dev: bigint, stream: number, data: Buffer): void {
    if (this.noXattr.has(dev)) {
      this.xattr.count++;
      return;
    }
    if (stream !== STREAM_LINUX_XATTR) {
      this.xattr.report(`Can't restore Extended Attributes of ${path} - incompatible xattr stream encountered - ${stream} (saved on another system; agentfd restores Linux xattrs only)`);
      return;
    }
    const { xattrs, error } = decodeXattrStream(data);
    try {
      if (writeXattrs(reach, xattrs, path) === 'unsupported') {
        this.noXattr.add(dev);
        this.xattr.report(`setxattr error on file "${path}": filesystem doesn't support XATTR; restore to a filesystem with extended attributes to keep them`);
      }
    } catch (setError) {
      this.xattr.report(messageOf(setError));
    }
    if (error !== null) this.xattr.report(`${error} on file "${path}"; the attributes after that point are not restored`);
  }

  /** do_restore's end: how many problems there were. */
  finish(): void {
    if (this.acl.count > 0) this.warn(`Encountered ${this.acl.count} acl errors while doing restore`);
    if (this.xattr.count > 0) this.warn(`Encountered ${this.xattr.count} xattr errors while doing restore`);
  }
}
