/**
 * `[serve] gzip_like_bacula_fd = true` (transfer/backup/bacula-gzip.ts, platform/zlib.ts): a
 * backup's GZIP records are the bytes bacula-fd 9.6 makes, which are what the system's zlib gives
 * for filed/backup.c's calls: deflateInit(Z_DEFAULT_COMPRESSION) once per job; per file
 * deflateParams(level) while the stream is reset (total_in 0); per block deflate(Z_FINISH) into
 * the compression buffer, then deflateReset. The reference here is that call sequence written
 * out in Python (ctypes on libz.so.1), apart from agentfd's binding; the real bacula-fd's report
 * is compared in test/bacula-lab/report-parity.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { STREAM } from '../../src/bacula-fd/attributes/lstat.js';
import { parseFileSet } from '../../src/bacula-fd/fileset/fileset.js';
import { newTotals, sendBackup } from '../../src/bacula-fd/transfer/backup.js';
import { resetDeflater } from '../../src/platform/zlib.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/native.js';
import { recordingSd, sentAttributes, type Sent } from './backup/job.js';

/** filed/backup.c's calls on one z_stream, for blocks given as (file, level, data); prints each block's output. */
const BACULA_FD_SEQUENCE = String.raw`
import ctypes, struct, sys
z = ctypes.CDLL('libz.so.1')
class ZStream(ctypes.Structure):
    _fields_ = [('next_in', ctypes.c_void_p), ('avail_in', ctypes.c_uint), ('total_in', ctypes.c_ulong),
                ('next_out', ctypes.c_void_p), ('avail_out', ctypes.c_uint), ('total_out', ctypes.c_ulong),
                ('msg', ctypes.c_char_p), ('state', ctypes.c_void_p), ('zalloc', ctypes.c_void_p),
                ('zfree', ctypes.c_void_p), ('opaque', ctypes.c_void_p), ('data_type', ctypes.c_int),
                ('adler', ctypes.c_ulong), ('reserved', ctypes.c_ulong)]
z.zlibVersion.restype = ctypes.c_char_p
buf_size = 65536
compress_buf_size = max(buf_size + buf_size // 16 + 67 + 12, buf_size + (buf_size + 999) // 1000 + 30)
strm = ZStream()
assert z.deflateInit_(ctypes.byref(strm), -1, z.zlibVersion(), ctypes.sizeof(ZStream)) == 0
data = sys.stdin.buffer.read()
out = sys.stdout.buffer
cbuf = ctypes.create_string_buffer(compress_buf_size)
at, last_file = 0, None
while at < len(data):
    file, level, sparse, n = struct.unpack_from('>IBBI', data, at)
    at += 10
    block = ctypes.create_string_buffer(data[at:at + n], n)
    at += n
    if file != last_file and strm.total_in == 0:
        assert z.deflateParams(ctypes.byref(strm), level, 0) == 0
    last_file = file
    strm.next_in, strm.avail_in = ctypes.addressof(block), n
    strm.next_out, strm.avail_out = ctypes.addressof(cbuf), compress_buf_size - (8 if sparse else 0)
    assert z.deflate(ctypes.byref(strm), 4) == 1
    length = strm.total_out
    assert z.deflateReset(ctypes.byref(strm)) == 0
    out.write(struct.pack('>I', length) + cbuf.raw[:length])
`;

interface Block {
  file: number;
  level: number;
  sparse: boolean;
  plain: Buffer;
}

