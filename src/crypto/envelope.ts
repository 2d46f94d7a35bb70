/**
 * The per-job data key and its wrappings ("key stanzas", as in age). Each job gets a fresh random
 * 256-bit data key; it is stored only wrapped:
 *
 * - for an X25519 recipient: an ephemeral X25519 key pair, ECDH with the recipient's public key,
 *   HKDF-SHA256 over the shared secret (salted with both public keys) gives the key that seals the
 *   data key with AES-256-GCM;
 * - for a passphrase: scrypt (N=2^15, r=8, p=1 by default, recorded in the stanza) gives that key.
 *
 * Opening tries every stanza the caller has a secret for; a wrong key fails the GCM tag check and
 * is reported as such, with the fingerprints the job was encrypted for.
 */
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, scryptSync, type KeyObject } from 'node:crypto';
import { AgentfdError } from '../errors.js';
import { fingerprint, publicKeyFromRaw, rawPublicKey } from './keys.js';

export type KeyStanza =
  | { type: 'x25519'; recipient: string; ephemeral: string; nonce: string; sealed: string }
  | { type: 'scrypt'; salt: string; n: number; r: number; p: number; nonce: string; sealed: string };

const WRAP_AAD = Buffer.from('agentfd data key v1');
const SCRYPT_DEFAULTS = { n: 1 << 15, r: 8, p: 1 };

function seal(kek: Buffer, dataKey: Buffer): { nonce: string; sealed: string } {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(WRAP_AAD);
  const sealed = Buffer.concat([cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
  return { nonce: nonce.toString('base64'), sealed: sealed.toString('base64') };
}

/** The data key, or null when `kek` is not the key that sealed it. */
function unseal(kek: Buffer, nonce: string, sealed: string): Buffer | null {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length !== 48) return null;
  const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(nonce, 'base64'));
  decipher.setAAD(WRAP_AAD);
  decipher.setAuthTag(bytes.subarray(32));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(0, 32)), decipher.final()]);
  } catch {
    return null;
  }
}

function x25519Kek(shared: Buffer, ephemeralRaw: Buffer, recipientRaw: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeralRaw, recipientRaw]), 'agentfd x25519 wrap v1', 32));
}

function scryptKek(passphrase: string, salt: Buffer, n: number, r: number, p: number): Buffer {
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 });
}

export function newDataKey(): Buffer {
  return randomBytes(32);
}

export function wrapForRecipient(dataKey: Buffer, recipient: KeyObject): KeyStanza {
  const ephemeral = generateKeyPairSync('x25519');
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient });
  const ephemeralRaw = rawPublicKey(ephemeral.publicKey);
  const kek = x25519Kek(shared, ephemeralRaw, rawPublicKey(recipient));
  return { type: 'x25519', recipient: fingerprint(recipient), ephemeral: ephemeralRaw.toString('base64'), ...seal(kek, dataKey) };
}

export function wrapForPassphrase(dataKey: Buffer, passphrase: string, params = SCRYPT_DEFAULTS): KeyStanza {
  const salt = randomBytes(16);
  const kek = scryptKek(passphrase, salt, params.n, params.r, params.p);
  return { type: 'scrypt', salt: salt.toString('base64'), ...params, ...seal(kek, dataKey) };
}

export interface UnwrapSecrets {
  /** X25519 private keys, with the file each came from for messages. */
  keys?: { key: KeyObject; file: string }[];
  passphrase?: string;
}

/** Open the data key from `stanzas` with whatever secret fits, or throw E_WRONG_KEY. */
export function unwrapDataKey(stanzas: KeyStanza[], secrets: UnwrapSecrets, what: string): Buffer {
  for (const stanza of stanzas) {
    if (stanza.type === 'x25519') {
      for (const { key } of secrets.keys ?? []) {
        const publicKey = createPublicKey(key);
        if (fingerprint(publicKey) !== stanza.recipient) continue;
        const ephemeralRaw = Buffer.from(stanza.ephemeral, 'base64');
        const shared = diffieHellman({ privateKey: key, publicKey: publicKeyFromRaw('x25519', ephemeralRaw) });
        const opened = unseal(x25519Kek(shared, ephemeralRaw, rawPublicKey(publicKey)), stanza.nonce, stanza.sealed);
        if (opened) return opened;
      }
    } else if (stanza.type === 'scrypt' && secrets.passphrase !== undefined) {
      if (stanza.n > 1 << 22 || stanza.r > 32 || stanza.p > 16) continue; // refuse a stanza built to exhaust memory
      const kek = scryptKek(secrets.passphrase, Buffer.from(stanza.salt, 'base64'), stanza.n, stanza.r, stanza.p);
      const opened = unseal(kek, stanza.nonce, stanza.sealed);
      if (opened) return opened;
    }
  }
  const recipients = stanzas.filter((s) => s.type === 'x25519').map((s) => (s as { recipient: string }).recipient);
  const offered = (secrets.keys ?? []).map(({ key, file }) => `${file} (${fingerprint(createPublicKey(key))})`);
  const hasPassphrase = stanzas.some((s) => s.type === 'scrypt');
  const parts = [
    `${what} is encrypted`,
    recipients.length > 0 ? `for the key${recipients.length > 1 ? 's' : ''} ${recipients.join(', ')}` : '',
    hasPassphrase ? `${recipients.length > 0 ? 'and ' : ''}with a passphrase` : '',
  ].filter(Boolean);
  const tried = offered.length > 0 || secrets.passphrase !== undefined
    ? `; ${[offered.length > 0 ? `the key ${offered.join(', ')}` : '', secrets.passphrase !== undefined ? 'the passphrase given' : ''].filter(Boolean).join(' and ')} does not open it`
    : '; no key or passphrase was given';
  throw new AgentfdError('E_WRONG_KEY', `${parts.join(' ')}${tried}. Pass the matching private key with --key (or the passphrase with --passphrase-file).`);
}
