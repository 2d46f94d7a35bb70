/**
 * A Bacula restore of plain files from the Storage Daemon's records (filed/restore.c): an
 * attributes record opens each file, data records (plain, GZIP: one zlib stream per record, or
 * sparse: an 8-byte offset first) fill it, and the next attributes record closes it and sets its
 * mode, owner and times. Directories get theirs at the end, deepest first, since writing their
 * contents changed their times. Every path lands under `where`: a name with ".." is refused.
 */
import { chmod, chown, lchown, lutimes, mkdir, open, rm, symlink, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { AgentfdError, messageOf } from '../errors.js';
import { FT, STREAM, STREAM_MASK, decodeAttributes, decodeLStat, type BaculaStat } from './lstat.js';
import type { SdRecord } from './storage-daemon.js';

export interface RestoreTotals {
  files: number;
  bytes: number;
  errors: string[];
}

export interface RestoreRun {
  records: AsyncIterable<SdRecord>;
  /** Bacula's `where`: the restore's root; '' or '/' restores in place. */
  where: string;
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
}

/** The path `fname` (absolute, from the backup) under `where`; refuses what would leave it. */
export function restorePath(where: string, fname: string): string {
  const parts = fname.split('/').filter((p) => p.length > 0);
  if (parts.some((p) => p === '..' || p === '.')) {
    throw new AgentfdError('E_RESTORE_PATH', `restore of "${fname}" refused: it has a "." or ".." component; nothing was written for it`);
  }
  const root = where === '' ? '/' : where;
  return path.join(root, ...parts);
}

async function setAttributes(target: string, stat: BaculaStat, link: boolean): Promise<void> {
  const mtime = Number(stat.mtime);
  const atime = Number(stat.atime);
  if (process.getuid?.() === 0) await (link ? lchown : chown)(target, stat.uid, stat.gid).catch(() => undefined);
  if (link) {
    await lutimes(target, atime, mtime).catch(() => undefined);
    return;
  }
  await chmod(target, stat.mode & 0o7777);
  await utimes(target, atime, mtime);
}

export async function receiveRestore(run: RestoreRun): Promise<RestoreTotals> {
  const totals: RestoreTotals = { files: 0, bytes: 0, errors: [] };
  const directories: { target: string; stat: BaculaStat }[] = [];
  let current: { target: string; stat: BaculaStat; handle: FileHandle; fname: string } | null = null;
  let skipping = false;
  const problem = (message: string) => {
    totals.errors.push(message);
    run.log('error', message);
  };

  const closeCurrent = async () => {
    if (!current) return;
    const file = current;
    current = null;
    await file.handle.close();
    try {
      await setAttributes(file.target, file.stat, false);
    } catch (error) {
      problem(`Unable to set the attributes of "${file.target}": ${messageOf(error)}`);
    }
    totals.files++;
  };

  for await (const record of run.records) {
    const stream = record.stream & STREAM_MASK;
    if (stream === STREAM.UNIX_ATTRIBUTES) {
      await closeCurrent();
      skipping = false;
      const attributes = decodeAttributes(record.data);
      const stat = decodeLStat(attributes.lstat);
      let target: string;
      try {
        target = restorePath(run.where, attributes.fname);
      } catch (error) {
        problem(messageOf(error));
        skipping = true;
        continue;
      }
      try {
        switch (attributes.type) {
          case FT.REG:
          case FT.REGE: {
            await mkdir(path.dirname(target), { recursive: true });
            const handle = await open(target, 'w', 0o600);
            current = { target, stat, handle, fname: attributes.fname };
            break;
          }
          case FT.DIREND:
          case FT.DIRBEGIN:
            await mkdir(target, { recursive: true });
            directories.push({ target, stat });
            break;
          case FT.LNK:
            await mkdir(path.dirname(target), { recursive: true });
            await rm(target, { force: true });
            await symlink(attributes.link, target);
            await setAttributes(target, stat, true);
            totals.files++;
            break;
          default:
            run.log('warning', `"${attributes.fname}" has file type ${attributes.type}, which agentfd serve does not restore yet; skipped`);
            skipping = true;
        }
      } catch (error) {
        problem(`Could not create "${target}": ${messageOf(error)}`);
        skipping = true;
      }
      continue;
    }
    if (skipping) continue;
    if (stream === STREAM.FILE_DATA || stream === STREAM.GZIP_DATA || stream === STREAM.SPARSE_DATA || stream === STREAM.SPARSE_GZIP_DATA) {
      if (!current) {
        problem(`data (stream ${stream}) arrived with no file open; the volume's records are out of order`);
        continue;
      }
      let data = record.data;
      let position: number | null = null;
      if (stream === STREAM.SPARSE_DATA || stream === STREAM.SPARSE_GZIP_DATA) {
        position = Number(data.readBigUInt64BE(0));
        data = data.subarray(8);
      }
      if (stream === STREAM.GZIP_DATA || stream === STREAM.SPARSE_GZIP_DATA) data = inflateSync(data);
      await current.handle.write(data, 0, data.length, position);
      totals.bytes += data.length;
    }
    // Digest records (3, 10, 17, 18) are not checked on restore, as in bacula-fd; other streams
    // (ACLs, xattrs, plugin names) are not restored by this version.
  }
  await closeCurrent();
  // Deepest first: setting a parent's times before its children are done would be undone.
  directories.sort((a, b) => b.target.length - a.target.length);
  for (const dir of directories) {
    try {
      await setAttributes(dir.target, dir.stat, false);
      totals.files++;
    } catch (error) {
      problem(`Unable to set the attributes of "${dir.target}": ${messageOf(error)}`);
    }
  }
  return totals;
}
