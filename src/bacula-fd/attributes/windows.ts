/**
 * What `agentfd serve` does differently when it runs on Windows, as a Windows bacula-fd 9.6 does
 * it. Pure functions with the platform as a parameter, so that Linux tests can check the win32 forms.
 *
 * - Names. A Windows bacula-fd names files with '/' separators and the drive first, as the FileSet
 *   gives them ("C:/Users/ann/notes.txt"): the catalog, wild/regex matching, accurate lists and a
 *   restore on any other FD all see that form. Node's path.join would give backslashes.
 * - Restore paths. With a where, Bacula (lib/attr.c build_attr_output_fnames) turns the drive's
 *   colon into a separator: where + "C:/x" is <where>/C/x. Without one the name is used as it is.
 *   A component holding '\' (a separator on Windows) or ':' (an alternate data stream) would lead
 *   the write somewhere else than the name says, so such a name is refused (Linux names only).
 *   This is not agentfd's own mapping (src/agents/filesystem/agent-path.ts, which writes such a
 *   name escaped, reversibly, and says so): serve's names are the Director's catalog names, and a
 *   file restored under another name than the one Bacula recorded would be lost to Bacula.
 * - Attributes. A Windows bacula-fd sends its attribute records as STREAM_UNIX_ATTRIBUTES_EX (5)
 *   with attribsEx (findlib/attribs.c encode_attribsEx): dwFileAttributes, creation, last access and
 *   last write FILETIMEs, file size high and low 32 bits, in Bacula base64, space-separated. Every
 *   FD restores such a record as an ordinary one; a Windows FD also sets the attributes and times.
 */
import path from 'node:path';
import { AgentfdError } from '../../errors.js';
import { IS_WINDOWS } from '../../platform/os.js';
import { baculaBase64FromInt, baculaBase64ToInt } from '../wire/base64.js';


/** The name Bacula gets for the OS path `osPath`: on Windows '/' separators ("Z:\\a\\b" -> "Z:/a/b"). */
export function baculaName(osPath: string, windows = IS_WINDOWS): string {
  return windows ? osPath.replace(/\\/g, '/') : osPath;
}

/**
 * The name of the entry `child` of the directory named `dir` (a Bacula name). On Linux path.join, as
 * the walk always did; on Windows joined with '/', as a Windows bacula-fd builds names.
 */
export function childName(dir: string, child: string, windows = IS_WINDOWS): string {
  if (!windows) return path.join(dir, child);
  return dir.endsWith('/') ? `${dir}${child}` : `${dir}/${child}`;
}

/**
 * The mode a Windows entry gets in its LStat. Windows has no execute bit, and Node reports a
 * directory as 0o40666; restored as that on Linux it could not be entered. A Windows bacula-fd
 * sends directories as 0777 (win32/compat stat), so a directory gets 'x' wherever it has 'r'.
 * Files keep Node's 0o666 (0o444 when read-only): no execute bit for data from Windows.
 */
export function lstatMode(mode: number, windows = IS_WINDOWS): number {
  if (!windows || (mode & 0o170000) !== 0o040000) return mode;
  return mode | ((mode & 0o444) >> 2);
}

function refuse(fname: string, why: string): AgentfdError {
  return new AgentfdError('E_RESTORE_PATH', `restore of "${fname}" refused: ${why}; nothing was written for it`);
}

/**
 * Where the backup's `fname` is restored under `where` ('' or '/': in place). Refuses "." and ".."
 * components everywhere; on Windows also components that would not name one entry (see above).
 */
export function restoreTarget(where: string, fname: string, windows = IS_WINDOWS): string {
  const parts = fname.split('/').filter((p) => p.length > 0);
  if (parts.some((p) => p === '..' || p === '.')) throw refuse(fname, 'it has a "." or ".." component');
  const inPlace = where === '' || where === '/';
  if (!windows) return path.join(inPlace ? '/' : where, ...parts);
  const drive = parts.length > 0 && /^[A-Za-z]:$/.test(parts[0]!) ? parts.shift()!.slice(0, 1) : null;
  for (const part of parts) {
    if (part.includes('\\') || part.includes(':')) {
      throw refuse(fname, `its component "${part}" holds ${part.includes('\\') ? "'\\', a separator" : "':', an alternate data stream"} on Windows`);
    }
  }
  if (inPlace) return drive === null ? path.win32.join('\\', ...parts) : path.win32.join(`${drive}:\\`, ...parts);
  return path.win32.join(where, ...(drive === null ? [] : [drive]), ...parts);
}

/** 100-ns intervals from 1601 to 1970: a FILETIME is this plus the Unix time in 100 ns. */
const FILETIME_EPOCH = 116_444_736_000_000_000n;
export const FILE_ATTRIBUTE_DIRECTORY = 0x10;
export const FILE_ATTRIBUTE_NORMAL = 0x80;

/** What a Windows FD's attribsEx carries. Times in nanoseconds since 1970. */
export interface WindowsAttribs {
  attributes: number;
  birthtimeNs: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  size: bigint;
}

function toFiletime(ns: bigint): bigint {
  const t = ns / 100n + FILETIME_EPOCH;
  return t < 0n ? 0n : t;
}

/** attribsEx as encode_attribsEx writes it on Windows. */
export function encodeWindowsAttribs(a: WindowsAttribs): string {
  const size = a.size < 0n ? 0n : a.size;
  return [BigInt(a.attributes >>> 0), toFiletime(a.birthtimeNs), toFiletime(a.atimeNs), toFiletime(a.mtimeNs), size >> 32n, size & 0xffffffffn]
    .map(baculaBase64FromInt)
    .join(' ');
}

/** attribsEx of a Windows FD, or null when it is empty or not six base64 numbers (a Unix FD's record). */
export function decodeWindowsAttribs(text: string): WindowsAttribs | null {
  const fields = text.trim().split(/ +/);
  if (text.trim() === '' || fields.length < 6) return null;
  let values: bigint[];
  try {
    values = fields.slice(0, 6).map(baculaBase64ToInt);
  } catch {
    return null;
  }
  const fromFiletime = (t: bigint) => (t - FILETIME_EPOCH) * 100n;
  return {
    attributes: Number(BigInt.asUintN(32, values[0]!)),
    birthtimeNs: fromFiletime(values[1]!),
    atimeNs: fromFiletime(values[2]!),
    mtimeNs: fromFiletime(values[3]!),
    size: (values[4]! << 32n) | values[5]!,
  };
}
