/**
 * Shared memory between agentfd and an agent host: a file in /dev/shm mapped by both processes
 * (mmap through src/platform/libc.ts). An isolated agent reads straight into it, and the daemon copies
 * each chunk out once, so a stream crosses the process boundary with one copy instead of the
 * three of a pipe (into the kernel, out of it, and reassembling frames). A pipe tops out near
 * 1.5 GB/s on this kind of machine; an agent reading from the page cache is faster than that.
 *
 * Linux only for now; elsewhere (and if mapping fails) the host sends data over its pipe.
 */
import { closeSync, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { canMapShared, mapShared, type SharedMapping } from '../platform/libc.js';

export class SharedRegion {
  readonly file: string;
  readonly size: number;
  /** The mapping, as bytes JavaScript can read and agents can write (koffi passes its address). */
  readonly bytes: Uint8Array;

  private constructor(
    file: string,
    size: number,
    private readonly mapping: SharedMapping,
  ) {
    this.file = file;
    this.size = size;
    this.bytes = mapping.bytes;
  }

  private static map(file: string, size: number, create: boolean): SharedRegion | null {
    if (!canMapShared()) return null;
    const fd = openSync(file, create ? 'wx+' : 'r+', 0o600);
    try {
      if (create) ftruncateSync(fd, size);
      const mapping = mapShared(fd, size);
      return mapping === null ? null : new SharedRegion(file, size, mapping);
    } finally {
      closeSync(fd); // the mapping stays valid without the descriptor
    }
  }

  /** A new region (the daemon's side), or null where shared memory is not available. */
  static create(size: number): SharedRegion | null {
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
    this.mapping.unmap();
  }
}
