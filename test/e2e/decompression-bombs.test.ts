/**
 * Decompression bombs through the real CLI, on an unencrypted job (nothing but the CRC, which a
 * forger recomputes, stands between a record and the decompressor): a chunk that claims more than
 * the largest chunk agentfd writes is refused before anything is allocated for it, and a chunk
 * whose real output exceeds its claim is stopped at the claim. verify and restore fail on that
 * record with a message naming the volume and offset, stay small in memory, and the other job of
 * the volume still verifies and restores.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/native.js';
import { encodeRecordHeader, readRecords, RecordType, type VolumeRecord } from '../../src/volume/index.js';

const GiB = 1024 * 1024 * 1024;
/** The most memory (resident set) verify or restore may reach on a bomb; a bomb would take over 1 GiB. */
const RSS_LIMIT_KB = 400 * 1024;

/**
 * A zstd frame that decompresses to `size` zero bytes and says so in its header: RLE blocks of
 * 128 KiB, 4 bytes each (a 1 GiB frame is 32 KiB).
 */
function zstdZeros(size: number): Buffer {
  const block = 128 * 1024;
  const head = Buffer.alloc(14);
  head.writeUInt32LE(0xfd2fb528, 0);
  head[4] = 0xc0; // 8-byte content size, not single-segment, no checksum, no dictionary
  head[5] = 0x38; // window 128 KiB
  head.writeBigUInt64LE(BigInt(size), 6);
  const blocks: Buffer[] = [head];
  for (let left = size; left > 0; left -= block) {
    const n = Math.min(block, left);
    const b = Buffer.alloc(4);
    b.writeUIntLE((n << 3) | (1 << 1) | (left === n ? 1 : 0), 0, 3); // RLE block of n bytes; last?
    blocks.push(b);
  }
  return Buffer.concat(blocks);
}

interface Setup {
  ws: string;
  config: string;
  volume: string;
  text: Buffer;
  /** Writes the peak resident memory (KiB) of each agentfd process into `rss`. */
  env: Record<string, string>;
  rss: string;
}

