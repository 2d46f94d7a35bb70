/**
 * agentfd's one binding of libc (Linux), through koffi: the calls Node does not offer (openat2 and
 * the *at family for confined restores, mmap for shared memory, mkfifo/mknod/utimensat for serve,
 * the ACL and xattr calls). Each user declares the functions it needs with libcBinding(); the
 * library is the process itself (Node links libc), loaded once.
 *
 * Linux only: the widths the users declare (mode_t 32 bits, dev_t 64 bits, timespec of two longs)
 * are Linux's, on glibc and musl alike. Elsewhere a bound call throws an ENOSYS error saying so.
 */
import { getSystemErrorName } from 'node:util';
import koffi, { type LibraryHandle } from 'koffi';
import { IS_LINUX } from './os.js';

let self: LibraryHandle | null = null;

/**
 * A set of libc functions, declared on first use, once per process. Linux only: `what` names the
 * call in the refusal elsewhere.
 */
export function libcBinding<T>(declare: (self: LibraryHandle) => T): (what: string) => T {
  let bound: T | null = null;
  return (what) => {
    if (!IS_LINUX) {
      throw Object.assign(new Error(`${what} is only available on Linux (agentfd calls libc for it); this is ${process.platform}`), { code: 'ENOSYS' });
    }
    self ??= koffi.load(null);
    bound ??= declare(self);
    return bound;
  };
}

/** The failed call as Node reports its own: message with the code and path, `code` to test. */
export function callError(call: string, path: string): NodeJS.ErrnoException {
  const errno = koffi.errno();
  let code: string;
  try {
    code = getSystemErrorName(-errno);
  } catch {
    code = `errno ${errno}`;
  }
  return Object.assign(new Error(`${code}: ${call} failed for '${path}'`), { code, errno: -errno, syscall: call, path });
}

interface Mapper {
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, length: number) => number;
}

const mapper = libcBinding<Mapper>((lib) => ({
  mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as Mapper['mmap'],
  munmap: lib.func('int munmap(void *addr, size_t length)') as Mapper['munmap'],
}));

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

/** A shared mapping: its bytes, readable and writable from JavaScript and by native code given its address. */
export interface SharedMapping {
  readonly bytes: Uint8Array;
  unmap(): void;
}

/** Whether this system can map shared memory here (Linux). */
export function canMapShared(): boolean {
  try {
    mapper('mmap');
    return true;
  } catch {
    return false;
  }
}

/** mmap(MAP_SHARED, read and write) of `size` bytes of the open file `fd`, or null when it fails. */
export function mapShared(fd: number, size: number): SharedMapping | null {
  const api = mapper('mmap');
  const pointer = api.mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (pointer === null || koffi.address(pointer) === MAP_FAILED) return null;
  let mapped = true;
  return {
    bytes: new Uint8Array(koffi.view(pointer, size)),
    unmap() {
      if (mapped) api.munmap(pointer, size);
      mapped = false;
    },
  };
}

// ---- holes of sparse files ---------------------------------------------------------------------

const seeker = libcBinding<{ lseek: (fd: number, offset: bigint, whence: number) => bigint | number }>((lib) => ({
  lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as (fd: number, offset: bigint, whence: number) => bigint | number,
}));

const SEEK_DATA = 3;
const ENXIO = 6;

/**
 * lseek(SEEK_DATA): the first offset at or after `offset` of the open file `fd` that holds data,
 * or null when only a hole follows (ENXIO). A file system that keeps no holes reports all of a
 * file as data. Throws (ENOSYS off Linux, EINVAL where the kernel has no SEEK_DATA) when it cannot
 * tell. Moves the descriptor's position, which positional reads do not use.
 */
export function nextData(fd: number, offset: bigint): bigint | null {
  const at = BigInt(seeker('SEEK_DATA').lseek(fd, offset, SEEK_DATA));
  if (at >= 0n) return at;
  if (koffi.errno() === ENXIO) return null;
  throw callError('lseek(SEEK_DATA)', `descriptor ${fd}`);
}

// ---- user and group names -----------------------------------------------------------------------

