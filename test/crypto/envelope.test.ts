/**
 * The job data key's envelope (key stanzas) on its own, with real X25519 keys and scrypt: the key
 * opens with the recipient's private key or the passphrase; a wrong key or passphrase is refused
 * with E_WRONG_KEY, naming what the job was encrypted for and what was tried; a tampered stanza
 * never yields a key; and a stanza built to exhaust memory is not run.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newDataKey, unwrapDataKey, wrapForPassphrase, wrapForRecipient, type KeyStanza } from '../../src/crypto/envelope.js';
import { fingerprint } from '../../src/crypto/keys.js';

/** Cheap scrypt for tests; the stanza records its parameters, so opening uses the same. */
const FAST = { n: 1 << 10, r: 8, p: 1 };

describe('data key envelope', () => {
  it('opens the data key with the private key of any recipient, or with the passphrase', () => {
    const alice = generateKeyPairSync('x25519');
    const bob = generateKeyPairSync('x25519');
    const dataKey = newDataKey();
    const stanzas = [wrapForRecipient(dataKey, alice.publicKey), wrapForRecipient(dataKey, bob.publicKey), wrapForPassphrase(dataKey, 'correct horse', FAST)];
    expect(stanzas.map((s) => s.type)).toEqual(['x25519', 'x25519', 'scrypt']);
    expect(unwrapDataKey(stanzas, { keys: [{ key: bob.privateKey, file: 'bob.key' }] }, 'job 1').equals(dataKey)).toBe(true);
    expect(unwrapDataKey(stanzas, { keys: [{ key: alice.privateKey, file: 'alice.key' }] }, 'job 1').equals(dataKey)).toBe(true);
    expect(unwrapDataKey(stanzas, { passphrase: 'correct horse' }, 'job 1').equals(dataKey)).toBe(true);
    // The passphrase is compared as Unicode NFC: "é" typed precomposed or decomposed opens alike.
    const accented = [wrapForPassphrase(dataKey, 'caf\u00e9', FAST)];
    expect(unwrapDataKey(accented, { passphrase: 'cafe\u0301' }, 'job 1').equals(dataKey)).toBe(true);
  });

  it('refuses a wrong key with E_WRONG_KEY, naming the recipients and the key tried', () => {
    const alice = generateKeyPairSync('x25519');
    const mallory = generateKeyPairSync('x25519');
    const stanzas = [wrapForRecipient(newDataKey(), alice.publicKey)];
    const refused = () => unwrapDataKey(stanzas, { keys: [{ key: mallory.privateKey, file: 'mallory.key' }] }, 'job 9');
    expect(refused).toThrow(expect.objectContaining({ code: 'E_WRONG_KEY' }));
    expect(refused).toThrow(
      `job 9 is encrypted for the key ${fingerprint(alice.publicKey)}; the key mallory.key (${fingerprint(mallory.publicKey)}) does not open it. Pass the matching private key with --key (or the passphrase with --passphrase-file).`,
    );
    expect(() => unwrapDataKey([wrapForPassphrase(newDataKey(), 'right', FAST)], { passphrase: 'wrong' }, 'job 9')).toThrow(
      'job 9 is encrypted with a passphrase; the passphrase given does not open it',
    );
    expect(() => unwrapDataKey(stanzas, {}, 'job 9')).toThrow(expect.objectContaining({ code: 'E_WRONG_KEY', message: expect.stringContaining('no key or passphrase was given') }));
  });

  it('never yields a key from a tampered stanza: the sealed key, its nonce or the ephemeral key altered', () => {
    const alice = generateKeyPairSync('x25519');
    const dataKey = newDataKey();
    const good = wrapForRecipient(dataKey, alice.publicKey) as Extract<KeyStanza, { type: 'x25519' }>;
    const flip = (b64: string) => {
      const bytes = Buffer.from(b64, 'base64');
      bytes[bytes.length >> 1]! ^= 0x80;
      return bytes.toString('base64');
    };
    const secrets = { keys: [{ key: alice.privateKey, file: 'alice.key' }] };
    for (const field of ['sealed', 'nonce', 'ephemeral'] as const) {
      expect(() => unwrapDataKey([{ ...good, [field]: flip(good[field]) }], secrets, 'job 2'), field).toThrow(expect.objectContaining({ code: 'E_WRONG_KEY' }));
    }
    expect(() => unwrapDataKey([{ ...good, sealed: Buffer.concat([Buffer.from(good.sealed, 'base64'), randomBytes(1)]).toString('base64') }], secrets, 'job 2')).toThrow(
      expect.objectContaining({ code: 'E_WRONG_KEY' }),
    );
  });

  it('does not run scrypt for a stanza whose parameters would exhaust memory', () => {
    const dataKey = newDataKey();
    const hostile = { ...(wrapForPassphrase(dataKey, 'pw', FAST) as Extract<KeyStanza, { type: 'scrypt' }>), n: 1 << 30 };
    const started = Date.now();
    expect(() => unwrapDataKey([hostile], { passphrase: 'pw' }, 'job 3')).toThrow(expect.objectContaining({ code: 'E_WRONG_KEY' }));
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
