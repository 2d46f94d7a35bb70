/**
 * A compression worker: compresses chunks sent by compress-pool.ts. Compression is the one CPU-heavy
 * stage of the pipeline; running it on worker threads lets a large stream use every core while the
 * main thread hashes, encrypts and writes.
 */
import { parentPort } from 'node:worker_threads';
import { CODEC_IDS, packChunk, type Compression } from './codecs.js';

interface Task {
  id: number;
  data: Uint8Array;
  compression: Compression;
}

parentPort!.on('message', (task: Task) => {
  try {
    const { codecId, stored: out } = packChunk(task.data, task.compression);
    if (codecId === CODEC_IDS.none) {
      // Incompressible: hand the input back untouched; the chunk is stored as it is.
      parentPort!.postMessage({ id: task.id, data: task.data, raw: true }, [task.data.buffer as ArrayBuffer]);
      return;
    }
    // Copy into a fresh ArrayBuffer only when the codec returned a view into a shared pool.
    const transferable = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : Uint8Array.from(out);
    parentPort!.postMessage({ id: task.id, data: transferable, raw: false }, [transferable.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort!.postMessage({ id: task.id, error: (error as Error).message });
  }
});
