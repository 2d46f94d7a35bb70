/**
 * AES-256-GCM for record payloads. Each sealed payload is nonce (12 random bytes) || ciphertext ||
 * tag (16). The additional data binds the payload to where it stands: the record header (type,
 * codec, job, sequence number) and the job's UUID, so a record cannot be moved, swapped, replayed
 * into another job, or have its codec relabelled without the tag check failing.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AgentfdError } from '../errors.js';

export const CIPHER_IDS = { none: 0, 'aes-256-gcm': 1 } as const;
export type CipherName = keyof typeof CIPHER_IDS;
export const SEAL_OVERHEAD = 28;

export function seal(key: Buffer, aad: Uint8Array, plaintext: Uint8Array): Buffer {
  return Buffer.concat(sealParts(key, aad, plaintext));
}

/** seal(), as its three parts (nonce, ciphertext, tag): a writer can write them without joining them. */
export function sealParts(key: Buffer, aad: Uint8Array, plaintext: Uint8Array): Buffer[] {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  cipher.final();
  return [nonce, body, cipher.getAuthTag()];
}

/** Open a sealed payload; E_AUTH when it was altered, moved, or sealed under another key. */
export function open(key: Buffer, aad: Uint8Array, sealed: Uint8Array, what: string): Buffer {
  if (sealed.length < SEAL_OVERHEAD) {
    throw new AgentfdError('E_AUTH', `${what}: the encrypted payload is ${sealed.length} bytes, too short to be sealed`);
  }
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, 12));
  decipher.setAAD(aad);
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  const body = decipher.update(bytes.subarray(12, bytes.length - 16));
  try {
    decipher.final();
  } catch {
    throw new AgentfdError('E_AUTH', `${what}: authentication failed: the record was altered, moved, or belongs to another job`);
  }
  return body;
}
