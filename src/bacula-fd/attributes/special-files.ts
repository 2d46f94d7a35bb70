/**
 * The three libc calls agentfd serve needs and Node does not offer, called through the one libc
 * binding (src/platform/libc.ts): mkfifo and mknod, to restore fifos and device nodes as bacula-fd's
 * create_file does, and utimensat with UTIME_OMIT, to put back only a file's access time after
 * reading it (keepatime) without rewriting its mtime. Also openFifo: bacula-fd's timed open of a
 * fifo, for the data of readfifo = yes, both ways.
 *
 * Why koffi and not the mkfifo/mknod programs: no process per file, no dependency on PATH or
 * coreutils, the exact mode and 64-bit rdev from the backup reach the kernel as they are, a hostile
 * file name never meets a command line, and errno comes back as Node's error codes (EEXIST, EPERM).
 *
 * Linux only (bound through src/platform/libc.ts): UTIME_OMIT and the widths below are Linux's.
 * Elsewhere each call throws an error saying so.
 * The calls are synchronous: each is one short system call on a local path.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { callError, libcBinding, longBytes } from '../../platform/libc.js';
import { cPath, type FsPath } from '../../platform/byte-names.js';

interface Libc {
  mkfifo: (path: string, mode: number) => number;
  mknod: (path: string, mode: number, dev: bigint) => number;
  utimensat: (dirfd: number, path: string, times: Buffer, flags: number) => number;
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** timespec.tv_nsec meaning "leave this time as it is" (linux/stat.h). */
const UTIME_OMIT = (1 << 30) - 2;

// A path goes to C as its bytes (cPath): names that are not UTF-8 too.
const bind = libcBinding<Libc>((self) => {
  const mkfifo = self.func('int mkfifo(const char *path, uint32_t mode)');
  const mknod = self.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  const utimensat = self.func('int utimensat(int dirfd, const char *path, void *times, int flags)');
  return {
    mkfifo: (path, mode) => mkfifo(cPath(path), mode) as number,
    mknod: (path, mode, dev) => mknod(cPath(path), mode, dev) as number,
    utimensat: (dirfd, path, times, flags) => utimensat(dirfd, cPath(path), times, flags) as number,
  };
});

/** mkfifo(path, mode): a named pipe. The umask applies, as for any create. */
export function mkfifo(path: string, mode: number): void {
  if (bind('mkfifo').mkfifo(path, mode & 0o7777) !== 0) throw callError('mkfifo', path);
}

/** mknod(path, mode, rdev): `mode` carries the type bits (S_IFCHR, S_IFBLK, ...). Needs root for devices. */
export function mknod(path: string, mode: number, rdev: bigint): void {
  if (bind('mknod').mknod(path, mode, BigInt.asUintN(64, rdev)) !== 0) throw callError('mknod', path);
}

/** Set the access time of `path` (not following a symlink) to `atimeNs`, leaving its mtime untouched. */
export function setAccessTime(path: string, atimeNs: bigint): void {
  const api = bind('utimensat');
  // A 32-bit long would mean the 32-bit time_t ABI, where these times may not fit: not handled.
  if (longBytes() !== 8) throw Object.assign(new Error('utimensat is only called on 64-bit Linux by agentfd serve'), { code: 'ENOSYS' });
  const second = 1_000_000_000n;
  const nanos = ((atimeNs % second) + second) % second;
  const fields = [(atimeNs - nanos) / second, nanos, 0n, BigInt(UTIME_OMIT)];
  const times = Buffer.alloc(32);
  fields.forEach((value, i) => (endianness() === 'LE' ? times.writeBigInt64LE(value, i * 8) : times.writeBigInt64BE(value, i * 8)));
  if (api.utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) !== 0) throw callError('utimensat', path);
}

/** bacula-fd gives the open of a fifo 60 seconds, backup and restore (start_thread_timer(jcr, ..., 60)). */
export const FIFO_OPEN_TIMEOUT_MS = 60_000;

/**
 * Open the fifo `path` for reading or writing, waiting up to `timeoutMs` for the other end, as
 * bacula-fd does. Node's open blocks a thread-pool thread until a peer comes and cannot be
 * cancelled, so on timeout we unblock it by being the peer for a moment (an O_NONBLOCK open of the
 * other side, which never waits), close both ends, and throw.
 */
export async function openFifo(path: FsPath, mode: 'read' | 'write', timeoutMs = FIFO_OPEN_TIMEOUT_MS): Promise<FileHandle> {
  const opening = open(path, mode === 'read' ? constants.O_RDONLY : constants.O_WRONLY);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), timeoutMs);
  });
  const handle = await Promise.race([opening, timedOut]).finally(() => clearTimeout(timer));
  if (handle) return handle;
  const peerFlags = (mode === 'read' ? constants.O_WRONLY : constants.O_RDONLY) | constants.O_NONBLOCK;
  const peer = await open(path, peerFlags).catch(() => null);
  await (await opening.catch(() => null))?.close();
  await peer?.close();
  const other = mode === 'read' ? 'writer' : 'reader';
  throw Object.assign(new Error(`no ${other} opened the fifo within ${timeoutMs / 1000} s (bacula-fd's limit too); start the ${other} first`), { code: 'ETIMEDOUT' });
}
