/**
 * A Bacula restore from the Storage Daemon's records (filed/restore.c, findlib/create_file.c): an
 * attributes record opens each file, data records (plain, GZIP: one zlib stream per record, or
 * sparse: an 8-byte offset first) fill it, and the next attributes record closes it and sets its
 * mode, owner and times. Directories get theirs at the end, deepest first, since writing their
 * contents changed their times. Hard links (FT_LNKSAVED) are linked to their first name as restored
 * here, fifos and device nodes (FT_SPEC) are made with mkfifo/mknod (special-files.ts), and the Director's
 * replace= letter decides what happens to an entry that is already there, as in bacula-fd. ACL and
 * xattr records are set as bacula-fd sets them (xacl.ts): on a directory at once, on a file once
 * its data and attributes are done.
 *
 * Every path lands under `where`: a name with ".." is refused, and under a where (not in place) no
 * directory on the way may be a symlink, nothing is opened through a symlink, and a hard link's
 * target must resolve inside where; so a symlink restored earlier, or planted there, cannot send a
 * write outside where.
 */
import { constants, type Stats } from 'node:fs';
import { chmod, chown, lchown, link as hardLink, lstat, lutimes, mkdir, open, realpath, stat as statFollow, symlink, unlink, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { AgentfdError, messageOf } from '../../errors.js';
import { DIGEST_STREAMS, FT, FT_MASK, STREAM, STREAM_MASK, UNDECODABLE_STREAM_NAMES, decodeAttributes, decodeLStat, type BaculaStat } from '../attributes/lstat.js';
import { mkfifo, mknod, openFifo } from '../attributes/special-files.js';
import { XaclRestore, isXaclStream } from '../attributes/xacl.js';
import type { SdRecord } from './storage-daemon.js';
import type { RestoreRun as AgentRestoreRun } from '../../agents/agent.js';
import type { AgentFileInfo } from '../../agents/types.js';
import { IS_WINDOWS } from '../../platform/os.js';
import { FILE_ATTRIBUTE_DIRECTORY, decodeWindowsAttribs, restoreTarget } from '../attributes/windows.js';
import { writeWinAttributes } from '../../agents/filesystem/win-attributes.js';

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
  /**
   * The agent run for a plugin command met on the volume (STREAM_PLUGIN_NAME), or null when no
   * agent of that name is installed: then its files restore as plain files under `where`, as
   * bacula-fd does with a plugin it does not have.
   */
  plugin?: (command: string) => Promise<AgentRestoreRun | null>;
  /** The Director's replace= letter (default a: always). */
  replace?: ReplaceMode;
  /** The Director's prelinks=1: absolute symlink targets are restored with where in front. */
  prefixLinks?: boolean;
  /** How long an FT_FIFO fifo may wait for its reader (bacula-fd: 60 s; tests shorten it). */
  fifoOpenTimeoutMs?: number;
}

/**
 * What to do with an entry that already exists (REPLACE_* in bacula's jcr.h): a always replace it,
 * w (ifnewer) only when the backup's mtime is newer, o (ifolder) only when it is older, n never.
 */
export type ReplaceMode = 'a' | 'w' | 'o' | 'n';

export function parseReplace(letter: string): ReplaceMode {
  return letter === 'w' || letter === 'o' || letter === 'n' ? letter : 'a';
}

/**
 * The path `fname` (absolute, from the backup) under `where`; refuses what would leave it. On
 * Windows as a Windows bacula-fd builds it: "C:/x" under where is <where>\C\x (windows.ts).
 */
export function restorePath(where: string, fname: string, windows = IS_WINDOWS): string {
  return restoreTarget(where, fname, windows);
}

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
/** A regular file is created as bacula-fd creates it: new (the old one was removed), never through a symlink. */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? messageOf(error);
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await lstat(p);
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Where a restore may write. Under a `where`, names are built below its real path and every
 * directory on the way must be a real directory: a symlink there is refused, so nothing restored or
 * planted can lead a write outside. In place (where '' or '/') the tree is the system's own, and its
 * symlinked directories (/lib -> usr/lib) are followed as bacula-fd follows them.
 */