/** What bacula-fd's calls give for `blocks`, in their order (the Python reference). */
function baculaFdOutput(blocks: Block[]): Buffer[] {
  const input = Buffer.concat(blocks.flatMap((b) => {
    const head = Buffer.alloc(10);
    head.writeUInt32BE(b.file, 0);
    head.writeUInt8(b.level, 4);
    head.writeUInt8(b.sparse ? 1 : 0, 5);
    head.writeUInt32BE(b.plain.length, 6);
    return [head, b.plain];
  }));
  const output = execFileSync('python3', ['-c', BACULA_FD_SEQUENCE], { input, maxBuffer: 1 << 28 });
  const records: Buffer[] = [];
  for (let at = 0; at < output.length; ) {
    const length = output.readUInt32BE(at);
    records.push(output.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return records;
}

/** Compressible text that is not the same from block to block: words picked by a seeded generator. */
function text(bytes: number, seed: number): Buffer {
  const words = ['backup', 'volume', 'error', 'job', 'client', 'storage', 'the', 'of', '0', '17', 'path/to', 'OK'];
  let x = seed;
  let s = '';
  while (s.length < bytes) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    s += words[x % words.length]! + (x % 11 === 0 ? '\n' : ' ');
  }
  return Buffer.from(s.slice(0, bytes));
}

/**
 * A tree of three parts, each with its own Options: GZIP9; GZIP1 with sparse; GZIP6. Files of
 * several blocks, a short last block, incompressible data, a sparse file with holes.
 */
async function tree(): Promise<{ dirs: string[]; levels: number[] }> {
  const root = tempDir('gzip-like-bacula-fd');
  const dirs = ['nine', 'one-sparse', 'six'].map((name) => path.join(root, name));
  for (const dir of dirs) mkdirSync(dir);
  writeFileSync(path.join(dirs[0]!, 'log.txt'), text(200_000, 1));
  writeFileSync(path.join(dirs[0]!, 'random.bin'), randomBytes(150_000));
  writeFileSync(path.join(dirs[1]!, 'text.txt'), text(140_000, 2));
  const sparse = await open(path.join(dirs[1]!, 'sparse.img'), 'w');
  for (const at of [0, 1_000_000, 3_000_000 - 5000]) await sparse.write(text(5000, at), 0, 5000, at);
  await sparse.close();
  writeFileSync(path.join(dirs[2]!, 'a.txt'), text(70_000, 3));
  writeFileSync(path.join(dirs[2]!, 'small.txt'), 'small\n');
  return { dirs, levels: [9, 1, 6] };
}

/** A backup of the tree; the GZIP records sent, each with its file's level and its block. */
async function backup(gzipLikeBaculaFd: boolean) {
  const { dirs, levels } = await tree();
  const options = ['O MZ9', 'O MsZ1', 'O MZ6'];
  const fileset = parseFileSet(dirs.flatMap((dir, i) => ['I', options[i]!, 'N', `F ${dir}`, 'N']));
  const { sd, sent } = recordingSd();
  const totals = await sendBackup({ sd, fileset, since: null, isCancelled: () => false, log: () => undefined, gzipLikeBaculaFd }, newTotals());
  expect(totals.errors).toEqual([]);
  const levelOf = new Map(sentAttributes(sent).map((a) => [a.fileIndex, levels[dirs.findIndex((d) => a.fname.startsWith(`${d}/`))]!]));
  const records = sent.filter((s: Sent) => s.stream === STREAM.GZIP_DATA || s.stream === STREAM.SPARSE_GZIP_DATA).flatMap((s) =>
    s.frames.map((frame) => {
      const sparse = s.stream === STREAM.SPARSE_GZIP_DATA;
      const packed = sparse ? frame.subarray(8) : frame;
      return { packed, block: { file: s.fileIndex, level: levelOf.get(s.fileIndex)!, sparse, plain: inflateSync(packed) } };
    }),
  );
  return records;
}

describe('gzip_like_bacula_fd = true', () => {
  it("sends each GZIP record as bacula-fd's calls on the system's zlib make it: levels per file, sparse, many blocks", async () => {
    const records = await backup(true);
    // Every part was sent: three levels, sparse records, files of several blocks.
    expect(new Set(records.map((r) => r.block.level))).toEqual(new Set([9, 1, 6]));
    expect(records.filter((r) => r.block.sparse).length).toBeGreaterThan(3);
    expect(records.length).toBeGreaterThan(12);
    const reference = baculaFdOutput(records.map((r) => r.block));
    expect(reference).toHaveLength(records.length);
    const differing = records.flatMap((r, i) => (r.packed.equals(reference[i]!) ? [] : [`block ${i} of file ${r.block.file}: ${r.packed.length} bytes, bacula-fd's ${reference[i]!.length}`]));
    expect(differing).toEqual([]);
  });

  it("differs from serve's default, node:zlib's own zlib on each block, which restores the same but is not bacula-fd's bytes", async () => {
    const records = await backup(false);
    const reference = baculaFdOutput(records.map((r) => r.block));
    const sizes = (list: Buffer[]) => list.reduce((n, b) => n + b.length, 0);
    expect(records.filter((r, i) => !r.packed.equals(reference[i]!)).length).toBeGreaterThan(0);
    expect(sizes(records.map((r) => r.packed))).not.toBe(sizes(reference));
  });

  it('refuses to start serve where zlib cannot be loaded, saying which library and what to do', () => {
    const dir = tempDir('gzip-like-no-zlib');
    const config = path.join(dir, 'agentfd.toml');
    writeFileSync(config, ['[serve]', 'port = 1', 'gzip_like_bacula_fd = true', '[[serve.directors]]', 'name = "dir"', 'password = "pw"'].join('\n'));
    const missing = path.join(dir, 'libz.so.1');
    const result = runCli(['serve', '--config', config], { env: { AGENTFD_ZLIB_LIBRARY: missing } });
    expect(result.status).not.toBe(0);
    expect(result.stdout).not.toContain('listening on');
    expect(result.stderr).toContain(`gzip_like_bacula_fd = true needs the system's zlib, the library bacula-fd compresses with, and ${missing} cannot be loaded (`);
    expect(result.stderr).toContain('Install zlib (Debian: zlib1g), or on Windows set AGENTFD_ZLIB_LIBRARY to a zlib1.dll');
  });
});

describe("the system's zlib, reset between blocks (platform/zlib.ts)", () => {
  // A fact about zlib (1.2.13 here) worth pinning: deflateReset keeps the window's old bytes, but
  // nothing the output depends on, so bacula-fd's bytes are also each block's own deflate on a
  // fresh stream of the same zlib. What differs from serve's default is node:zlib's bundled zlib.
  it('gives each block the bytes a fresh stream of the same zlib gives it', () => {
    const stream = resetDeflater();
    const blocks = [text(65_536, 5), randomBytes(65_528), text(30_000, 6), text(65_536, 7), Buffer.alloc(65_536, 0x61)];
    try {
      for (const level of [1, 6, 9]) {
        for (const block of blocks) {
          const fresh = resetDeflater();
          const alone = fresh.block(block, level, 70_000);
          fresh.end();
          expect(stream.block(block, level, 70_000).equals(alone)).toBe(true);
        }
      }
    } finally {
      stream.end();
    }
  });

  it('throws, as bacula-fd fails its job, when a block does not fit the room given, and cannot be used after', () => {
    const stream = resetDeflater();
    try {
      expect(() => stream.block(randomBytes(10_000), 6, 5_000)).toThrow('Compression deflate error: 0');
      expect(() => stream.block(Buffer.from('x'), 6, 100)).toThrow('cannot go on');
    } finally {
      stream.end();
    }
  });
});
