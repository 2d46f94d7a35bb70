/**
 * Tampering that keeps every CRC valid: an attacker (or a bug) who rewrites a record and fixes
 * its checksum. The AEAD tags, the record sequence, the chunk places, the stream digests and the
 * signed manifest must each still catch it. Also: a passphrase-encrypted job, and a full disk.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPluginDir, type AgentRegistry } from '../../src/agents/registry.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { parseConfig, type AgentfdConfig } from '../../src/config/load.js';
import { generateKeyFiles, loadPrivateIdentity } from '../../src/crypto/keys.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { runVerify } from '../../src/jobs/verify.js';
import { decodeRecordHeader, recordCrc, RecordType, RECORD_HEADER_SIZE, TEXT_HEADER_SIZE, VolumeWriter } from '../../src/volume/index.js';
import { runCliJson } from '../helpers/cli.js';
import { SAMPLE_DIR, canMountTmpfs, removeDir, tempDir } from '../helpers/native.js';

let ws: string;
let config: AgentfdConfig;
let registry: AgentRegistry;
let secrets: { keys: { key: ReturnType<typeof loadPrivateIdentity>['encryption'] & object; file: string }[] };

beforeAll(async () => {
  ws = tempDir('tamper');
  const data = path.join(ws, 'data');
  mkdirSync(data);
  for (let i = 0; i < 3; i++) writeFileSync(path.join(data, `f${i}.bin`), randomBytes(1_500_000));
  const keys = generateKeyFiles(ws, 'k');
  writeFileSync(path.join(ws, 'pass.txt'), 'correct horse battery staple\n');
  writeFileSync(path.join(ws, 'wrong.txt'), 'Tr0ub4dor&3\n');
  const text = [
    `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}`,
    'data_dir = "state"',
    '[jobs.enc]\nagent = "filesystem"\npaths = ["data"]\ncompression = "none"\nencrypt_to = ["k.pub"]\nsign_with = "k.key"',
    '[jobs.plain]\nagent = "filesystem"\npaths = ["data"]\ncompression = "none"',
    '[jobs.signed]\nagent = "filesystem"\npaths = ["data"]\ncompression = "none"\nsign_with = "k.key"',
    '[jobs.pass]\nagent = "filesystem"\npaths = ["data"]\npassphrase_file = "pass.txt"',
  ].join('\n');
  config = parseConfig(text, path.join(ws, 'agentfd.toml'));
  writeFileSync(path.join(ws, 'agentfd.toml'), text);
  registry = await loadPluginDir(SAMPLE_DIR);
  secrets = { keys: [{ key: loadPrivateIdentity(keys.privateFile).encryption!, file: keys.privateFile }] };
});
afterAll(() => {
  removeDir(ws);
});

/** Every record of a volume with its offset, parsed straight from the bytes. */
function records(volume: Buffer) {
  const out: { offset: number; type: number; seq: number; session: number; length: number }[] = [];
  for (let at = TEXT_HEADER_SIZE; at + RECORD_HEADER_SIZE <= volume.length; ) {
    const h = decodeRecordHeader(volume.subarray(at, at + RECORD_HEADER_SIZE));
    out.push({ offset: at, type: h.type, seq: h.seq, session: h.session, length: h.length });
    at += RECORD_HEADER_SIZE + h.length;
  }
  return out;
}

/** Fix the CRC of the record at `offset` after its bytes were changed. */
function fixCrc(volume: Buffer, offset: number): void {
  const header = volume.subarray(offset, offset + RECORD_HEADER_SIZE);
  const length = header.readUInt32LE(16);
  header.writeUInt32LE(recordCrc(header, volume.subarray(offset + RECORD_HEADER_SIZE, offset + RECORD_HEADER_SIZE + length)), 20);
}

/**
 * Continue the volume set after the damage as the next backup does (the catalog's jobs protected),
 * append a record: every byte of the damaged volume, so every record committed before the damage,
 * is still there as it was.
 */
async function expectAppendKeeps(file: string, damaged: Buffer): Promise<void> {
  const catalog = Catalog.open(config.dataDir);
  try {
    const writer = VolumeWriter.open({
      dir: path.dirname(file), set: 'agentfd', maxVolumeBytes: config.volumeSize, agentfdVersion: 'test',
      protectedSessions: (volume) => catalog.jobsInVolume(volume),
    });
    await writer.append({ type: RecordType.STATE, session: 0, seq: 0, payload: Buffer.from('after the damage') });
    await writer.close({ final: false });
  } finally {
    catalog.close();
  }
  expect(readFileSync(file).subarray(0, damaged.length).equals(damaged), 'the damaged volume lost bytes when the set was continued').toBe(true);
}

