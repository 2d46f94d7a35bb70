/**
 * Shared memory between agentfd and an agent host: a file in /dev/shm mapped by both processes
 * (mmap through koffi and libc). An isolated agent reads straight into it, and the daemon copies
 * each chunk out once, so a stream crosses the process boundary with one copy instead of the
 * three of a pipe (into the kernel, out of it, and reassembling frames). A pipe tops out near
 * 1.5 GB/s on this kind of machine; an agent reading from the page cache is faster than that.
 *
 * Linux only for now; elsewhere (and if mapping fails) the host sends data over its pipe.
 */
import { closeSync, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import koffi from 'koffi';
import { libcBinding } from '../platform/libc.js';

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

type Mapper = {
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, length: number) => number;
};

const bind = libcBinding<Mapper>((self) => ({
  mmap: self.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as Mapper['mmap'],
  munmap: self.func('int munmap(void *addr, size_t length)') as Mapper['munmap'],
}));

/** mmap and munmap, or null where there is no libc to map with (the host then uses its pipe). */
function libc(): Mapper | null {
  try {
    return bind('mmap');
  } catch {
    return null;
  }
}

export class SharedRegion {
  readonly file: string;
  readonly size: number;
  /** The mapping, as bytes JavaScript can read and agents can write (koffi passes its address). */
  readonly bytes: Uint8Array;
  private pointer: unknown;

  private constructor(file: string, size: number, pointer: unknown) {
    this.file = file;
    this.size = size;
    this.pointer = pointer;
    this.bytes = new Uint8Array(koffi.view(pointer, size));
  }

  private static map(file: string, size: number, create: boolean): SharedRegion | null {
    const c = libc();
    if (!c) return null;
    const fd = openSync(file, create ? 'wx+' : 'r+', 0o600);
    try {
      if (create) ftruncateSync(fd, size);
      const pointer = c.mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (pointer === null || pointer === MAP_FAILED) return null;
      return new SharedRegion(file, size, pointer);
    } finally {
      closeSync(fd); // the mapping stays valid without the descriptor
    }
  }

  /** A new region (the daemon's side), or null where shared memory is not available. */
  static create(size: number): SharedRegion | null {
    if (!libc()) return null;
    try {
      return SharedRegion.map(`/dev/shm/agentfd-${process.pid}-${randomBytes(8).toString('hex')}`, size, true);
    } catch {
      return null;
    }
  }

  /** The host's side: map the region the daemon made. */
  static open(file: string, size: number): SharedRegion | null {
    try {
      return SharedRegion.map(file, size, false);
    } catch {
      return null;
    }
  }

  /** Remove the file (both mappings stay valid until unmapped). */
  unlink(): void {
    try {
      unlinkSync(this.file);
    } catch {
      // already gone
    }
  }

  close(): void {
    if (this.pointer !== null) {
      libc()?.munmap(this.pointer, this.size);
      this.pointer = null;
    }
  }
}
