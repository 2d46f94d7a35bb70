/**
 * The record seal (AES-256-GCM) on its own: what is sealed opens only with its key and only where
 * it was sealed (its additional data: the record header and the job), and any altered byte of
 * nonce, body or tag is refused with E_AUTH, never returned as data.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { open, seal, sealParts, SEAL_OVERHEAD } from '../../src/crypto/aead.js';

const key = randomBytes(32);
const aad = Buffer.from('record header 7 of job 42');
const plain = randomBytes(1000);

describe('record seal', () => {
  it('opens what it sealed, in one piece or in parts, and adds exactly its overhead', () => {
    const sealed = seal(key, aad, plain);
    expect(sealed.length).toBe(plain.length + SEAL_OVERHEAD);
    expect(open(key, aad, sealed, 'record').equals(plain)).toBe(true);
    expect(open(key, aad, Buffer.concat(sealParts(key, aad, plain)), 'record').equals(plain)).toBe(true);
    expect(open(key, aad, seal(key, aad, Buffer.alloc(0)), 'record').length).toBe(0);
  });

  it('refuses every single altered byte (nonce, body, tag) with E_AUTH', () => {
    const sealed = seal(key, aad, plain.subarray(0, 40));
    for (let i = 0; i < sealed.length; i++) {
      const altered = Buffer.from(sealed);
      altered[i]! ^= 0x01;
      expect(() => open(key, aad, altered, 'record 7'), `byte ${i}`).toThrow(expect.objectContaining({ code: 'E_AUTH', message: expect.stringContaining('record 7: authentication failed') }));
    }
  });

  it('refuses a payload moved to another record or job (other additional data), and another key', () => {
    const sealed = seal(key, aad, plain);
    expect(() => open(key, Buffer.from('record header 8 of job 42'), sealed, 'r')).toThrow(expect.objectContaining({ code: 'E_AUTH' }));
    expect(() => open(randomBytes(32), aad, sealed, 'r')).toThrow(expect.objectContaining({ code: 'E_AUTH' }));
  });

  it('refuses a payload too short to be sealed before trying to open it', () => {
    expect(() => open(key, aad, Buffer.alloc(SEAL_OVERHEAD - 1), 'record 3')).toThrow(
      expect.objectContaining({ code: 'E_AUTH', message: 'record 3: the encrypted payload is 27 bytes, too short to be sealed' }),
    );
  });
});
