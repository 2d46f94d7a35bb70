/**
 * A regular file's blocks, read ahead of the sender: bacula-fd reads one block per read(2) and
 * sends it before it reads the next; here each preadv(2) fills up to BLOCKS_PER_READ blocks (each
 * in its own frame of one buffer per read, so a read goes to the socket, or is moved to a worker
 * thread and back, without a copy), and up to READS_AHEAD such reads are under way while the
 * blocks before them are sent.
 * The blocks are the ones bacula-fd reads: the same size, back to back from offset 0, a short read
 * going on from where it ended. The end: a read of 0 bytes, as bacula-fd, or a short read that
 * reaches the size lstat gave (a regular file reads short only at its end, so the read of 0 bytes
 * that bacula-fd makes next would say the same, one system call later: a file's whole cost when it
 * is small).
 *
 * Only for regular files: a fifo or raw device is read one block at a time where it stands
 * (file-data.ts), since its reads are neither repeatable nor positional.
 */
import type { FileHandle } from 'node:fs/promises';

/** Blocks per read: 16 frames of 64 KiB, a megabyte per system call. */
export const BLOCKS_PER_READ = 16;
/** Reads under way at once (libuv's pool has four threads). */
const READS_AHEAD = 3;

export interface Block {
  /** The block's file offset. */
  at: bigint;
  /** The frame buffer: the block's bytes start at `start` (room for a sparse offset before them). */
  buffer: Buffer;
  /** The bytes read: buffer[start, start + length). */
  length: number;
}

/**
 * One read's blocks: each block's frame buffer is a view of `buffer`, which owns its whole
 * ArrayBuffer (so it can be moved to a worker thread), block i at i * (start + block).
 */
export interface Batch {
  buffer: Buffer;
  blocks: Block[];
}

export interface BlockLayout {
  /** Bytes left free at the start of each frame buffer (a sparse frame's offset). */
  start: number;
  /** Bytes read per block (a whole block; fewer only at the end). */
  block: number;
  /** The size lstat gave: reads ahead stop there. */
  size: bigint;
  /**
   * Where to start the read at or after `at` (a whole number of blocks later): the holes of a
   * sparse file are skipped this way instead of being read (file-data.ts decides which may be).
   */
  skipTo?: (at: bigint) => bigint;
}

interface Read {
  at: bigint;
  buffer: Buffer;
  buffers: Buffer[];
  done: Promise<number>;
}

/** Every block of the file at `handle`, in order, read ahead. The caller must not keep reading after it stops. */
export async function* readBlocks(handle: FileHandle, layout: BlockLayout): AsyncGenerator<Block> {
  for await (const batch of readBatches(handle, layout)) yield* batch.blocks;
}

/** The same blocks a read at a time (a Batch per preadv). */
export async function* readBatches(handle: FileHandle, layout: BlockLayout): AsyncGenerator<Batch> {
  const { start, block, size } = layout;
  const reads: Read[] = [];
  let next = 0n;
  const issue = () => {
    const at = layout.skipTo ? layout.skipTo(next) : next;
    const count = at < size ? Math.min(BLOCKS_PER_READ, Number((size - at + BigInt(block) - 1n) / BigInt(block))) : 1;
    // Its own ArrayBuffer (not Node's pool), handed on: not reused.
    const buffer = Buffer.allocUnsafeSlow(count * (start + block));
    const buffers = Array.from({ length: count }, (_, i) => buffer.subarray(i * (start + block), (i + 1) * (start + block)));
    reads.push({ at, buffer, buffers, done: handle.readv(buffers.map((b) => b.subarray(start)), Number(at)).then((r) => r.bytesRead) });
    next = at + BigInt(count * block);
  };
  try {
    for (;;) {
      while (reads.length === 0 || (reads.length < READS_AHEAD && next < size)) issue();
      const read = reads.shift()!;
      const bytes = await read.done;
      if (bytes === 0) return;
      const blocks: Block[] = [];
      for (let i = 0, left = bytes; left > 0; i++, left -= block) {
        blocks.push({ at: read.at + BigInt(i * block), buffer: read.buffers[i]!, length: Math.min(block, left) });
      }
      yield { buffer: read.buffer, blocks };
      if (bytes < read.buffers.length * block) {
        const end = read.at + BigInt(bytes);
        if (end >= size) return;
        // Short before the size lstat gave (the file was cut while read, or a file system that
        // reads short): what was read ahead is dropped and reading goes on from here, as bacula-fd's next read(2).
        await settle(reads.splice(0));
        next = end;
      }
    }
  } finally {
    await settle(reads);
  }
}

/** Waits for reads under way (their errors do not matter any more), so the handle may be closed. */
async function settle(reads: Read[]): Promise<void> {
  await Promise.all(reads.map((r) => r.done.catch(() => 0)));
}
