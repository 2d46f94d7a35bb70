/**
 * C memory for one Bacula plugin session. Bacula plugins keep pointers the host gives them (a
 * command string from an event, the bpContext, a `where` from restore_pkt) well past the call, so
 * nothing handed to a plugin may live in JavaScript memory that moves or is collected, or in
 * koffi's per-call scratch space. Everything is allocated here and freed together when the
 * session ends, after the plugin's freePlugin().
 */
import koffi from 'koffi';

export class NativeArena {
  private readonly blocks: bigint[] = [];

  /** `size` zeroed bytes. */
  alloc(size: number): bigint {
    const pointer = koffi.alloc('uint8_t', Math.max(1, size)) as bigint;
    new Uint8Array(koffi.view(pointer, Math.max(1, size))).fill(0);
    this.blocks.push(pointer);
    return pointer;
  }

  /** A NUL-terminated UTF-8 copy of `text`; null stays NULL. */
  string(text: string | null): bigint | null {
    if (text === null) return null;
    const bytes = Buffer.from(text, 'utf8');
    const pointer = this.alloc(bytes.length + 1);
    new Uint8Array(koffi.view(pointer, bytes.length + 1)).set(bytes);
    return pointer;
  }

  /** Free every block; pointers handed out before are dangling afterwards. */
  freeAll(): void {
    for (const block of this.blocks.splice(0)) koffi.free(block);
  }
}
