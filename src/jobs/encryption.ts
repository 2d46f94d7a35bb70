/** A job's encryption and signing, from its configuration: data key, key stanzas, signer. */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { newDataKey, wrapForPassphrase, wrapForRecipient, type KeyStanza } from '../crypto/envelope.js';
import { fingerprint, loadPrivateIdentity, loadPublicIdentity, rawPublicKey } from '../crypto/keys.js';
import { AgentfdError } from '../errors.js';
import type { JobConfig } from '../config/schema.js';

export interface JobCrypto {
  key: Buffer | null;
  stanzas: KeyStanza[];
  signer: KeyObject | null;
  signerInfo: { publicKey: string; fingerprint: string } | null;
}

export function readPassphrase(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AgentfdError('E_KEY', `cannot read the passphrase file ${file} (${(error as NodeJS.ErrnoException).code})`, { cause: error });
  }
  const passphrase = text.split(/\r?\n/)[0] ?? '';
  if (passphrase.length === 0) throw new AgentfdError('E_KEY', `the passphrase file ${file} is empty; put the passphrase on its first line`);
  return passphrase;
}

export function jobCrypto(job: JobConfig): JobCrypto {
  let signer: KeyObject | null = null;
  if (job.sign_with) {
    signer = loadPrivateIdentity(job.sign_with).signing;
    if (!signer) throw new AgentfdError('E_KEY', `${job.sign_with} holds no Ed25519 signing key; make one with agentfd keys generate`);
  }
  const signerInfo = signer
    ? (() => {
        const pub = createPublicKey(signer);
        return { publicKey: rawPublicKey(pub).toString('base64'), fingerprint: fingerprint(pub) };
      })()
    : null;
  const recipients = job.encrypt_to.map((file) => {
    const identity = loadPublicIdentity(file);
    if (!identity.encryption) throw new AgentfdError('E_KEY', `${file} holds no X25519 public key to encrypt to; pass the .pub file of agentfd keys generate`);
    return identity.encryption;
  });
  if (recipients.length === 0 && !job.passphrase_file) return { key: null, stanzas: [], signer, signerInfo };
  const key = newDataKey();
  const stanzas = recipients.map((r) => wrapForRecipient(key, r));
  if (job.passphrase_file) stanzas.push(wrapForPassphrase(key, readPassphrase(job.passphrase_file)));
  return { key, stanzas, signer, signerInfo };
}
