/**
 * A compression worker of serve's backups (compress-pool.ts runs it): it is given one read's
 * buffer and the blocks in it to compress, and answers with their records (frame-codec.ts), so a
 * file's blocks are compressed on every core while the main thread reads and sends; one message
 * each way per read (a megabyte), not per block, since a message costs about what a block's LZO does.
 */
import { parentPort } from 'node:worker_threads';
import { compressBlocks, type FrameCodec } from './frame-codec.js';

interface Task {
  id: number;
  data: Uint8Array;
  /** The blocks of `data` to compress: offset, length, offset, length, ... */
  parts: number[];
  codec: FrameCodec;
  headroom: number;
}

parentPort!.on('message', ({ id, data, parts, codec, headroom }: Task) => {
  try {
    // A record that is a view into a larger buffer (Node's pool, a shared output) is copied, not moved.
    const records = compressBlocks(data, parts, codec, headroom).map((r) => (r.byteOffset === 0 && r.byteLength === r.buffer.byteLength ? r : Uint8Array.from(r)));
    parentPort!.postMessage({ id, records }, records.map((r) => r.buffer as ArrayBuffer));
  } catch (error) {
    parentPort!.postMessage({ id, error: (error as Error).message });
  }
});