class RestoreRoot {
  private readonly verified = new Set<string>();
  /** Directories this restore made: replace=never still sets their attributes (bacula-fd's path_list). */
  readonly made = new Set<string>();

  private constructor(readonly root: string, readonly confined: boolean) {
    this.verified.add(root);
  }

  static async open(where: string): Promise<RestoreRoot> {
    if (where === '' || where === '/') return new RestoreRoot('/', false);
    try {
      await mkdir(where, { recursive: true });
      return new RestoreRoot(await realpath(where), true);
    } catch (error) {
      throw new AgentfdError('E_RESTORE_PATH', `the restore's where "${where}" cannot be used as a directory (${codeOf(error)}); give a directory agentfd may create or write`);
    }
  }

  /** Where the backup's `fname` goes; refuses "." and ".." components. */
  target(fname: string): string {
    return restorePath(this.root, fname);
  }

  /** The directories above `target`, made when missing with `mode`. */
  async parents(target: string, mode: number): Promise<void> {
    if (target === this.root) return; // the root's own record ("/"): its parents are not ours
    // In place the walk starts at the target's own root: '/' on Linux, its drive (C:\) on Windows.
    let current = this.confined ? this.root : path.parse(target).root;
    for (const part of path.relative(current, path.dirname(target)).split(path.sep).filter((p) => p.length > 0)) {
      current = path.join(current, part);
      if (!this.verified.has(current)) await this.directory(current, mode);
    }
  }

  /** `dir` as a directory: made when missing, refused when it is something else (or, under a where, a symlink). */
  async directory(dir: string, mode: number): Promise<void> {
    let st = await lstatOrNull(dir);
    if (st === null) {
      try {
        await mkdir(dir, mode);
        this.made.add(dir);
      } catch (error) {
        if (codeOf(error) !== 'EEXIST') throw error;
      }
      st = await lstatOrNull(dir);
    }
    if (st?.isSymbolicLink() && !this.confined) st = await statFollow(dir);
    if (st === null || !st.isDirectory()) {
      const what = st === null ? 'vanished' : st.isSymbolicLink() ? 'is a symlink' : 'is not a directory';
      throw new AgentfdError('E_RESTORE_PATH', `${dir} ${what}, and a restore under where never writes through or over it; restore into an empty directory, or remove that entry first`);
    }
    this.verified.add(dir);
  }

  /**
   * The restored first name a hard link (FT_LNKSAVED) is linked to: `link` under the root, and
   * under a where it must resolve (symlinks followed) to a file inside it.
   */
  async linkSource(link: string): Promise<string> {
    const source = this.target(link);
    if (!this.confined) return source;
    let real: string;
    try {
      real = await realpath(source);
    } catch (error) {
      throw new AgentfdError('E_RESTORE_LINK', `its first name "${link}" was not restored at ${source} (${codeOf(error)}); restore the file's other names with it`);
    }
    const inside = this.root.endsWith(path.sep) ? this.root : `${this.root}${path.sep}`; // path.sep: '\\' on Windows
    if (real !== this.root && !real.startsWith(inside)) {
      throw new AgentfdError('E_RESTORE_PATH', `its first name "${link}" resolves to ${real}, outside where ${this.root}; nothing is linked to a file outside where`);
    }
    return source;
  }
}

/** Why an existing entry is kept under `replace`, as create_file words it, or null to replace it. */
function keptBecause(replace: ReplaceMode, stat: BaculaStat, existing: Stats, isDir: boolean, madeHere: boolean): string | null {
  const existingMtime = BigInt(Math.floor(existing.mtimeMs / 1000));
  switch (replace) {
    case 'w':
      return stat.mtime <= existingMtime ? 'Not newer' : null;
    case 'o':
      return stat.mtime >= existingMtime ? 'Not older' : null;
    case 'n':
      // A directory this restore made (for the files in it) still gets its attributes.
      return isDir && madeHere ? null : 'Already exists';
    default:
      return null;
  }
}