async function backupAndTamper(job: string, tamper: (volume: Buffer, recs: ReturnType<typeof records>, jobId: number) => void) {
  const report = await runBackup({ config, registry, jobName: job });
  expect(report.status).toBe('committed');
  const file = report.volumes[0]!;
  const original = readFileSync(file);
  const damaged = Buffer.from(original);
  tamper(damaged, records(damaged).filter((r) => r.session === report.jobId), report.jobId);
  writeFileSync(file, damaged);
  const catalog = Catalog.open(config.dataDir);
  try {
    return await runVerify({ catalog, jobId: report.jobId, secrets });
  } finally {
    catalog.close();
    await expectAppendKeeps(file, damaged);
    writeFileSync(file, original);
  }
}

describe('tampering with valid checksums', () => {
  it('an altered byte in an encrypted chunk fails its AEAD tag', async () => {
    const report = await backupAndTamper('enc', (v, recs) => {
      const chunk = recs.find((r) => r.type === RecordType.CHUNK)!;
      v[chunk.offset + RECORD_HEADER_SIZE + 40]! ^= 1;
      fixCrc(v, chunk.offset);
    });
    expect(report.status).toBe('bad');
    expect(report.error).toMatch(/CHUNK.*authentication failed/);
  });

  it('an altered byte in a plain chunk fails the stream digest', async () => {
    const report = await backupAndTamper('plain', (v, recs) => {
      const chunk = recs.find((r) => r.type === RecordType.CHUNK)!;
      v[chunk.offset + RECORD_HEADER_SIZE + 100]! ^= 1;
      fixCrc(v, chunk.offset);
    });
    expect(report.error).toMatch(/SHA-256 [0-9a-f]{64} where [0-9a-f]{64} was recorded/);
  });

  it('an altered byte in a plain chunk fails a restore too (digests on the hashing thread), and the file is not left', async () => {
    const report = await runBackup({ config, registry, jobName: 'plain' });
    const file = report.volumes[0]!;
    const original = readFileSync(file);
    const damaged = Buffer.from(original);
    // The second chunk of the first file: the restore has already handed the first chunk on.
    const chunks = records(damaged).filter((r) => r.session === report.jobId && r.type === RecordType.CHUNK);
    damaged[chunks[1]!.offset + RECORD_HEADER_SIZE + 100]! ^= 1;
    fixCrc(damaged, chunks[1]!.offset);
    writeFileSync(file, damaged);
    const catalog = Catalog.open(config.dataDir);
    const to = path.join(ws, `restore-digest-${report.jobId}`);
    try {
      await expect(runRestore({ catalog, registry, jobId: report.jobId, to, secrets })).rejects.toThrow(/SHA-256 [0-9a-f]{64} where [0-9a-f]{64} was recorded/);
      // Nothing restored is passed off as good: every file there under a source's name is whole and
      // equal to its source (the damaged one is not among them).
      const restored = existsSync(to) ? readdirSync(to, { recursive: true }).map(String).filter((n) => /f\d\.bin$/.test(n)) : [];
      for (const name of restored) {
        expect(readFileSync(path.join(to, name)).equals(readFileSync(path.join(ws, 'data', path.basename(name))))).toBe(true);
      }
      expect(restored.length).toBeLessThan(3);
    } finally {
      catalog.close();
      await expectAppendKeeps(file, damaged);
      writeFileSync(file, original);
    }
  });

  it('a flipped bit in the length of a chunk in the middle (CRC left as it is) fails verify there, and continuing the set cuts nothing', async () => {
    let offset = 0;
    const report = await backupAndTamper('plain', (v, recs) => {
      offset = recs.find((r) => r.type === RecordType.CHUNK)!.offset;
      v[offset + 16 + 3]! ^= 0x01; // the length grows by 16 MiB: the rest of the volume looks like its payload
    });
    expect(report.status).toBe('bad');
    expect(report.error).toContain(`at byte ${offset}`);
  });

  it('two chunks swapped (sequence numbers rewritten to match) are caught by their recorded places', async () => {
    const report = await backupAndTamper('plain', (v, recs) => {
      const chunks = recs.filter((r) => r.type === RecordType.CHUNK && r.length === recs.find((c) => c.type === RecordType.CHUNK)!.length);
      const [a, b] = [chunks[0]!, chunks[1]!];
      const size = RECORD_HEADER_SIZE + a.length;
      const first = Buffer.from(v.subarray(a.offset, a.offset + size));
      v.copy(v, a.offset, b.offset, b.offset + size);
      first.copy(v, b.offset);
      v.writeUInt32LE(a.seq, a.offset + 12);
      v.writeUInt32LE(b.seq, b.offset + 12);
      fixCrc(v, a.offset);
      fixCrc(v, b.offset);
    });
    // Each chunk names its file, stream and position (inside the AEAD for encrypted jobs).
    expect(report.error).toMatch(/CHUNK\): (a chunk of file \d+ outside that file|chunk \d+ of stream \d+ where chunk \d+ of stream \d+ was expected)/);
  });

  it('a signed plain job whose file record was rewritten fails the manifest', async () => {
    const report = await backupAndTamper('signed', (v, recs) => {
      // Rename a file inside its FILE record (same length), fix the CRC: only the manifest knows.
      const rec = recs.find((r) => r.type === RecordType.FILE_END)!;
      const payload = v.subarray(rec.offset + RECORD_HEADER_SIZE, rec.offset + RECORD_HEADER_SIZE + rec.length);
      const text = payload.toString('utf8').replace('"ok"', '"OK"');
      payload.write(text, 'utf8');
      fixCrc(v, rec.offset);
    });
    expect(report.error).toMatch(/manifest digest does not match/);
  });
});