interface Nss {
  getpwuid_r: (uid: number, out: Record<string, unknown>, buffer: Buffer, size: number, result: [unknown]) => number;
  getpwnam_r: (name: string, out: Record<string, unknown>, buffer: Buffer, size: number, result: [unknown]) => number;
  getgrgid_r: (gid: number, out: Record<string, unknown>, buffer: Buffer, size: number, result: [unknown]) => number;
  getgrnam_r: (name: string, out: Record<string, unknown>, buffer: Buffer, size: number, result: [unknown]) => number;
}

/** libc's reentrant passwd and group look-ups (what libacl and ls call). */
const bindNss = libcBinding<Nss>((self) => {
  // struct passwd and struct group as glibc and musl lay them out (uid_t and gid_t are 32 bits);
  // unnamed, so that loading this module twice in a process declares no type twice.
  const passwd = koffi.out(koffi.pointer(koffi.struct({ pw_name: 'char *', pw_passwd: 'char *', pw_uid: 'uint32_t', pw_gid: 'uint32_t', pw_gecos: 'char *', pw_dir: 'char *', pw_shell: 'char *' })));
  const group = koffi.out(koffi.pointer(koffi.struct({ gr_name: 'char *', gr_passwd: 'char *', gr_gid: 'uint32_t', gr_mem: 'void *' })));
  const found = koffi.out(koffi.pointer('void *'));
  return {
    getpwuid_r: self.func('getpwuid_r', 'int', ['uint32_t', passwd, 'void *', 'size_t', found]) as Nss['getpwuid_r'],
    getpwnam_r: self.func('getpwnam_r', 'int', ['const char *', passwd, 'void *', 'size_t', found]) as Nss['getpwnam_r'],
    getgrgid_r: self.func('getgrgid_r', 'int', ['uint32_t', group, 'void *', 'size_t', found]) as Nss['getgrgid_r'],
    getgrnam_r: self.func('getgrnam_r', 'int', ['const char *', group, 'void *', 'size_t', found]) as Nss['getgrnam_r'],
  };
});

const ERANGE = 34;
/** Where a look-up whose record does not fit stops growing its buffer (libacl grows without end). */
const MAX_NSS_BUFFER = 1 << 20;

/** One getXXX_r call: the record found, or null (none, or the look-up failed: libacl then uses the number). */
function lookUp(call: (out: Record<string, unknown>, buffer: Buffer, size: number, result: [unknown]) => number): Record<string, unknown> | null {
  for (let size = 16 * 1024; size <= MAX_NSS_BUFFER; size *= 2) {
    const out: Record<string, unknown> = {};
    const result: [unknown] = [null];
    const buffer = Buffer.alloc(size);
    const rc = call(out, buffer, size, result);
    if (rc === ERANGE) continue;
    return rc === 0 && result[0] !== null ? out : null;
  }
  return null;
}

const NAMES = 'user and group names';
/** The name of user `uid` as the system's NSS sources (files, LDAP, ...) give it, or null. */
export const userNameOf = (uid: number): string | null => (lookUp((o, b, s, r) => bindNss(NAMES).getpwuid_r(uid, o, b, s, r))?.pw_name as string | undefined) ?? null;
/** The name of group `gid`, or null. */
export const groupNameOf = (gid: number): string | null => (lookUp((o, b, s, r) => bindNss(NAMES).getgrgid_r(gid, o, b, s, r))?.gr_name as string | undefined) ?? null;
/** The uid of the user `name`, or null. */
export const userIdOf = (name: string): number | null => (lookUp((o, b, s, r) => bindNss(NAMES).getpwnam_r(name, o, b, s, r))?.pw_uid as number | undefined) ?? null;
/** The gid of the group `name`, or null. */
export const groupIdOf = (name: string): number | null => (lookUp((o, b, s, r) => bindNss(NAMES).getgrnam_r(name, o, b, s, r))?.gr_gid as number | undefined) ?? null;

/** errno of the last libc call made through a binding here (koffi keeps it across its own work). */
export function lastErrno(): number {
  return koffi.errno();
}

/** The size of a C long here, in bytes (8 on the 64-bit Linux agentfd runs on). */
export function longBytes(): number {
  return koffi.sizeof('long');
}
