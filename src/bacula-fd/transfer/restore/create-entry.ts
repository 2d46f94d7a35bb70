/**
 * One entry of the backup, made as bacula-fd's create_file makes it: its parents first, then what
 * the replace= letter says of an entry already there, then the entry by its type. Every call goes
 * through the restore's root (restore-root.ts), so under a where nothing is made outside it.
 */
import { constants, symlinkSync, unlinkSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { AgentfdError } from '../../../errors.js';
import { IS_WINDOWS } from '../../../platform/os.js';
import { FT, type BaculaStat } from '../../attributes/lstat.js';
import { mkfifo, mknod, openFifo } from '../../attributes/special-files.js';
import type { EntryRecord } from './entry-record.js';
import { DescriptorSink, openedFile, type DataSink, type OpenFile } from './file-data.js';
import { restoreHardLink } from './hard-link.js';
import { keptBecause, type ReplaceMode } from './replace.js';
import { CREATE_FLAGS, codeOf, lstatOrNull, lstatOrNullSync, type RestoreRoot } from './restore-root.js';
import { setAttributes, type DeferredDirectories } from './set-attributes.js';
import { fsPath, pathText } from '../../../platform/byte-names.js';

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

export interface CreateContext {
  root: RestoreRoot;
  replace: ReplaceMode;
  /** The restore's where as the Director gave it (prelinks put it in front of absolute targets). */
  where: string;
  prefixLinks: boolean;
  fifoOpenTimeoutMs?: number;
  directories: DeferredDirectories;
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
}

/** What was made: the file its data records go into (null: none), and whether it counts as restored now. */
export interface Created {
  file: OpenFile | null;
  restored: boolean;
}

const DONE: Created = { file: null, restored: true };
const NO_DATA: Created = { file: null, restored: false };

export async function createEntry(ctx: CreateContext, entry: EntryRecord, target: string): Promise<Created> {
  const { root, replace } = ctx;
  const { type, stat } = entry;
  const isDir = type === FT.DIREND || type === FT.DIRBEGIN;
  await root.parents(target, { mode: stat.mode, uid: stat.uid, gid: stat.gid, directory: isDir });
  const fresh = await newRegularFile(root, type, target);
  if (fresh) return { file: openedFile(target, entry.fname, stat, entry.attribsEx, fresh, 'regular'), restored: false };
  let existing = await root.at(target, lstatOrNullSync);
  if (existing) {
    const kept = keptBecause(replace, stat, existing, isDir, root.made.has(target));
    if (kept !== null) {
      ctx.log('info', `File skipped. ${kept}: ${target}`);
      return DONE; // bacula-fd counts it: the Director then reports the restore OK, not short
    }
    existing = await removeExisting(root, target, type, existing, isDir);
  }
  const file = (handle: DataSink, kind: 'regular' | 'fifo' | 'device'): Created => ({
    file: openedFile(target, entry.fname, stat, entry.attribsEx, handle, kind),
    restored: false,
  });
  switch (type) {
    case FT.REG:
    case FT.REGE:
      return file(await openRegular(root, target), 'regular');
    case FT.DIREND:
    case FT.DIRBEGIN:
      await root.directory(target, stat.mode & 0o7777);
      ctx.directories.add(target, stat, entry.attribsEx);
      return NO_DATA;
    case FT.LNK:
      await makeSymlink(ctx, target, entry.link);
      await setAttributes(root, target, stat, true);
      return DONE;
    case FT.LNKSAVED:
      await restoreHardLink(root, target, entry.link);
      await setAttributes(root, target, stat, false, entry.attribsEx);
      return DONE;
    case FT.SPEC:
      if ((stat.mode & S_IFMT) === S_IFSOCK) {
        ctx.log('info', `Socket ${entry.fname} is not restored (bacula-fd does not restore sockets either)`);
      } else {
        await makeNode(root, target, stat);
        await setAttributes(root, target, stat, false, entry.attribsEx);
      }
      return DONE;
    case FT.FIFO:
      // Data for a reader of the fifo: it must be reading within the timeout, as with bacula-fd.
      if (!existing) await makeNode(root, target, stat);
      return file(await root.self(target, (p) => openFifo(p, 'write', ctx.fifoOpenTimeoutMs)), 'fifo');
    case FT.RAW:
      if (root.confined) {
        // Under a where, the device's data becomes an image file: writing a device is for an in-place restore.
        ctx.log('warning', `"${entry.fname}" was saved from a raw device; restored under where as an image file ${target}, not into a device (restore with where=/ to write the device)`);
        return file(await openRegular(root, target), 'regular');
      }
      if (!existing) await makeNode(root, target, stat);
      return file(await root.self(target, (p) => open(p, constants.O_WRONLY)), 'device');
    default:
      ctx.log('warning', `"${entry.fname}" has file type ${type}, which agentfd serve does not restore; skipped`);
      return NO_DATA;
  }
}

/**
 * The usual entry of a restore, a regular file with nothing in its place, created at once: the
 * open's O_EXCL is the check that nothing is there, so it takes one confined call (RestoreRoot
 * createFile) rather than an lstat before the open. Null when something is there (EEXIST:
 * replace= decides then, below) and on Windows.
 */
async function newRegularFile(root: RestoreRoot, type: number, target: string): Promise<DataSink | null> {
  if ((type !== FT.REG && type !== FT.REGE) || IS_WINDOWS) return null;
  try {
    return new DescriptorSink(await root.createFile(target, 0o600));
  } catch (error) {
    if (codeOf(error) === 'EEXIST') return null;
    throw error;
  }
}

/**
 * A new regular file, for its data. On Unix its descriptor, opened with one synchronous call
 * (file-data.ts DescriptorSink says why); on Windows a FileHandle, set by path when done.
 */
async function openRegular(root: RestoreRoot, target: string): Promise<DataSink> {
  if (IS_WINDOWS) return root.at(target, (p) => open(p, CREATE_FLAGS, 0o600));
  return new DescriptorSink(await root.createFile(target, 0o600));
}

/**
 * What is there goes, except a directory (kept and reused), a fifo written into and, in place, a
 * raw device written into (a reader may be waiting on the fifo; the device is the target).
 * Returns what is left there.
 */
async function removeExisting(root: RestoreRoot, target: string, type: number, existing: Stats, isDir: boolean): Promise<Stats | null> {
  const keep = isDir || (type === FT.FIFO && existing.isFIFO()) || (type === FT.RAW && !root.confined);
  if (keep) return existing;
  try {
    await root.at(target, (p) => unlinkSync(p));
  } catch (error) {
    if (error instanceof AgentfdError) throw error;
    throw new AgentfdError('E_RESTORE_IO', `File ${target} already exists and could not be replaced. ERR=${codeOf(error)}`);
  }
  return null;
}

async function makeSymlink(ctx: CreateContext, target: string, link: string): Promise<void> {
  // prelinks=1 (the restore's "add prefix to absolute links"): an absolute target gets where in
  // front, as bacula-fd does, so the restored tree points into itself.
  const inPlace = ctx.where === '' || ctx.where === '/';
  const pointsTo = ctx.prefixLinks && link.startsWith('/') && !inPlace ? path.join(ctx.where, link) : link;
  await ctx.root.at(target, (p) => symlinkSync(fsPath(pointsTo), p)); // the target's own bytes
  // Windows: making a symlink needs SeCreateSymbolicLinkPrivilege (or Developer Mode), and Wine
  // reports success without making one. Checked, so that a link not made is this file's error
  // ("Could not symlink", as a Windows bacula-fd), not a file counted as restored.
  if (IS_WINDOWS && !(await lstatOrNull(target))?.isSymbolicLink()) {
    throw new AgentfdError('E_RESTORE_IO', `Could not symlink ${target} -> ${link}: Windows made no symbolic link (it needs the SeCreateSymbolicLinkPrivilege or Developer Mode; Wine makes none)`);
  }
}

/** A fifo (mkfifo) or device node (mknod with the saved rdev: root only), as create_file makes them; one already there is fine. */
async function makeNode(root: RestoreRoot, target: string, stat: BaculaStat): Promise<void> {
  const fifo = (stat.mode & S_IFMT) === S_IFIFO;
  try {
    await root.at(target, (p) => (fifo ? mkfifo(pathText(p), stat.mode) : mknod(pathText(p), stat.mode, stat.rdev)));
  } catch (error) {
    if (error instanceof AgentfdError) throw error;
    if (codeOf(error) === 'EEXIST') return;
    const hint = codeOf(error) === 'EPERM' ? ' (device nodes need root)' : '';
    throw new AgentfdError('E_RESTORE_IO', `Cannot make ${fifo ? 'fifo' : 'node'} ${target}: ERR=${codeOf(error)}${hint}`);
  }
}