describe('passphrase encryption', () => {
  it('restores with the passphrase and refuses a wrong one', async () => {
    const report = await runBackup({ config, registry, jobName: 'pass' });
    expect(report).toMatchObject({ status: 'committed', encrypted: true });
    const catalog = Catalog.open(config.dataDir);
    try {
      const to = path.join(ws, 'restore-pass');
      await expect(runRestore({ catalog, registry, jobId: report.jobId, to, secrets: { passphrase: 'Tr0ub4dor&3' } })).rejects.toThrow(/with a passphrase; the passphrase given does not open it/);
      const ok = await runRestore({ catalog, registry, jobId: report.jobId, to, secrets: { passphrase: 'correct horse battery staple' } });
      expect(ok.files).toBe(4); // the root directory and its three files
      const restored = path.join(to, ...path.join(ws, 'data').split(path.sep).filter(Boolean));
      for (const name of readdirSync(path.join(ws, 'data'))) {
        expect(readFileSync(path.join(restored, name)).equals(readFileSync(path.join(ws, 'data', name)))).toBe(true);
      }
    } finally {
      catalog.close();
    }
    // And through the CLI, with --passphrase-file.
    const cli = runCliJson(['verify', '--config', path.join(ws, 'agentfd.toml'), '--job-id', String(report.jobId), '--passphrase-file', path.join(ws, 'pass.txt')]);
    expect(cli.json).toMatchObject({ status: 'ok', verify: 'ok' });
  });
});


// A real full disk needs a small filesystem: a tmpfs, which only root can mount (CI runs as root).
describe.runIf(canMountTmpfs())('a full disk', () => {
  it('fails the job with a clear message, keeps the catalog consistent, and the job is never restorable', () => {
    const dir = tempDir('full');
    const storage = path.join(dir, 'volumes');
    mkdirSync(storage);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', storage]);
    try {
      const cfg = path.join(dir, 'agentfd.toml');
      writeFileSync(cfg, `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\ndata_dir = "state"\nstorage_dir = "volumes"\n[jobs.big]\nagent = "filesystem"\npaths = [${JSON.stringify(path.join(ws, 'data'))}]\ncompression = "none"\n`);
      const backup = runCliJson(['backup', '--job', 'big', '--config', cfg]);
      expect(backup.status).toBe(1);
      expect(backup.json).toMatchObject({ status: 'failed', code: 'E_VOLUME_WRITE' });
      expect(backup.json.message).toMatch(/disk full \(ENOSPC\)/);
      const jobs = runCliJson(['jobs', '--config', cfg]).json.jobs;
      expect(jobs).toMatchObject([{ jobId: backup.json.jobId, status: 'failed' }]);
      const restore = runCliJson(['restore', '--config', cfg, '--job-id', String(backup.json.jobId), '--to', path.join(dir, 'r')]);
      expect(restore.json.code).toBe('E_JOB_NOT_RESTORABLE');
    } finally {
      execFileSync('umount', [storage]);
      removeDir(dir);
    }
  });
});
