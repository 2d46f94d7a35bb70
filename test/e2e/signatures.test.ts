/**
 * A signature is tied to the key that signed: through the real CLI, on real volumes, a signed job
 * whose signature was stripped, one re-signed with another key, one forged by someone holding only
 * the public key, and one whose metadata was rewritten are all refused by verify and by restore
 * before anything is written; scan accepts a signature only by a key the operator trusts. And a
 * private key file that others can read is refused, as ssh does.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../src/catalog/catalog.js';
import { SCHEMA } from '../../src/catalog/schema.js';
import { openDatabase } from '../../src/catalog/sqlite.js';
import { fingerprint, loadPublicIdentity, rawPublicKey } from '../../src/crypto/keys.js';
import { decodeRecordHeader, recordCrc, RecordType, RECORD_HEADER_SIZE, TEXT_HEADER_SIZE } from '../../src/volume/index.js';
import { runCli, runCliJson } from '../helpers/cli.js';
import { SAMPLE_DIR, tempDir } from '../helpers/native.js';

interface Workspace {
  dir: string;
  config: string;
  data: string;
  keys: string;
}

/** A workspace with keys "owner" and "forger", a data directory and a job "docs" signed by owner. */
function workspace(prefix: string, job: { encrypt?: boolean; sign?: string | null } = {}): Workspace {
  const dir = tempDir(`sig-${prefix}`);
  const keys = path.join(dir, 'keys');
  for (const name of ['owner', 'forger']) expect(runCli(['keys', 'generate', '--out', keys, '--name', name]).status).toBe(0);
  const data = path.join(dir, 'data');
  mkdirSync(data);
  writeFileSync(path.join(data, 'report.txt'), 'the real report\n');
  writeFileSync(path.join(data, 'big.bin'), Buffer.alloc(300_000, 7));
  chmodSync(path.join(data, 'report.txt'), 0o644);
  const config = path.join(dir, 'agentfd.toml');
  writeConfig(config, 'state', job);
  return { dir, config, data, keys };
}

function writeConfig(file: string, dataDir: string, job: { encrypt?: boolean; sign?: string | null } = {}, extra: string[] = []): void {
  const sign = job.sign === undefined ? 'owner' : job.sign;
  writeFileSync(
    file,
    [
      `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}`,
      `data_dir = ${JSON.stringify(dataDir)}`,
      ...extra,
      '[jobs.docs]',
      'agent = "filesystem"',
      'paths = ["data"]',
      'compression = "none"',
      ...(job.encrypt === false ? [] : ['encrypt_to = ["keys/owner.pub"]']),
      ...(sign ? [`sign_with = "keys/${sign}.key"`] : []),
    ].join('\n'),
  );
}

function backup(ws: Workspace): { jobId: number; volume: string } {
  const result = runCliJson(['backup', '--job', 'docs', '--config', ws.config]);
  expect(result.status, result.stderr).toBe(0);
  expect(result.json.volumes).toHaveLength(1);
  return { jobId: result.json.jobId, volume: result.json.volumes[0] };
}

const key = (ws: Workspace, name = 'owner') => path.join(ws.keys, `${name}.key`);

function verify(ws: Workspace, jobId: number, ...more: string[]) {
  return runCliJson(['verify', '--job-id', String(jobId), '--key', key(ws), '--config', ws.config, ...more]);
}

/** Restore into a fresh directory; returns the result and what the directory holds afterwards. */
function restore(ws: Workspace, jobId: number, ...more: string[]) {
  const to = path.join(ws.dir, `restore-${Math.random().toString(36).slice(2)}`);
  const result = runCliJson(['restore', '--job-id', String(jobId), '--to', to, '--key', key(ws), '--config', ws.config, ...more]);
  return { ...result, to, written: existsSync(to) ? readdirSync(to) : [] };
}

/** The restored copy of the workspace's data directory. */
function restoredData(ws: Workspace, to: string): string {
  return path.join(to, ...ws.data.split(path.sep).filter(Boolean));
}

