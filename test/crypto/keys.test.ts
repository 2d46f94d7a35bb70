/**
 * agentfd's key files on their own: generated as standard PEM with the private file readable by its
 * owner only; never overwritten; a private key file others may read is refused (E_KEY_PERMISSIONS)
 * before it is read; and files that hold the wrong kind of key are refused saying which to pass.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPrivateKeyMode, fingerprint, generateKeyFiles, loadPrivateIdentity, loadPublicIdentity, publicKeyFromRaw, rawPublicKey } from '../../src/crypto/keys.js';
import { tempDir } from '../helpers/native.js';

const POSIX = process.platform !== 'win32';

describe('key files', () => {
  it('generates a private file only its owner may read and a public file, whose keys pair up', () => {
    const dir = tempDir('keys');
    const made = generateKeyFiles(dir, 'site');
    if (POSIX) {
      expect(statSync(made.privateFile).mode & 0o777).toBe(0o600);
      expect(statSync(made.publicFile).mode & 0o777).toBe(0o644);
    }
    const priv = loadPrivateIdentity(made.privateFile);
    const pub = loadPublicIdentity(made.publicFile);
    expect(fingerprint(createPublicKey(priv.encryption!))).toBe(made.encryptionFingerprint);
    expect(fingerprint(pub.encryption!)).toBe(made.encryptionFingerprint);
    expect(fingerprint(pub.signing!)).toBe(made.signingFingerprint);
    expect(readFileSync(made.publicFile, 'utf8')).toMatch(/-----BEGIN PUBLIC KEY-----/);
    // The raw form round-trips, and the fingerprint is of it.
    expect(fingerprint(publicKeyFromRaw('x25519', rawPublicKey(pub.encryption!)))).toBe(made.encryptionFingerprint);
  });

  it('never overwrites a key file', () => {
    const dir = tempDir('keys');
    const first = generateKeyFiles(dir, 'site');
    const before = readFileSync(first.privateFile);
    expect(() => generateKeyFiles(dir, 'site')).toThrow(expect.objectContaining({ code: 'E_KEY', message: expect.stringContaining('exists already; agentfd never overwrites a key') }));
    expect(readFileSync(first.privateFile).equals(before)).toBe(true);
  });

  it.skipIf(!POSIX)('refuses a private key file that other users may read or write, saying how to fix it', () => {
    const dir = tempDir('keys');
    const { privateFile } = generateKeyFiles(dir, 'site');
    for (const mode of [0o640, 0o604, 0o620, 0o666]) {
      chmodSync(privateFile, mode);
      expect(() => loadPrivateIdentity(privateFile), mode.toString(8)).toThrow(
        expect.objectContaining({ code: 'E_KEY_PERMISSIONS', message: `the private key file ${privateFile} has mode 0${mode.toString(8)}: it is readable or writable by other users, so agentfd refuses to use it. Make it private with: chmod 600 ${privateFile}` }),
      );
    }
    chmodSync(privateFile, 0o400);
    expect(() => checkPrivateKeyMode(privateFile)).not.toThrow();
    expect(loadPrivateIdentity(privateFile).signing).not.toBeNull();
  });

  it('refuses files that hold no key, a public key where a private one is needed, or a key agentfd does not use', () => {
    const dir = tempDir('keys');
    const { publicFile } = generateKeyFiles(dir, 'site');
    const empty = path.join(dir, 'notes.txt');
    writeFileSync(empty, 'not a key\n', { mode: 0o600 });
    expect(() => loadPublicIdentity(empty)).toThrow(expect.objectContaining({ code: 'E_KEY', message: `${empty} holds no PEM key; make one with: agentfd keys generate` }));
    chmodSync(publicFile, 0o600);
    expect(() => loadPrivateIdentity(publicFile)).toThrow(expect.objectContaining({ code: 'E_KEY', message: expect.stringContaining('not a private key') }));
    const rsa = path.join(dir, 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(() => loadPrivateIdentity(rsa)).toThrow(expect.objectContaining({ code: 'E_KEY', message: `${rsa}: a rsa key; agentfd uses X25519 and Ed25519 keys (agentfd keys generate)` }));
    expect(() => loadPublicIdentity(path.join(dir, 'missing.pub'))).toThrow(expect.objectContaining({ code: 'E_KEY', message: expect.stringContaining('(ENOENT)') }));
  });
});
