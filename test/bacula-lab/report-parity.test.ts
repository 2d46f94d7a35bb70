/**
 * No difference in the Director's job report between agentfd serve and the real bacula-fd, for
 * the FileSets the lab tests use: the same tree, through the same Director and SD, backed up by
 * each client with each FileSet (every digest, GZIP levels, LZO, sparse, onefs and a wild
 * exclusion); the report's file and byte counts, compression, error counts and termination
 * must be equal, field by field.
 *
 * One known difference, in GZIP FileSets' byte counts only (about 1% on text): bacula-fd
 * compresses a job's blocks one after the other on one zlib stream, reset between blocks
 * (deflateReset), and zlib's reset keeps some match-finder state, so each block's output depends
 * on every block before it in the job; agentfd compresses each 64 KiB block on its own, with
 * libdeflate where it was built (a valid zlib stream, a little smaller than zlib's), which both
 * cores can do at once. Both restore alike. The GZIP FileSets' byte counts, and the compression
 * the report computes from them, are therefore compared by how much they may differ.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab } from '../helpers/bacula-lab.js';

/** Each FileSet's Options line, by the name of the FileSet (and its job). */
const FILESETS: Record<string, string> = {
  ParityMD5: 'signature = MD5',
  ParitySHA1: 'signature = SHA1',
  ParitySHA256: 'signature = SHA256',
  ParitySHA512: 'signature = SHA512',
  ParityGzip6: 'signature = MD5; compression = GZIP6',
  ParityGzip9: 'signature = SHA1; compression = GZIP9',
  ParityLzo: 'signature = MD5; compression = LZO',
  ParitySparse: 'signature = MD5; sparse = yes',
  ParitySparseGzip: 'signature = SHA256; sparse = yes; compression = GZIP1',
  ParityExclude: 'signature = MD5; wildfile = "*.log"; exclude = yes',
};

/** FileSets whose compressed byte counts differ by zlib stream history (see above), at most 2%. */
const GZIP = new Set(['ParityGzip6', 'ParityGzip9', 'ParitySparseGzip']);
const BYTE_FIELDS = new Set(['FD Bytes Written', 'SD Bytes Written']);

/** The report lines compared: what the FD sent and how the job ended. */
const FIELDS = ['FD Files Written', 'SD Files Written', 'FD Bytes Written', 'SD Bytes Written', 'Software Compression', 'Non-fatal FD errors', 'SD Errors', 'FD termination status', 'SD termination status', 'Termination'];

let data: string;
const bacula = new BaculaLab('bacula-parity', {
  ports: { dir: 9281, fd: 9282, sd: 9283 },
  extraDirectorConf: (lab) =>
    Object.entries(FILESETS)
      .flatMap(([name, options]) => [
        'FileSet {', `  Name = "${name}"`, '  Include {', `    Options { ${options} }`, `    File = "${path.join(lab, 'data')}"`, '  }', '}',
        `Job { Name = "${name}"; JobDefs = "LabJobDefs"; FileSet = "${name}" }`,
      ])
      .join('\n'),
});

/** The compared fields of a job report, as "Field: value". */
function fields(report: string): string[] {
  return FIELDS.map((field) => {
    const line = new RegExp(`^\\s*${field}:\\s*(.*)$`, 'm').exec(report);
    return `${field}: ${line ? line[1]!.trim() : '(missing)'}`;
  });
}

/**
 * Two "Software Compression: 91.2% 11.4:1" lines whose compressed sizes (100% less the
 * percentage) differ by less than 2%, as the byte counts may; the ratio says the same again.
 */
function closeCompression(mine: string, theirs: string): boolean {
  const left = (line: string) => 100 - Number(/: ([\d.]+)%/.exec(line)?.[1] ?? NaN);
  return Math.abs(left(mine) / left(theirs) - 1) < 0.02;
}

/** The byte count of a "Field: 1,234 (1.2 KB)" line. */
function bytesOf(line: string): number {
  return Number(/: ([\d,]+)/.exec(line)![1]!.replace(/,/g, ''));
}

beforeAll(async () => {
  data = path.join(bacula.dir, 'data');
  mkdirSync(path.join(data, 'sub', 'deeper'), { recursive: true });
  writeFileSync(path.join(data, 'text.txt'), Array.from({ length: 40_000 }, (_, i) => `line ${i} of a text that compresses\n`).join(''));
  writeFileSync(path.join(data, 'random.bin'), randomBytes(3_000_017));
  writeFileSync(path.join(data, 'empty'), '');
  writeFileSync(path.join(data, 'app.log'), 'excluded by ParityExclude\n');
  writeFileSync(path.join(data, 'sub', 'deeper', 'small.txt'), 'small\n');
  linkSync(path.join(data, 'text.txt'), path.join(data, 'sub', 'hard-link'));
  symlinkSync('../text.txt', path.join(data, 'sub', 'link'));
  // A sparse file: data at its start, in its middle and at its end, holes between.
  const sparse = await open(path.join(data, 'sparse.img'), 'w');
  for (const at of [0, 9 * 1024 * 1024, 30 * 1024 * 1024 - 4096]) await sparse.write(randomBytes(4096), 0, 4096, at);
  await sparse.close();
  bacula.start();
}, 300_000);

afterAll(() => bacula.destroy());

describe("the Director's report: agentfd serve and the real bacula-fd", () => {
  it('are field for field the same for every FileSet', async () => {
    const ours = new Map<string, string[]>();
    await bacula.startServe();
    for (const name of Object.keys(FILESETS)) ours.set(name, fields(bacula.runJob(name).report));
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    const differences: string[] = [];
    for (const name of Object.keys(FILESETS)) {
      const theirs = fields(bacula.runJob(name).report);
      theirs.forEach((line, i) => {
        const mine = ours.get(name)![i]!;
        if (mine === line) return;
        if (GZIP.has(name) && BYTE_FIELDS.has(FIELDS[i]!) && Math.abs(bytesOf(mine) / bytesOf(line) - 1) < 0.02) return;
        if (GZIP.has(name) && FIELDS[i] === 'Software Compression' && closeCompression(mine, line)) return;
        differences.push(`${name}: agentfd "${mine}", bacula-fd "${line}"`);
      });
    }
    bacula.sh(['stop-real-fd']);
    expect(differences).toEqual([]);
    // The comparison compared something: every job wrote files and ended OK.
    for (const lines of ours.values()) expect(lines).toContain('Termination: Backup OK');
  }, 600_000);
});
