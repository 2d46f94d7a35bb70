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
