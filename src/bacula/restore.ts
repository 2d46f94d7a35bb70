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
import type { RestoreRun as AgentRestoreRun } from '../agents/agent.js';
import type { AgentFileInfo } from '../agents/types.js';

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
  /** The plugin command in force (between its start and end records), and its agent's run. */
  let plugin: { command: string; run: AgentRestoreRun | null } | null = null;
  let agentFile: { run: AgentRestoreRun; fname: string } | null = null;

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
    if (stream === STREAM.UNIX_ATTRIBUTES) {
      await closeCurrent();
      await endAgentFile(!skipping);
      skipping = false;
      const attributes = decodeAttributes(record.data);
      const stat = decodeLStat(attributes.lstat);
      if (plugin?.run) {
        await startAgentFile(plugin.run, attributes.fname, attributes.type, stat, attributes.link);
        continue;
      }
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
  await endAgentFile(!skipping);
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