/**
 * Rewrite the clear JSON records of a session (SESSION_START, SESSION_CONTINUE, SESSION_END) in
 * place, as someone with the volume file could: the new JSON is padded with spaces to the old
 * length (JSON allows them) and the record's CRC is recomputed, so only the signature checks see it.
 */
function editClearRecords(volume: string, jobId: number, edit: (type: number, value: Record<string, any>) => Record<string, any> | null): void {
  const bytes = readFileSync(volume);
  for (let at = TEXT_HEADER_SIZE; at + RECORD_HEADER_SIZE <= bytes.length; ) {
    const header = decodeRecordHeader(bytes.subarray(at, at + RECORD_HEADER_SIZE));
    const payload = bytes.subarray(at + RECORD_HEADER_SIZE, at + RECORD_HEADER_SIZE + header.length);
    const clear = [RecordType.SESSION_START, RecordType.SESSION_CONTINUE, RecordType.SESSION_END] as number[];
    if (header.session === jobId && clear.includes(header.type)) {
      const changed = edit(header.type, JSON.parse(payload.toString('utf8')));
      if (changed) {
        const text = JSON.stringify(changed);
        expect(Buffer.byteLength(text)).toBeLessThanOrEqual(payload.length);
        payload.fill(0x20);
        payload.write(text, 'utf8');
        bytes.writeUInt32LE(recordCrc(bytes.subarray(at, at + RECORD_HEADER_SIZE), payload), at + 20);
      }
    }
    at += RECORD_HEADER_SIZE + header.length;
  }
  writeFileSync(volume, bytes);
}

/** The Ed25519 private key of a key file, read with node:crypto alone (as a forger's tool would). */
function ed25519PrivateKey(file: string): KeyObject {
  const blocks = readFileSync(file, 'utf8').match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/g)!;
  return blocks.map((pem) => createPrivateKey(pem)).find((k) => k.asymmetricKeyType === 'ed25519')!;
}