/** A file being written: its data records go here until the next attributes record. */
interface OpenFile {
  target: string;
  stat: BaculaStat;
  handle: FileHandle;
  fname: string;
  /** A fifo cannot seek: data goes in order, a skipped sparse block as zeros. */
  sequential: boolean;
  /** Where unpositioned data goes next, and the end of what was written. */
  cursor: number;
  end: number;
  /** A regular file that got sparse records: its size is set to st_size when shorter. */
  sized: boolean;
  regular: boolean;
  /** The record's attribsEx (a Windows FD's attributes, set by a Windows restore). */
  attribsEx: string;
}

/** A fifo (mkfifo) or device node (mknod with the saved rdev: root only), as create_file makes them; one already there is fine. */
function makeNode(target: string, stat: BaculaStat): void {
  const fifo = (stat.mode & S_IFMT) === S_IFIFO;
  try {
    if (fifo) mkfifo(target, stat.mode);
    else mknod(target, stat.mode, stat.rdev);
  } catch (error) {
    if (codeOf(error) === 'EEXIST') return;
    const hint = codeOf(error) === 'EPERM' ? ' (device nodes need root)' : '';
    throw new AgentfdError('E_RESTORE_IO', `Cannot make ${fifo ? 'fifo' : 'node'} ${target}: ERR=${codeOf(error)}${hint}`);
  }
}

const ZEROS = Buffer.alloc(64 * 1024);

async function writeData(file: OpenFile, data: Buffer, position: number | null): Promise<void> {
  const at = position ?? file.cursor;
  if (file.sequential) {
    for (let gap = at - file.cursor; gap > 0; gap -= ZEROS.length) await file.handle.write(ZEROS, 0, Math.min(gap, ZEROS.length), null);
    await file.handle.write(data, 0, data.length, null);
  } else {
    await file.handle.write(data, 0, data.length, at);
  }
  file.cursor = (file.sequential ? Math.max(at, file.cursor) : at) + data.length;
  file.end = Math.max(file.end, file.cursor);
}

async function setAttributes(target: string, stat: BaculaStat, link: boolean, attribsEx = ''): Promise<void> {
  const mtime = Number(stat.mtime);
  const atime = Number(stat.atime);
  if (process.getuid?.() === 0) await (link ? lchown : chown)(target, stat.uid, stat.gid).catch(() => undefined);
  if (link) {
    await lutimes(target, atime, mtime).catch(() => undefined);
    return;
  }
  if (!IS_WINDOWS) {
    await chmod(target, stat.mode & 0o7777);
    await utimes(target, atime, mtime);
    return;
  }
  await setWindowsAttributes(target, stat, attribsEx);
}

/**
 * On Windows, as a Windows bacula-fd (findlib/attribs.c set_attributes): owners do not exist there
 * (chown is not called: process.getuid is undefined), and of the mode only the write bit means
 * something (chmod sets or clears read-only), so a chmod Windows refuses is not the file's failure.
 * A Windows FD's record (stream 5, attribsEx: windows.ts) gives the times to 100 ns and the
 * attributes (hidden, system, read-only, ...), set last, since read-only would forbid setting times;
 * without it (a record from Unix) the LStat's whole seconds, as set_mod_own_time.
 */
async function setWindowsAttributes(target: string, stat: BaculaStat, attribsEx: string): Promise<void> {
  const windows = decodeWindowsAttribs(attribsEx);
  if (!windows) await chmod(target, stat.mode & 0o7777).catch(() => undefined);
  else await chmod(target, 0o666).catch(() => undefined); // writable until the attributes are set
  const seconds = (ns: bigint) => Number(ns / 1000n) / 1_000_000;
  if (windows) await utimes(target, seconds(windows.atimeNs), seconds(windows.mtimeNs));
  else await utimes(target, Number(stat.atime), Number(stat.mtime));
  // Not on directories, as set_win32_attributes (read-only means nothing on a directory there).
  if (windows && (windows.attributes & FILE_ATTRIBUTE_DIRECTORY) === 0) writeWinAttributes(target, windows.attributes);
}

