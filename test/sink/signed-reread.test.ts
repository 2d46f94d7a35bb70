/**
 * A signed job's restore reads its session twice: once to check the signature before anything is
 * written, then to write. A volume changed between the two reads must be caught at the changed
 * record, before its event reaches the restore (not at the session's end, after files were written).
 * And a signed session of format 2 (manifest v1, before the signature covered all metadata) still
 * verifies: older volumes stay restorable.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../src/catalog/catalog.js';
import { fingerprint, rawPublicKey } from '../../src/crypto/keys.js';
import type { SessionStart } from '../../src/pipeline/records.js';
import { readSession } from '../../src/sink/session-reader.js';
import { SessionWriter } from '../../src/sink/session-writer.js';
import { verifySignedSession, expectedSession } from '../../src/jobs/signatures.js';
import { decodeRecordHeader, recordCrc, RecordType, RECORD_HEADER_SIZE, TEXT_HEADER_SIZE, VolumeWriter } from '../../src/volume/index.js';
import { runCli, runCliJson } from '../helpers/cli.js';
import { SAMPLE_DIR, tempDir } from '../helpers/native.js';

describe('the second read of a signed restore', () => {
  it('stops at a metadata record that differs from the one the signature was verified over', async () => {
    const ws = tempDir('reread');
    expect(runCli(['keys', 'generate', '--out', ws, '--name', 'k']).status).toBe(0);
    mkdirSync(path.join(ws, 'data'));
    for (const name of ['a.txt', 'b.txt', 'c.txt']) {
      writeFileSync(path.join(ws, 'data', name), `${name}\n`);
      chmodSync(path.join(ws, 'data', name), 0o644);
    }
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, [`plugin_dir = ${JSON.stringify(SAMPLE_DIR)}`, 'data_dir = "state"', '[jobs.j]', 'agent = "filesystem"', 'paths = ["data"]', 'sign_with = "k.key"'].join('\n'));
    const backup = runCliJson(['backup', '--job', 'j', '--config', config]);
    expect(backup.status, backup.stderr).toBe(0);
    const jobId: number = backup.json.jobId;
    const volume: string = backup.json.volumes[0];

    const catalog = Catalog.open(path.join(ws, 'state'));
    try {
      const job = catalog.job(jobId)!;
      const verified = await verifySignedSession(catalog, job, {});

      // Between the reads, b.txt's mode changes from 0644 to 0755 in its record (CRC fixed).
      const bytes = readFileSync(volume);
      for (let at = TEXT_HEADER_SIZE; at + RECORD_HEADER_SIZE <= bytes.length; ) {
        const header = decodeRecordHeader(bytes.subarray(at, at + RECORD_HEADER_SIZE));
        const payload = bytes.subarray(at + RECORD_HEADER_SIZE, at + RECORD_HEADER_SIZE + header.length);
        if (header.type === RecordType.FILE_WHOLE && payload.indexOf('b.txt') >= 0) {
          payload.write('"mode":493,', payload.indexOf('"mode":420,'));
          bytes.writeUInt32LE(recordCrc(bytes.subarray(at, at + RECORD_HEADER_SIZE), payload), at + 20);
        }
        at += RECORD_HEADER_SIZE + header.length;
      }
      writeFileSync(volume, bytes);

      const seen: string[] = [];
      const placements = catalog.jobVolumes(jobId).map((v) => ({ path: v.path, firstOffset: v.first_offset }));
      const read = async () => {
        for await (const event of readSession({ jobId, placements, secrets: {}, data: true, what: `job ${jobId}`, expect: expectedSession(job), verified })) {
          if (event.kind === 'file') seen.push(path.basename(event.file.path));
        }
      };
      await expect(read()).rejects.toMatchObject({ code: 'E_SIGNATURE', message: expect.stringMatching(/FILE_WHOLE\): differs from the record the signature was verified over/) });
      expect(seen).not.toContain('b.txt'); // b.txt never reached the restore
    } finally {
      catalog.close();
    }
  });
});

describe('older sessions', () => {
  it('a signed session of format 2 (manifest v1) still reads, with its signature valid', async () => {
    const dir = tempDir('format2');
    const keys = generateKeyPairSync('ed25519');
    const pub = createPublicKey(keys.privateKey);
    const signer = { publicKey: rawPublicKey(pub).toString('base64'), fingerprint: fingerprint(pub) };
    const start: SessionStart = {
      format: 2, jobId: 1, uuid: randomUUID(), startedNs: '1', level: 'full', cipher: 'none', compression: 'none', stanzas: [], signer, agentfdVersion: '0.1.0',
    };
    const volumes = VolumeWriter.open({ dir, set: 'old', maxVolumeBytes: 1 << 20, agentfdVersion: '0.1.0' });
    const writer = new SessionWriter(volumes, start, null);
    await writer.begin({ jobName: 'old', agent: { name: 'filesystem', version: null, abi: 0, kind: 'builtin', capabilities: [] }, options: {}, requestedLevel: 'full', deliveredLevel: 'full', referenceJob: null, fileset: { include: [], exclude: [] } });
    const data = Buffer.from('old data\n');
    const file = { fileIndex: 0, path: '/old.txt', kind: 'regular' as const, mode: 0o644, mtimeNs: '1', size: data.length, linkTarget: null, seen: false, winAttributes: 0, agent: { name: 'filesystem', version: null, abi: 0 }, streams: [{ index: 0, type: 'data' as const, name: 'data', sizeHint: data.length, rawRestorable: true }] };
    await writer.file(file);
    await writer.chunk(0, 0, { index: 0, plainLength: data.length, codecId: 0, stored: data });
    await writer.streamEnd(0, 0, { bytes: data.length, chunks: 1, sha256: createHash('sha256').update(data).digest('hex') });
    await writer.fileEnd(file.path, { fileIndex: 0, status: 'ok', error: null });
    await writer.end({ status: 'committed', endedNs: '2', files: 1, failedFiles: 0, bytes: data.length, error: null }, keys.privateKey);
    await volumes.close({ final: true });
    const placements = writer.placements.map((p) => ({ path: p.path, firstOffset: p.firstOffset }));

    const ends = [];
    for await (const event of readSession({ jobId: 1, placements, secrets: {}, data: true, what: 'job 1', expect: { uuid: start.uuid, signer: signer.fingerprint } })) {
      if (event.kind === 'end') ends.push(event);
    }
    expect(ends).toMatchObject([{ signature: 'valid', signer: signer.fingerprint, manifest: 1 }]);
  });
});
