/**
 * The hashing thread (see stream-hasher.ts): SHA-256 of each stream, fed its chunks in order.
 * Each chunk's buffer is moved here and moved back once hashed (no copies).
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

type Message = { op: 'update'; id: number; stream: number; data: Uint8Array } | { op: 'digest'; id: number; stream: number };

const hashes = new Map<number, Hash>();

parentPort!.on('message', (msg: Message) => {
  let hash = hashes.get(msg.stream);
  if (!hash) hashes.set(msg.stream, (hash = createHash('sha256')));
  if (msg.op === 'update') {
    hash.update(msg.data);
    parentPort!.postMessage({ id: msg.id, data: msg.data }, [msg.data.buffer as ArrayBuffer]);
  } else {
    hashes.delete(msg.stream);
    parentPort!.postMessage({ id: msg.id, hex: hash.digest('hex') });
  }
});
