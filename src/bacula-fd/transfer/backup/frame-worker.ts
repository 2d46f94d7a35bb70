/**
 * A compression worker of serve's backups (compress-pool.ts runs it): each block it is given is
 * compressed as its record (frame-codec.ts), so a file's blocks are compressed on every core while
 * the main thread reads, digests and sends.
 */
import { parentPort } from 'node:worker_threads';
import { compressBlock, type FrameCodec } from './frame-codec.js';

interface Task {
  id: number;
  data: Uint8Array;
  compression: FrameCodec & { headroom: number };
}

parentPort!.on('message', ({ id, data, compression }: Task) => {
  try {
    const frame = compressBlock(data, compression, compression.headroom);
    // A small result may be a view into Node's shared buffer pool: that is copied, not moved.
    const own = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame : Uint8Array.from(frame);
    parentPort!.postMessage({ id, data: own }, [own.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort!.postMessage({ id, error: (error as Error).message });
  }
});
