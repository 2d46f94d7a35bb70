/**
 * The digest thread of serve's backups (digest-thread.ts runs it): the digest `signature =` names
 * of a large file, fed one read at a time in file order, while the main thread sends. One file at
 * a time: a message for another file starts that file's digest (a file given up midway is dropped).
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

interface Task {
  id: number;
  file: number;
  algorithm: string;
  /** A read's buffer, moved here and sent back. */
  data?: Uint8Array;
  /** The parts of `data` to digest, in order: offset, length, offset, length, ... */
  parts?: number[];
  /** The file's data is all given: answer its digest. */
  end?: boolean;
}

let current: { file: number; hash: Hash } | null = null;

parentPort!.on('message', ({ id, file, algorithm, data, parts, end }: Task) => {
  try {
    if (current?.file !== file) current = { file, hash: createHash(algorithm) };
    if (end) {
      const digest = current.hash.digest();
      current = null;
      parentPort!.postMessage({ id, data: digest });
      return;
    }
    for (let i = 0; i < parts!.length; i += 2) current.hash.update(data!.subarray(parts![i]!, parts![i]! + parts![i + 1]!));
    parentPort!.postMessage({ id, data }, [data!.buffer as ArrayBuffer]);
  } catch (error) {
    current = null;
    parentPort!.postMessage({ id, error: (error as Error).message });
  }
});
