/**
 * agentfd's key files. One identity is two key pairs: X25519 to receive the per-job data keys
 * (whoever holds only the public half can back up but not restore) and Ed25519 to sign each job's
 * manifest of digests. Both halves are stored as standard PEM blocks (PKCS#8 / SPKI), so openssl and
 * any other tool can read them:
 *
 *   NAME.key  (mode 0600)  both private keys: restore and signing
 *   NAME.pub               both public keys: give this to the machines that back up
 *
 * All primitives are node:crypto's (OpenSSL); nothing here is home-made.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentfdError } from '../errors.js';
import { IS_WINDOWS } from '../platform/os.js';

/** An identity's two keys (public or private halves, as loaded), either of which a file may lack. */
export interface Identity {
  file: string;
  encryption: KeyObject | null; // x25519
  signing: KeyObject | null; // ed25519
}
export type PublicIdentity = Identity;
export type PrivateIdentity = Identity;

/** The raw 32 bytes of an X25519 or Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new AgentfdError('E_KEY', 'not an X25519 or Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

/** Public key from its raw 32 bytes. */
export function publicKeyFromRaw(type: 'x25519' | 'ed25519', raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: type === 'x25519' ? 'X25519' : 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/** A short, stable name for a public key: the first 16 bytes of SHA-256 of its raw form, in hex. */
export function fingerprint(key: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, 32);
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g;

function readPemBlocks(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AgentfdError('E_KEY', `cannot read the key file ${file} (${(error as NodeJS.ErrnoException).code}); make one with: agentfd keys generate`, { cause: error });
  }
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new AgentfdError('E_KEY', `${file} holds no PEM key; make one with: agentfd keys generate`);
  return blocks;
}

function sortKeys<T extends { asymmetricKeyType?: string | undefined }>(file: string, keys: T[]): { encryption: T | null; signing: T | null } {
  let encryption: T | null = null;
  let signing: T | null = null;
  for (const key of keys) {
    if (key.asymmetricKeyType === 'x25519') encryption = key;
    else if (key.asymmetricKeyType === 'ed25519') signing = key;
    else throw new AgentfdError('E_KEY', `${file}: a ${key.asymmetricKeyType} key; agentfd uses X25519 and Ed25519 keys (agentfd keys generate)`);
  }
  return { encryption, signing };
}

function loadIdentity(file: string, half: 'public' | 'private'): Identity {
  const parse = half === 'public' ? createPublicKey : createPrivateKey;
  const keys = readPemBlocks(file).map((pem) => {
    try {
      return parse(pem);
    } catch (error) {
      throw new AgentfdError('E_KEY', `${file}: not a ${half} key (${(error as Error).message}); pass the .${half === 'public' ? 'pub' : 'key'} file here`, { cause: error });
    }
  });
  return { file, ...sortKeys(file, keys) };
}

export function loadPublicIdentity(file: string): PublicIdentity {
  return loadIdentity(file, 'public');
}

/**
 * Refuse a private key file that others may read, as ssh does: a key that leaked to other local
 * users signs and opens backups for them. Windows is skipped: access there is ACLs, which the
 * POSIX mode bits Node reports do not describe.
 */
export function checkPrivateKeyMode(file: string): void {
  if (IS_WINDOWS) return;
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return; // reading it reports what is wrong with it
  }
  if ((mode & 0o077) !== 0) {
    const octal = mode.toString(8).padStart(4, '0');
    throw new AgentfdError(
      'E_KEY_PERMISSIONS',
      `the private key file ${file} has mode ${octal}: it is readable or writable by other users, so agentfd refuses to use it. Make it private with: chmod 600 ${file}`,
    );
  }
}

export function loadPrivateIdentity(file: string): PrivateIdentity {
  checkPrivateKeyMode(file);
  return loadIdentity(file, 'private');
}

export interface GeneratedKeys {
  privateFile: string;
  publicFile: string;
  encryptionFingerprint: string;
  signingFingerprint: string;
}

/** Write NAME.key and NAME.pub into `dir`; refuses to overwrite existing files. */
export function generateKeyFiles(dir: string, name: string): GeneratedKeys {
  const privateFile = path.join(dir, `${name}.key`);
  const publicFile = path.join(dir, `${name}.pub`);
  for (const file of [privateFile, publicFile]) {
    if (existsSync(file)) throw new AgentfdError('E_KEY', `${file} exists already; agentfd never overwrites a key (data encrypted to it would be lost). Choose another --name or folder.`);
  }
  const enc = generateKeyPairSync('x25519');
  const sig = generateKeyPairSync('ed25519');
  const privatePem = [enc.privateKey, sig.privateKey].map((k) => k.export({ type: 'pkcs8', format: 'pem' }).toString()).join('');
  const publicPem = [enc.publicKey, sig.publicKey].map((k) => k.export({ type: 'spki', format: 'pem' }).toString()).join('');
  writeFileSync(privateFile, `# agentfd private keys: X25519 (restore) and Ed25519 (signing). Keep secret.\n${privatePem}`, { mode: 0o600, flag: 'wx' });
  writeFileSync(publicFile, `# agentfd public keys: X25519 (encrypt to) and Ed25519 (verify signatures).\n${publicPem}`, { mode: 0o644, flag: 'wx' });
  return { privateFile, publicFile, encryptionFingerprint: fingerprint(enc.publicKey), signingFingerprint: fingerprint(sig.publicKey) };
}