describe('a signed job verifies only against the key that signed it', () => {
  it('a signed job whose signature was stripped is an unsigned copy of a signed job, for verify and restore', () => {
    const ws = workspace('strip');
    const { jobId, volume } = backup(ws);
    expect(verify(ws, jobId).json).toMatchObject({ status: 'ok', signature: 'valid' });
    // Both the signer in the header and the signature in the end removed: the session looks unsigned.
    editClearRecords(volume, jobId, (type, value) =>
      type === RecordType.SESSION_END ? { ...value, signature: null } : { ...value, signer: null },
    );
    const verified = verify(ws, jobId);
    expect(verified.status).toBe(1);
    expect(verified.json).toMatchObject({ status: 'failed', verify: 'bad', errorCode: 'E_SIGNATURE' });
    expect(verified.json.error).toMatch(/unsigned copy of a signed job: the catalog records job \d+ \(docs\) as signed by [0-9a-f]{32}/);
    const restored = restore(ws, jobId);
    expect(restored.status).toBe(1);
    expect(restored.json).toMatchObject({ status: 'failed', code: 'E_SIGNATURE' });
    expect(restored.json.message).toMatch(/unsigned copy of a signed job/);
    expect(restored.written).toEqual([]);
  });

  it('a signed job whose end lost only its signature is refused too', () => {
    const ws = workspace('strip-end');
    const { jobId, volume } = backup(ws);
    editClearRecords(volume, jobId, (type, value) => (type === RecordType.SESSION_END ? { ...value, signature: null } : null));
    const verified = verify(ws, jobId);
    expect(verified.json).toMatchObject({ status: 'failed', errorCode: 'E_SIGNATURE' });
    expect(verified.json.error).toMatch(/unsigned copy of a signed job: the session names the signer [0-9a-f]{32}, and its end carries no signature/);
    const restored = restore(ws, jobId);
    expect(restored.json).toMatchObject({ status: 'failed', code: 'E_SIGNATURE' });
    expect(restored.written).toEqual([]);
  });

  it('a job re-signed with another key is refused by verify and restore', () => {
    const ws = workspace('resign');
    const { jobId, volume } = backup(ws);
    // The forger's tool: its own public key in the header, its own signature over the same manifest.
    const forgerPrivate = ed25519PrivateKey(key(ws, 'forger'));
    const forgerPublic = loadPublicIdentity(path.join(ws.keys, 'forger.pub')).signing!;
    const forgerSigner = { publicKey: rawPublicKey(forgerPublic).toString('base64'), fingerprint: fingerprint(forgerPublic) };
    editClearRecords(volume, jobId, (type, value) =>
      type === RecordType.SESSION_END
        ? { ...value, signature: sign(null, Buffer.from(value.manifestSha256, 'hex'), forgerPrivate).toString('base64') }
        : { ...value, signer: forgerSigner },
    );
    const verified = verify(ws, jobId);
    expect(verified.status).toBe(1);
    expect(verified.json).toMatchObject({ status: 'failed', errorCode: 'E_SIGNATURE' });
    expect(verified.json.error).toContain(`signed by ${forgerSigner.fingerprint}, but the catalog records job ${jobId} (docs) as signed by`);
    const restored = restore(ws, jobId);
    expect(restored.json).toMatchObject({ status: 'failed', code: 'E_SIGNATURE' });
    expect(restored.json.message).toMatch(/re-signed with another key or replaced/);
    expect(restored.written).toEqual([]);
  });

  it("a signed plain job whose file's mode was rewritten fails the signed manifest", () => {
    const ws = workspace('mode', { encrypt: false });
    const { jobId, volume } = backup(ws);
    // 0644 (420) becomes 0755 (493) inside the FILE record, same length, CRC fixed.
    const bytes = readFileSync(volume);
    let changed = 0;
    for (let at = TEXT_HEADER_SIZE; at + RECORD_HEADER_SIZE <= bytes.length; ) {
      const header = decodeRecordHeader(bytes.subarray(at, at + RECORD_HEADER_SIZE));
      const payload = bytes.subarray(at + RECORD_HEADER_SIZE, at + RECORD_HEADER_SIZE + header.length);
      if (header.session === jobId && (header.type === RecordType.FILE || header.type === RecordType.FILE_WHOLE)) {
        const at420 = payload.indexOf('"mode":420,');
        if (at420 >= 0 && payload.indexOf('report.txt') >= 0) {
          payload.write('"mode":493,', at420);
          bytes.writeUInt32LE(recordCrc(bytes.subarray(at, at + RECORD_HEADER_SIZE), payload), at + 20);
          changed++;
        }
      }
      at += RECORD_HEADER_SIZE + header.length;
    }
    expect(changed).toBe(1);
    writeFileSync(volume, bytes);
    const verified = verify(ws, jobId);
    expect(verified.json).toMatchObject({ status: 'failed', errorCode: 'E_CORRUPT_DATA' });
    expect(verified.json.error).toMatch(/the manifest digest does not match the records/);
    const restored = restore(ws, jobId);
    expect(restored.json).toMatchObject({ status: 'failed' });
    expect(restored.written).toEqual([]);
  });
});

