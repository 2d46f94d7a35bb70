/**
 * The gzip codec compresses with libdeflate (agentfd's addon) where libdeflate-dev is installed, as
 * CI installs it, and its chunks are standard gzip: node:zlib, the gzip tool and older agentfd
 * releases decompress them. Corrupt or mislabelled chunks are refused, never returned short.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CODEC_IDS, compressChunk, decompressChunk, gzipEngine } from '../../src/pipeline/codecs.js';
import { skipNote } from '../helpers/debian.js';

/** Text-like bytes (compressible) of `n` bytes. */
function logLines(n: number): Buffer {
  const lines: string[] = [];
  for (let i = 0, length = 0; length < n; i++) {
    const line = `2026-11-26 12:00:${String(i % 60).padStart(2, '0')} INFO [worker-${i % 7}] req=${(i * 7919) % 100000} status=200 took=${i % 97}ms\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, n);
}

/**
 * libdeflate is built in (binding.gyp) only where its header was there at build time, so it is not
 * installed on first use here: that would need a rebuild under the running tests.
 */
const NO_LIBDEFLATE = existsSync('/usr/include/libdeflate.h')
  ? null
  : 'libdeflate-dev is not installed, so gzip uses node:zlib: apt-get install libdeflate-dev, then npm run build:native, to run it';
if (NO_LIBDEFLATE) process.stderr.write(`agentfd tests: skipped: ${NO_LIBDEFLATE}\n`);

describe('gzip codec', () => {
  it.skipIf(NO_LIBDEFLATE !== null)(`uses libdeflate where libdeflate-dev is installed${skipNote(NO_LIBDEFLATE)}`, () => {
    expect(gzipEngine()).toBe('libdeflate');
  });

  it('writes standard gzip that node:zlib and the gzip tool decompress, at every level', () => {
    const plain = logLines(300_000);
    for (const level of [1, 6, 9]) {
      const packed = compressChunk(plain, { codec: 'gzip', level });
      expect(packed.length).toBeLessThan(plain.length / 3);
      expect(gunzipSync(packed).equals(plain)).toBe(true);
      expect(Buffer.from(decompressChunk(packed, CODEC_IDS.gzip, plain.length)).equals(plain)).toBe(true);
      expect(execFileSync('gzip', ['-dc'], { input: packed }).equals(plain)).toBe(true);
    }
  });

  it('is no larger than node:zlib at the same level on text', () => {
    const plain = logLines(1024 * 1024);
    const ours = compressChunk(plain, { codec: 'gzip', level: 6 });
    const zlib = gzipSync(plain, { level: 6 });
    expect(ours.length).toBeLessThanOrEqual(Math.ceil(zlib.length * 1.02));
  });

  it('refuses a chunk that decompresses to another length, or does not decompress', () => {
    const plain = logLines(50_000);
    const packed = compressChunk(plain, { codec: 'gzip', level: 6 });
    expect(() => decompressChunk(packed, CODEC_IDS.gzip, plain.length - 1)).toThrow(/E_CORRUPT_DATA|decompress/);
    const broken = Buffer.from(packed);
    broken[broken.length >> 1]! ^= 0xff;
    expect(() => decompressChunk(broken, CODEC_IDS.gzip, plain.length)).toThrow();
  });
});
