/**
 * One line of `estimate listing` as bacula-fd writes it (filed/estimate.c, lib/attr.c ls_output):
 * the mode as ls shows it (with setuid, setgid and sticky, and `f` for a fifo), the link count,
 * owner and group names (numbers when the system has no name), the size, the ctime in local time,
 * two spaces, the name, and for a symbolic link " -> " and its target.
 */
import { FT } from '../attributes/lstat.js';

const two = (n: number) => String(n).padStart(2, '0');

/** encode_mode: the file type letter, then rwx with s/S and t/T as ls writes them. */
export function modeText(mode: number): string {
  const type = mode & 0o170000;
  const letter = type === 0o040000 ? 'd' : type === 0o060000 ? 'b' : type === 0o020000 ? 'c' : type === 0o120000 ? 'l' : type === 0o010000 ? 'f' : type === 0o140000 ? 's' : '-';
  const bit = (mask: number, c: string) => (mode & mask ? c : '-');
  const exec = (x: number, special: number, set: string) => (mode & special ? (mode & x ? set : set.toUpperCase()) : mode & x ? 'x' : '-');
  return (
    letter +
    bit(0o400, 'r') + bit(0o200, 'w') + exec(0o100, 0o4000, 's') +
    bit(0o040, 'r') + bit(0o020, 'w') + exec(0o010, 0o2000, 's') +
    bit(0o004, 'r') + bit(0o002, 'w') + exec(0o001, 0o1000, 't')
  );
}

/** encode_time: "2026-12-07 22:14:22", local time. */
export function listingTime(seconds: bigint): string {
  const d = new Date(Number(seconds) * 1000);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export interface ListedEntry {
  type: number;
  fname: string;
  link: string;
  mode: number;
  nlink: bigint;
  uid: number;
  gid: number;
  size: bigint;
  ctime: bigint;
}

/** The owner's and group's names; null when the system has none for the id. */
export interface OwnerNames {
  user(uid: number): string | null;
  group(gid: number): string | null;
}

/** "%-8.8s": padded to 8 and cut at 8. */
const field8 = (s: string) => s.padEnd(8).slice(0, 8);

export function listingLine(entry: ListedEntry, names: OwnerNames): string {
  const user = names.user(entry.uid) ?? String(entry.uid);
  const group = names.group(entry.gid) ?? String(entry.gid);
  // A directory is sent named with its trailing slash; bacula-fd lists it without.
  const name = entry.type === FT.DIREND && entry.fname.length > 1 ? entry.fname.replace(/\/$/, '') : entry.fname;
  const link = entry.type === FT.LNK ? ` -> ${entry.link}` : '';
  return `${modeText(entry.mode)}  ${String(entry.nlink).padStart(2)} ${field8(user)} ${field8(group)}${String(entry.size).padStart(19)} ${listingTime(entry.ctime)}  ${name}${link}\n`;
}