describe('a job forged with only the public key', () => {
  /** The forger's job: its own data, encrypted to the owner's public key (all it has), signed by its own key or not. */
  function forge(ws: Workspace, signed: boolean): string {
    const forger = path.join(ws.dir, signed ? 'forger-signed' : 'forger-unsigned');
    mkdirSync(path.join(forger, 'keys'), { recursive: true });
    copyFileSync(path.join(ws.keys, 'owner.pub'), path.join(forger, 'keys', 'owner.pub'));
    if (signed) {
      copyFileSync(key(ws, 'forger'), path.join(forger, 'keys', 'forger.key'));
      chmodSync(path.join(forger, 'keys', 'forger.key'), 0o600);
    }
    mkdirSync(path.join(forger, 'data'));
    writeFileSync(path.join(forger, 'data', 'report.txt'), 'the forged report\n');
    writeConfig(path.join(forger, 'agentfd.toml'), 'state', { sign: signed ? 'forger' : null });
    const result = runCliJson(['backup', '--job', 'docs', '--config', path.join(forger, 'agentfd.toml')]);
    expect(result.status, result.stderr).toBe(0);
    return result.json.volumes[0];
  }

  it('put in place of a signed job, signed or not, is refused before anything is written', () => {
    const ws = workspace('forge-swap');
    const { jobId, volume } = backup(ws);
    for (const signed of [true, false]) {
      copyFileSync(forge(ws, signed), volume); // the forger's job 1 over the owner's job 1
      const restored = restore(ws, jobId);
      expect(restored.status).toBe(1);
      expect(restored.json.code).toMatch(/^E_(WRONG_SESSION|SIGNATURE)$/);
      expect(restored.json.message).toMatch(/the volume was replaced|unsigned copy of a signed job/);
      expect(restored.written).toEqual([]);
      expect(verify(ws, jobId).json).toMatchObject({ status: 'failed' });
    }
  });

  it('scanned into a catalog, it is untrusted: restore refuses it unless told to accept an untrusted signer', () => {
    const ws = workspace('forge-scan');
    const forged = forge(ws, true);
    // The owner rebuilds a catalog from volumes that include the forged one, trusting its own key.
    const config = path.join(ws.dir, 'rebuild.toml');
    writeConfig(config, 'rebuilt', {});
    const scan = runCliJson(['scan', forged, '--key', key(ws), '--trust-signer', path.join(ws.keys, 'owner.pub'), '--config', config]);
    expect(scan.status, scan.stderr).toBe(0);
    expect(scan.json.warnings.join('\n')).toMatch(/job 1 \(docs\) is signed by [0-9a-f]{32}, which is not a trusted signer/);
    const rebuilt = { ...ws, config };
    const refused = restore(rebuilt, 1);
    expect(refused.status).toBe(1);
    expect(refused.json).toMatchObject({ status: 'failed', code: 'E_UNTRUSTED_SIGNER' });
    expect(refused.json.message).toMatch(/signed by [0-9a-f]{32}, a key that was not trusted when the job was scanned.*--allow-untrusted-signer/);
    expect(refused.written).toEqual([]);
    expect(verify(rebuilt, 1).json).toMatchObject({ status: 'failed', errorCode: 'E_UNTRUSTED_SIGNER' });
    // Told to, restore writes it, and says whose it is not.
    const allowed = restore(rebuilt, 1, '--allow-untrusted-signer');
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.json).toMatchObject({ status: 'ok', signature: 'untrusted' });
    const human = runCli(['restore', '--job-id', '1', '--to', path.join(ws.dir, 'human'), '--key', key(ws), '--config', config, '--allow-untrusted-signer']);
    expect(human.stdout).toMatch(/signature untrusted/);
  });
});

