/**
 * The hashing thread on its own: digests equal node:crypto's over the same bytes, streams hashed
 * side by side stay apart, a chunk that owns its buffer travels without a copy, and a chunk that
 * shares its buffer (Node's small-Buffer pool) comes back whole without emptying its neighbours.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { StreamHasher } from '../../src/pipeline/stream-hasher.js';

const hasher = new StreamHasher();
afterAll(() => hasher.close());

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

describe('stream hasher', () => {
  it('hashes interleaved streams apart, each as node:crypto does', async () => {
    const a = [randomBytes(1000), randomBytes(300_000)];
    const b = [randomBytes(5), randomBytes(70_000), randomBytes(1)];
    const sa = hasher.begin();
    const sb = hasher.begin();
    await Promise.all([hasher.update(sa, Uint8Array.from(a[0]!)), hasher.update(sb, Uint8Array.from(b[0]!)), hasher.update(sb, Uint8Array.from(b[1]!))]);
    await hasher.update(sa, Uint8Array.from(a[1]!));
    await hasher.update(sb, Uint8Array.from(b[2]!));
    expect(await hasher.digest(sa)).toBe(sha256(...a));
    expect(await hasher.digest(sb)).toBe(sha256(...b));
  });

  it('gives back the same bytes, moving an owned buffer and leaving a shared one\'s neighbours whole', async () => {
    const s = hasher.begin();
    const owned = Uint8Array.from(randomBytes(64 * 1024));
    const copy = Buffer.from(owned);
    const back = await (async () => {
      const pending = hasher.update(s, owned);
      expect(owned.byteLength).toBe(0); // moved to the thread
      return pending;
    })();
    expect(back.equals(copy)).toBe(true);
    const neighbour = Buffer.from('a neighbour in the same pool');
    const small = Buffer.from('a small chunk'); // both views of Node's shared pool
    expect(small.buffer).toBe(neighbour.buffer);
    const again = await hasher.update(s, small);
    expect(small.toString()).toBe('a small chunk');
    expect(neighbour.toString()).toBe('a neighbour in the same pool');
    expect(again.toString()).toBe('a small chunk');
    expect(await hasher.digest(s)).toBe(sha256(copy, small));
  });
});