/**
 * What a stream agentfd cannot decode is, for the error: its name, and for the non-GZIP compressed
 * streams the algorithm their comp_stream_header names (ch.h: a big-endian magic such as "LZOX",
 * after the 8-byte offset of a sparse one).
 */
export function undecodableStream(stream: number, data: Buffer): string {
  const name = UNDECODABLE_STREAM_NAMES[stream];
  if (name === undefined) return `stream ${stream}, which this version of agentfd does not know`;
  const headerAt = stream === 30 ? 8 : 0;
  if (stream >= 29 && stream <= 31 && data.length >= headerAt + 4) {
    const magic = data.subarray(headerAt, headerAt + 4);
    const text = /^[\x20-\x7e]{4}$/.test(magic.toString('latin1')) ? `"${magic.toString('latin1')}"` : `0x${magic.toString('hex')}`;
    return `stream ${stream} (${name}, compressed with ${text === '"LZOX"' ? 'LZO ("LZOX")' : text}), which agentfd cannot decompress`;
  }
  return `stream ${stream} (${name}), which agentfd cannot decode`;
}

export async function receiveRestore(run: RestoreRun): Promise<RestoreTotals> {
  const totals: RestoreTotals = { files: 0, bytes: 0, errors: [] };
  const directories: { target: string; stat: BaculaStat; attribsEx: string }[] = [];
  let current: OpenFile | null = null;
  const replace = run.replace ?? 'a';
  let rootOrNull: RestoreRoot | null = null;
  const rootOf = async () => (rootOrNull ??= await RestoreRoot.open(run.where));
  let skipping = false;
  const problem = (message: string) => {
    totals.errors.push(message);
    run.log('error', message);
  };
  /** The plugin command in force (between its start and end records), and its agent's run. */
  let plugin: { command: string; run: AgentRestoreRun | null } | null = null;
  let agentFile: { run: AgentRestoreRun; fname: string } | null = null;
  /** ACL and xattr records (xacl.ts): for the entry the last attributes record made. */
  const xacl = new XaclRestore((message) => run.log('warning', message));

  const endAgentFile = async (ok: boolean) => {
    if (!agentFile) return;
    const file = agentFile;
    agentFile = null;
    try {
      await file.run.endFile(ok);
      if (ok) totals.files++;
    } catch (error) {
      problem(`${file.fname}: the agent could not restore it: ${messageOf(error)}`);
    }
  };

  /** An attributes record inside a plugin's brackets: the file goes to the agent. */
  const startAgentFile = async (agentRun: AgentRestoreRun, fname: string, type: number, stat: BaculaStat, link: string) => {
    const pathName = fname.length > 1 && fname.endsWith('/') ? fname.slice(0, -1) : fname;
    const kind = type === FT.DIREND ? 'directory' : type === FT.LNK ? 'symlink' : 'virtual';
    const info: AgentFileInfo = {
      path: pathName, kind, linkTarget: kind === 'symlink' ? link : null, mode: stat.mode & 0o7777, seen: false,
      mtimeNs: stat.mtime * 1_000_000_000n, size: kind === 'virtual' ? Number(stat.size) : null, winAttributes: 0,
      streams: type === FT.REG ? [{ index: 0, type: 'data', name: 'data', sizeHint: Number(stat.size), rawRestorable: true }] : [],
    };
    try {
      await agentRun.startFile(info);
      agentFile = { run: agentRun, fname };
    } catch (error) {
      problem(`${fname}: the agent refused it: ${messageOf(error)}`);
      skipping = true;
    }
  };

  const closeCurrent = async () => {
    if (!current) return;
    const file = current;
    current = null;
    try {
      // Sparse data leaves the trailing hole unwritten when the last block was skipped: st_size says how long it was.
      if (file.regular && file.sized && BigInt(file.end) < file.stat.size) await file.handle.truncate(Number(file.stat.size));
    } catch (error) {
      problem(`Could not set the size of "${file.target}" to ${file.stat.size}: ${messageOf(error)}`);
    } finally {
      await file.handle.close();
    }
    try {
      await setAttributes(file.target, file.stat, false, file.attribsEx);
    } catch (error) {
      problem(`Unable to set the attributes of "${file.target}": ${messageOf(error)}`);
    }
    // Its ACLs and xattrs now, after the mode: chmod would change an ACL's mask (restore.c's delayed streams).
    xacl.applyDelayed();
    totals.files++;
  };

  /** The attribsEx of the record being created (a Windows FD's attributes: windows.ts). */
  let attribsEx = '';
  /** The name of the last attributes record: the entry the records that follow belong to. */
  let entryName = '';

  /**
   * A record this version cannot decode: its file fails, loudly, and is not left as if restored
   * (what was written of it is removed; bacula-fd too stops extracting it). Its other records are skipped.
   */
  const undecodable = async (stream: number, data: Buffer) => {
    const what = undecodableStream(stream, data);
    skipping = true;
    const openAgentFile = agentFile as { run: AgentRestoreRun; fname: string } | null;
    if (openAgentFile) {
      await endAgentFile(false);
      problem(`"${openAgentFile.fname}" is not restored: its data is in ${what}; the agent was told the file failed`);
      return;
    }
    const file = current as OpenFile | null;
    if (!file) {
      problem(`"${entryName}": a record of ${what} was ignored; restore it with a bacula-fd that can`);
      return;
    }
    current = null;
    await file.handle.close().catch(() => undefined);
    let removed = '';
    if (file.regular) {
      removed = await unlink(file.target).then(
        () => `; ${file.target} was removed`,
        (error: unknown) => `; ${file.target} could not be removed (${codeOf(error)}) and is incomplete`,
      );
    }
    problem(`"${file.fname}" is not restored: its data is in ${what}${removed}; restore it with a bacula-fd that can`);
  };

  const openFile = (target: string, stat: BaculaStat, handle: FileHandle, fname: string, kind: 'regular' | 'fifo' | 'device') => {
    current = { target, stat, handle, fname, sequential: kind === 'fifo', cursor: 0, end: 0, sized: false, regular: kind === 'regular', attribsEx };
  };

  /**
   * One entry of the backup, made as create_file makes it. Returns false when its data records (if
   * any) are to be skipped.
   */
  const createEntry = async (root: RestoreRoot, target: string, type: number, fname: string, link: string, stat: BaculaStat): Promise<boolean> => {
    const isDir = type === FT.DIREND || type === FT.DIRBEGIN;
    // bacula-fd makes missing parents with the entry's own mode plus u+wx, until their own records come.
    await root.parents(target, (stat.mode & 0o7777) | 0o300);
    let existing = await lstatOrNull(target);
    if (existing) {
      const kept = keptBecause(replace, stat, existing, isDir, root.made.has(target));
      if (kept !== null) {
        run.log('info', `File skipped. ${kept}: ${target}`);
        totals.files++; // bacula-fd counts it: the Director then reports the restore OK, not short
        return false;
      }
      // What is there goes, except a directory (kept and reused), a fifo written into and, in place,
      // a raw device written into (a reader may be waiting on the fifo; the device is the target).
      const keep = isDir || (type === FT.FIFO && existing.isFIFO()) || (type === FT.RAW && !root.confined);
      if (!keep) {
        try {
          await unlink(target);
        } catch (error) {
          throw new AgentfdError('E_RESTORE_IO', `File ${target} already exists and could not be replaced. ERR=${codeOf(error)}`);
        }
        existing = null;
      }
    }
    switch (type) {
      case FT.REG:
      case FT.REGE:
        openFile(target, stat, await open(target, CREATE_FLAGS, 0o600), fname, 'regular');
        return true;
      case FT.DIREND:
      case FT.DIRBEGIN:
        await root.directory(target, stat.mode & 0o7777);
        directories.push({ target, stat, attribsEx });
        return false;
      case FT.LNK:
        // prelinks=1 (the restore's "add prefix to absolute links"): an absolute target gets where
        // in front, as bacula-fd does, so the restored tree points into itself.
        await symlink(run.prefixLinks && link.startsWith('/') && run.where !== '' && run.where !== '/' ? path.join(run.where, link) : link, target);
        // Windows: making a symlink needs SeCreateSymbolicLinkPrivilege (or Developer Mode), and
        // Wine reports success without making one. Checked, so that a link not made is this
        // file's error ("Could not symlink", as a Windows bacula-fd), not a file counted as restored.
        if (IS_WINDOWS && !(await lstatOrNull(target))?.isSymbolicLink()) {
          throw new AgentfdError('E_RESTORE_IO', `Could not symlink ${target} -> ${link}: Windows made no symbolic link (it needs the SeCreateSymbolicLinkPrivilege or Developer Mode; Wine makes none)`);
        }
        await setAttributes(target, stat, true);
        totals.files++;
        return false;
      case FT.LNKSAVED: {
        let source: string;
        try {
          source = await root.linkSource(link);
        } catch (error) {
          throw new AgentfdError(error instanceof AgentfdError ? error.code : 'E_RESTORE_LINK', `Could not hard link ${target} -> ${link}: ${messageOf(error)}`);
        }
        await hardLink(source, target);
        await setAttributes(target, stat, false, attribsEx);
        totals.files++;
        return false;
      }
      case FT.SPEC:
        if ((stat.mode & S_IFMT) === S_IFSOCK) {
          run.log('info', `Socket ${fname} is not restored (bacula-fd does not restore sockets either)`);
        } else {
          makeNode(target, stat);
          await setAttributes(target, stat, false, attribsEx);
        }
        totals.files++;
        return false;
      case FT.FIFO:
        // Data for a reader of the fifo: it must be reading within the timeout, as with bacula-fd.
        if (!existing) makeNode(target, stat);
        openFile(target, stat, await openFifo(target, 'write', run.fifoOpenTimeoutMs), fname, 'fifo');
        return true;
      case FT.RAW:
        if (root.confined) {
          // Under a where, the device's data becomes an image file: writing a device is for an in-place restore.
          run.log('warning', `"${fname}" was saved from a raw device; restored under where as an image file ${target}, not into a device (restore with where=/ to write the device)`);
          openFile(target, stat, await open(target, CREATE_FLAGS, 0o600), fname, 'regular');
          return true;
        }
        if (!existing) makeNode(target, stat);
        openFile(target, stat, await open(target, constants.O_WRONLY), fname, 'device');
        return true;
      default:
        run.log('warning', `"${fname}" has file type ${type}, which agentfd serve does not restore; skipped`);
        return false;
    }
  };

  for await (const record of run.records) {
    const stream = record.stream & STREAM_MASK;
    if (stream === STREAM.PLUGIN_NAME) {
      await closeCurrent();
      await endAgentFile(!skipping);
      skipping = false;
      const text = record.data.toString('utf8').replace(/\0+$/, '');
      const start = /^\d+ 1 \d (.*)$/s.exec(text);
      if (start) {
        const command = start[1]!;
        const agentRun = run.plugin ? await run.plugin(command) : null;
        if (!agentRun) run.log('warning', `Plugin=${command.split(':')[0]} not found: its files are restored as plain files under the restore's where`);
        plugin = { command, run: agentRun };
      } else plugin = null;
      continue;
    }
    // 5: a Windows FD's attributes record, restored as any other (as bacula-fd's restore.c does).
    if (stream === STREAM.UNIX_ATTRIBUTES || stream === STREAM.UNIX_ATTRIBUTES_EX) {
      await closeCurrent();
      await endAgentFile(!skipping);
      skipping = false;
      xacl.begin(null, 0);
      const attributes = decodeAttributes(record.data);
      entryName = attributes.fname;
      const stat = decodeLStat(attributes.lstat);
      attribsEx = stream === STREAM.UNIX_ATTRIBUTES_EX ? attributes.attribsEx : '';
      if (plugin?.run) {
        await startAgentFile(plugin.run, attributes.fname, attributes.type, stat, attributes.link);
        continue;
      }
      let target = attributes.fname;
      try {
        const root = await rootOf();
        target = root.target(attributes.fname);
        skipping = !(await createEntry(root, target, attributes.type & FT_MASK, attributes.fname, attributes.link, stat));
        xacl.begin(target, attributes.type & FT_MASK);
      } catch (error) {
        problem(error instanceof AgentfdError ? messageOf(error) : `Could not create "${target}": ${messageOf(error)}`);
        skipping = true;
      }
      continue;
    }
    if (isXaclStream(stream)) {
      // Even when skipping: a directory gets its ACLs and xattrs whether it was made or kept, as with bacula-fd.
      xacl.receive(stream, record.data, skipping);
      continue;
    }
    if (skipping || DIGEST_STREAMS.has(stream)) continue; // digests are not checked on restore, as in bacula-fd
    // (set by startAgentFile, which TypeScript's narrowing cannot see through)
    const openAgentFile = agentFile as { run: AgentRestoreRun; fname: string } | null;
    if (openAgentFile && (stream === STREAM.FILE_DATA || stream === STREAM.GZIP_DATA)) {
      const data = stream === STREAM.GZIP_DATA ? inflateSync(record.data) : record.data;
      try {
        await openAgentFile.run.write(0, data);
        totals.bytes += data.length;
      } catch (error) {
        problem(`${openAgentFile.fname}: the agent could not write it: ${messageOf(error)}`);
        skipping = true;
      }
      continue;
    }
    if (stream === STREAM.FILE_DATA || stream === STREAM.GZIP_DATA || stream === STREAM.SPARSE_DATA || stream === STREAM.SPARSE_GZIP_DATA) {
      const file = current as OpenFile | null;
      if (!file) {
        problem(`data (stream ${stream}) arrived with no file open; the volume's records are out of order`);
        continue;
      }
      try {
        let data = record.data;
        let position: number | null = null;
        if (stream === STREAM.SPARSE_DATA || stream === STREAM.SPARSE_GZIP_DATA) {
          if (data.length < 8) throw new Error(`a sparse record of ${data.length} bytes has no 8-byte offset`);
          position = Number(data.readBigUInt64BE(0));
          data = data.subarray(8);
          file.sized = true;
        }
        if (stream === STREAM.GZIP_DATA || stream === STREAM.SPARSE_GZIP_DATA) data = inflateSync(data);
        await writeData(file, data, position);
        totals.bytes += data.length;
      } catch (error) {
        problem(`Write error on "${file.target}": ${messageOf(error)}; the rest of its data is skipped`);
        skipping = true;
      }
      continue;
    }
    await undecodable(stream, record.data);
  }
  await closeCurrent();
  await endAgentFile(!skipping);
  // Deepest first: setting a parent's times before its children are done would be undone.
  directories.sort((a, b) => b.target.length - a.target.length);
  for (const dir of directories) {
    try {
      await setAttributes(dir.target, dir.stat, false, dir.attribsEx);
      totals.files++;
    } catch (error) {
      problem(`Unable to set the attributes of "${dir.target}": ${messageOf(error)}`);
    }
  }
  xacl.finish();
  return totals;
}