describe('scan trusts only the signers it is told to', () => {
  it('without a trusted key the job is untrusted; with --trust-signer, trusted_signers or the job\'s sign_with it is valid', () => {
    const ws = workspace('scan-trust');
    const { volume } = backup(ws);
    const scanInto = (name: string, extra: string[], job: { sign?: string | null }, args: string[] = []) => {
      const config = path.join(ws.dir, `${name}.toml`);
      writeConfig(config, name, job, extra);
      const scan = runCliJson(['scan', volume, '--key', key(ws), '--config', config, ...args]);
      expect(scan.status, scan.stderr).toBe(0);
      return { ws: { ...ws, config }, scan };
    };

    const untrusted = scanInto('no-trust', [], { sign: null });
    expect(untrusted.scan.json.warnings).toHaveLength(1);
    const refused = verify(untrusted.ws, 1);
    expect(refused.status).toBe(1);
    expect(refused.json).toMatchObject({ status: 'failed', errorCode: 'E_UNTRUSTED_SIGNER' });
    expect(verify(untrusted.ws, 1, '--allow-untrusted-signer').json).toMatchObject({ status: 'ok', signature: 'untrusted' });
    const jobs = runCliJson(['jobs', '--config', untrusted.ws.config]);
    expect(jobs.json.jobs[0]).toMatchObject({ signer: expect.stringMatching(/^[0-9a-f]{32}$/), signerTrusted: false });

    const byFlag = scanInto('flag', [], { sign: null }, ['--trust-signer', path.join(ws.keys, 'owner.pub')]);
    expect(byFlag.scan.json.warnings).toEqual([]);
    expect(verify(byFlag.ws, 1).json).toMatchObject({ status: 'ok', signature: 'valid' });
    expect(runCliJson(['jobs', '--config', byFlag.ws.config]).json.jobs[0]).toMatchObject({ signerTrusted: true });
    const restored = restore(byFlag.ws, 1);
    expect(restored.json).toMatchObject({ status: 'ok', signature: 'valid' });
    expect(readFileSync(path.join(restoredData(ws, restored.to), 'report.txt'), 'utf8')).toBe('the real report\n');

    const byConfig = scanInto('config', ['trusted_signers = ["keys/owner.pub"]'], { sign: null });
    expect(byConfig.scan.json.warnings).toEqual([]);
    expect(verify(byConfig.ws, 1).json).toMatchObject({ status: 'ok', signature: 'valid' });

    const bySignWith = scanInto('sign-with', [], { sign: 'owner' });
    expect(bySignWith.scan.json.warnings).toEqual([]);
    expect(verify(bySignWith.ws, 1).json).toMatchObject({ status: 'ok', signature: 'valid' });

    // Another key trusted is no trust in this one.
    const other = scanInto('other', [], { sign: null }, ['--trust-signer', path.join(ws.keys, 'forger.pub')]);
    expect(other.scan.json.warnings).toHaveLength(1);
    expect(verify(other.ws, 1).json).toMatchObject({ status: 'failed', errorCode: 'E_UNTRUSTED_SIGNER' });
  });
});

describe('private key files', () => {
  it('a private key readable by others is refused for signing, restore, verify and scan, naming the file, its mode and the fix', () => {
    const ws = workspace('mode-key');
    const { jobId, volume } = backup(ws);
    chmodSync(key(ws), 0o644);
    const expectRefused = (result: { status: number | null; json: Record<string, any> }) => {
      expect(result.status).toBe(1);
      expect(result.json.code).toBe('E_KEY_PERMISSIONS');
      expect(result.json.message).toContain(`the private key file ${key(ws)} has mode 0644`);
      expect(result.json.message).toContain(`chmod 600 ${key(ws)}`);
    };
    expectRefused(runCliJson(['backup', '--job', 'docs', '--config', ws.config]));
    const restored = restore(ws, jobId);
    expectRefused(restored);
    expect(restored.written).toEqual([]);
    expectRefused(verify(ws, jobId));
    expectRefused(runCliJson(['scan', volume, '--key', key(ws), '--config', ws.config]));
    chmodSync(key(ws), 0o640); // group-readable is still others
    expect(verify(ws, jobId).json.code).toBe('E_KEY_PERMISSIONS');
    chmodSync(key(ws), 0o600);
    expect(verify(ws, jobId).json).toMatchObject({ status: 'ok', signature: 'valid' });
    expect(runCliJson(['backup', '--job', 'docs', '--config', ws.config]).status).toBe(0);
  });
});

describe('catalogs made before signer trust', () => {
  it('a schema 3 catalog gains signer_trusted, its signed jobs kept trusted', () => {
    const dir = tempDir('sig-schema3');
    const db = openDatabase(path.join(dir, 'catalog.sqlite'));
    const schema3 = SCHEMA.replace(/\n\s*signer_trusted INTEGER NOT NULL DEFAULT 1,/, '');
    expect(schema3).not.toContain('signer_trusted');
    db.exec(schema3);
    db.prepare("INSERT INTO meta(key, value) VALUES ('schema', '3')").run();
    db.prepare(
      "INSERT INTO jobs(id, uuid, name, agent, agent_abi, level, requested_level, status, started_ns, compression, cipher, signer) VALUES (1, 'u', 'docs', 'filesystem', 0, 'full', 'full', 'committed', '1', 'none', 'none', 'abcd')",
    ).run();
    db.close();
    const catalog = Catalog.open(dir);
    try {
      expect(catalog.job(1)).toMatchObject({ signer: 'abcd', signer_trusted: 1 });
    } finally {
      catalog.close();
    }
  });
});
