/**
 * Volume records this agentfd cannot interpret (written by a newer one, or damaged with their CRC
 * fixed): a chunk with an unknown codec id, a file whose stream has an unknown type. The restore
 * must fail loudly, naming the record and what it does not know, and must not leave that file
 * behind as if restored (never written as empty, nor as the stored bytes).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { loadPluginDir } from '../../src/agents/registry.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { parseConfig } from '../../src/config/load.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { decodeRecordHeader, recordCrc, RecordType, RECORD_HEADER_SIZE, TEXT_HEADER_SIZE } from '../../src/volume/index.js';
import { SAMPLE_DIR, tempDir } from '../helpers/native.js';

/** A committed plain job of one 1.5 MB file (CHUNK records), its volume bytes and where its records start. */
async function plainBackup(prefix: string) {
  const ws = tempDir(prefix);
  const data = path.join(ws, 'data');
  mkdirSync(data);
  writeFileSync(path.join(data, 'big.bin'), randomBytes(1_500_000)); // compression none: codec id 0
  const text = [`plugin_dir = ${JSON.stringify(SAMPLE_DIR)}`, 'data_dir = "state"', '[jobs.plain]\nagent = "filesystem"\npaths = ["data"]\ncompression = "none"'].join('\n');
  const config = parseConfig(text, path.join(ws, 'agentfd.toml'));
  const registry = await loadPluginDir(SAMPLE_DIR);
  const report = await runBackup({ config, registry, jobName: 'plain' });
  expect(report.status).toBe('committed');
  const volume = readFileSync(report.volumes[0]!);
  const firstOf = (type: number): number => {
    for (let at = TEXT_HEADER_SIZE; at + RECORD_HEADER_SIZE <= volume.length; ) {
      const h = decodeRecordHeader(volume.subarray(at, at + RECORD_HEADER_SIZE));
      if (h.session === report.jobId && h.type === type) return at;
      at += RECORD_HEADER_SIZE + h.length;
    }
    throw new Error(`no record of type ${type}`);
  };
  /** Writes the volume back with the record at `at` changed by `change`, its CRC fixed to match. */
  const rewrite = (at: number, change: (header: Buffer, payload: Buffer) => void) => {
    const header = volume.subarray(at, at + RECORD_HEADER_SIZE);
    const payload = volume.subarray(at + RECORD_HEADER_SIZE, at + RECORD_HEADER_SIZE + header.readUInt32LE(16));
    change(header, payload);
    header.writeUInt32LE(recordCrc(header, payload), 20);
    writeFileSync(report.volumes[0]!, volume);
  };
  /** Restores the job into a new directory: the promise, and the names of big.bin left there. */
  const restore = async () => {
    const catalog = Catalog.open(config.dataDir);
    const to = path.join(ws, 'restored');
    try {
      const outcome = await runRestore({ catalog, registry, jobId: report.jobId, to, secrets: { keys: [] } }).then(
        (r) => ({ report: r, error: null }),
        (error: unknown) => ({ report: null, error: error as Error & { code?: string } }),
      );
      const left = existsSync(to) ? readdirSync(to, { recursive: true }).map(String).filter((n) => n.endsWith('big.bin')) : [];
      return { ...outcome, left };
    } finally {
      catalog.close();
    }
  };
  return { firstOf, rewrite, restore };
}

it('a chunk record with an unknown codec id fails the restore with E_CODEC, and its file is not left as restored', async () => {
  const job = await plainBackup('unknown-codec');
  const chunkAt = job.firstOf(RecordType.CHUNK);
  job.rewrite(chunkAt, (header) => {
    expect(header[5]).toBe(0);
    header[5] = 9; // the codec byte
  });
  const { error, left } = await job.restore();
  expect(error).toMatchObject({ code: 'E_CODEC' });
  expect(error!.message).toMatch(new RegExp(`at offset ${chunkAt} .*CHUNK.*unknown compression codec id 9: this volume was written by a newer agentfd`));
  expect(left).toEqual([]);
});

it('a file whose stream has an unknown type fails the restore, naming the file and the type, and the file is not left', async () => {
  const job = await plainBackup('unknown-stream-type');
  const fileAt = job.firstOf(RecordType.FILE);
  job.rewrite(fileAt, (_header, payload) => {
    const json = payload.toString('utf8');
    expect(json).toContain('"type":"data"');
    payload.write(json.replace('"type":"data"', '"type":"zzzz"'), 'utf8'); // same length: the record keeps its size
  });
  const { error, left } = await job.restore();
  expect(error).toMatchObject({ code: 'E_CORRUPT_DATA' });
  expect(error!.message).toMatch(new RegExp(`at offset ${fileAt} .*FILE.*stream 0 of .*big\\.bin has type "zzzz", which this agentfd does not know`));
  expect(left).toEqual([]);
});