function setup(name: string): Setup {
  const ws = tempDir(name);
  mkdirSync(path.join(ws, 'data'));
  // Compressible, so its chunks are stored zstd-compressed; 3 chunks of 1 MiB and a tail.
  const lines: string[] = [];
  for (let i = 0, length = 0; length < 3 * 1024 * 1024 + 5000; i++) {
    lines.push(`line ${i}: the quick brown fox jumps over the lazy dog\n`);
    length += lines.at(-1)!.length;
  }
  const text = Buffer.from(lines.join(''));
  writeFileSync(path.join(ws, 'data', 'log.txt'), text);
  const config = path.join(ws, 'agentfd.toml');
  writeFileSync(config, ['data_dir = "state"', '[jobs.logs]', 'agent = "filesystem"', 'paths = ["data"]', 'compression = "zstd"', ''].join('\n'));
  const rss = path.join(ws, 'rss.txt');
  const probe = path.join(ws, 'rss-probe.mjs');
  writeFileSync(probe, "import { appendFileSync } from 'node:fs';\nprocess.on('exit', () => appendFileSync(process.env.AGENTFD_TEST_RSS, `${process.resourceUsage().maxRSS}\\n`));\n");
  const env = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(probe).href}`.trim(), AGENTFD_TEST_RSS: rss };
  return { ws, config, volume: path.join(ws, 'state', 'volumes', 'agentfd-0001.afv'), text, env, rss };
}

function cli(s: Setup, args: string[]) {
  writeFileSync(s.rss, '');
  const result = runCliJson([...args, '--config', s.config], { env: s.env });
  const peaks = readFileSync(s.rss, 'utf8').trim().split('\n').filter(Boolean).map(Number);
  return { ...result, peakKb: Math.max(...peaks) };
}

function restoredText(dir: string): Buffer | null {
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name === 'log.txt') return readFileSync(path.join(entry.parentPath, entry.name));
  }
  return null;
}

/** Two backups; the second job's second CHUNK is replaced by `forge(record)` (header and CRC made right). */
async function forgeChunk(s: Setup, forge: (record: VolumeRecord) => Buffer): Promise<{ first: number; second: number; record: VolumeRecord }> {
  const first = cli(s, ['backup', '--job', 'logs']).json.jobId as number;
  const second = cli(s, ['backup', '--job', 'logs']).json.jobId as number;
  const all: VolumeRecord[] = [];
  for await (const r of readRecords(s.volume)) all.push(r);
  const record = all.filter((r) => r.session === second && r.type === RecordType.CHUNK)[1]!;
  expect(record.codec).toBe(2); // zstd
  const payload = forge(record);
  const header = encodeRecordHeader({ type: record.type, codec: record.codec, cipher: record.cipher, flags: record.flags, session: record.session, seq: record.seq }, payload);
  const bytes = readFileSync(s.volume);
  // The second job's records are read in order from its first one: the records after the forged
  // one move, which nothing but their order depends on.
  writeFileSync(s.volume, Buffer.concat([bytes.subarray(0, record.offset), header, payload, bytes.subarray(record.offset + 24 + record.payload.length)]));
  return { first, second, record };
}

function expectBoundedFailure(s: Setup, jobId: number, message: RegExp): void {
  const verify = cli(s, ['verify', '--job-id', String(jobId)]);
  expect(verify.json.verify).toBe('bad');
  expect(verify.json.error).toMatch(message);
  expect(verify.peakKb, 'verify stayed small in memory').toBeLessThan(RSS_LIMIT_KB);
  const to = path.join(s.ws, `restore-${jobId}`);
  const restore = cli(s, ['restore', '--job-id', String(jobId), '--to', to]);
  expect(restore.status).not.toBe(0);
  expect([restore.json.message, ...(restore.json.errors ?? [])].join('\n')).toMatch(message);
  expect(restore.peakKb, 'restore stayed small in memory').toBeLessThan(RSS_LIMIT_KB);
}

function expectIntact(s: Setup, jobId: number): void {
  expect(cli(s, ['verify', '--job-id', String(jobId)]).json).toMatchObject({ status: 'ok', error: null });
  const to = path.join(s.ws, `restore-${jobId}`);
  expect(cli(s, ['restore', '--job-id', String(jobId), '--to', to]).status).toBe(0);
  expect(restoredText(to)?.equals(s.text)).toBe(true);
}

describe('decompression bombs', () => {
  it('a chunk claiming 1 GiB of plaintext is refused before it is decompressed, naming the volume, offset, claim and limit', { timeout: 120_000 }, async () => {
    const s = setup('bomb-claim');
    const { first, second, record } = await forgeChunk(s, (r) => {
      const prefix = Buffer.from(r.payload.subarray(0, 16));
      prefix.writeUInt32LE(GiB, 12);
      return Buffer.concat([prefix, zstdZeros(GiB)]);
    });
    const message = new RegExp(
      `${s.volume.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at offset ${record.offset} .*CHUNK\\): the chunk claims 1073741824 bytes of plaintext, more than the 1048576 bytes \\(1 MiB\\) of the largest chunk agentfd writes`,
    );
    expectBoundedFailure(s, second, message);
    expectIntact(s, first);
  });

  it('a chunk whose zstd data holds more than its claim (a second frame of 1 GiB) is stopped at the claim', { timeout: 120_000 }, async () => {
    const s = setup('bomb-frames');
    const { first, second, record } = await forgeChunk(s, (r) => Buffer.concat([r.payload, zstdZeros(GiB)]));
    expectBoundedFailure(s, second, new RegExp(`at offset ${record.offset} .*CHUNK\\): a zstd chunk decompresses to more than the 1048576 bytes recorded for it`));
    expectIntact(s, first);
  });
});
