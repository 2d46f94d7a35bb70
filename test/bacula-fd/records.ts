/** Records as a Storage Daemon's read session delivers them, for the restore tests. */
import { STREAM, encodeAttributes, encodeLStat, type BaculaStat } from '../../src/bacula-fd/attributes/lstat.js';
import type { SdRecord } from '../../src/bacula-fd/transfer/storage-daemon.js';

/** The attributes record (stream 1) of an entry of `type` named `fname`, its stat the defaults with `stat` over them. */
export function attrRecord(fileIndex: number, type: number, fname: string, stat: Partial<BaculaStat>, link = ''): SdRecord {
  const now = BigInt(Math.floor(Date.now() / 1000));
  const full: BaculaStat = {
    dev: 1n, ino: BigInt(fileIndex), mode: 0o100644, nlink: 1n, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, rdev: 0n, size: 0n,
    blksize: 4096n, blocks: 0n, atime: now, mtime: now, ctime: now, linkFI: 0, flags: 0, dataStream: STREAM.FILE_DATA, ...stat,
  };
  return { fileIndex, stream: STREAM.UNIX_ATTRIBUTES, data: encodeAttributes({ fileIndex, type, fname, lstat: encodeLStat(full), link, attribsEx: '', deltaSeq: 0 }) };
}
