/**
 * agentfd serve's backup and restore of the file kinds beyond plain files, directories and
 * symlinks, as bacula-fd 9.6 handles them (findlib/find_one.c, filed/backup.c, findlib/create_file.c):
 * hard links (FT_LNKSAVED with LinkFI), fifos and device nodes (FT_SPEC with rdev), readfifo
 * (FT_FIFO) and raw devices (FT_RAW), sparse streams (6 and 7, an 8-byte offset per frame, all-zero
 * blocks skipped), keepatime, noatime, mtimeonly, the Director's replace= modes, and the
 * confinement of everything a restore writes to `where`. The backup runs into a sink that keeps
 * what would go to the SD; the restore reads those records back as the SD would send them.
 * The same against a real Director, SD and bacula-fd is test/bacula-lab/file-types.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { sendBackup, type BackupRun } from '../../src/bacula-fd/transfer/backup.js';
import { mkfifo, mknod } from '../../src/bacula-fd/attributes/special-files.js';
import { FT, STREAM } from '../../src/bacula-fd/attributes/lstat.js';
import { receiveRestore, type ReplaceMode } from '../../src/bacula-fd/transfer/restore.js';
import type { SdRecord } from '../../src/bacula-fd/transfer/storage-daemon.js';
import { tempDir } from '../helpers/native.js';
import { filesetOf, recordingSd, sentAttributes, type Sent } from './backup/job.js';
import { attrRecord } from './records.js';

const IS_ROOT = process.getuid?.() === 0;
const BLOCK = 65_528; // 64 KiB frames less the 8-byte offset
const sockets: net.Server[] = [];
const scratchDirs: string[] = [];
afterAll(() => {
  sockets.forEach((s) => s.close());
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A scratch directory, removed after the file's tests. */
function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  scratchDirs.push(dir);
  return dir;
}

/** Back up `files` with the FileSet option letters `letters`; everything the SD would get. */
async function backup(files: string[], letters: string, extra: Partial<BackupRun> = {}) {
  const { sd, sent } = recordingSd();
  const logs: string[] = [];
  const totals = await sendBackup({ sd, fileset: filesetOf(letters, files), since: null, isCancelled: () => false, log: (level, m) => logs.push(`${level}: ${m}`), ...extra });
  const attributes = sentAttributes(sent);
  const byName = (fname: string) => attributes.find((a) => a.fname === fname)!;
  const streamsOf = (fileIndex: number) => sent.filter((s) => s.fileIndex === fileIndex && s.stream !== STREAM.UNIX_ATTRIBUTES);
  return { sent, logs, totals, attributes, byName, streamsOf };
}

/** The records a read session of that backup delivers: one per frame, as the SD sends them. */
function recordsOf(sent: Sent[]): SdRecord[] {
  return sent.flatMap((s) => s.frames.map((data) => ({ fileIndex: s.fileIndex, stream: s.stream, data })));
}

async function restore(records: SdRecord[], where: string, replace: ReplaceMode = 'a', fifoOpenTimeoutMs?: number) {
  const logs: string[] = [];
  const totals = await receiveRestore({
    records: (async function* () {
      yield* records;
    })(),
    where,
    replace,
    log: (level, m) => logs.push(`${level}: ${m}`),
    ...(fifoOpenTimeoutMs === undefined ? {} : { fifoOpenTimeoutMs }),
  });
  return { totals, logs };
}

const md5 = (data: Buffer) => createHash('md5').update(data).digest();

/** A file of `size` bytes: `data` at each offset, zeros elsewhere (holes, when made by seeking). */
async function sparseFile(p: string, size: number, pieces: [number, Buffer][]): Promise<Buffer> {
  const handle = await open(p, 'w');
  for (const [at, data] of pieces) await handle.write(data, 0, data.length, at);
  await handle.truncate(size);
  await handle.close();
  const whole = Buffer.alloc(size);
  for (const [at, data] of pieces) data.copy(whole, at);
  return whole;
}

function sparseRecord(fileIndex: number, offset: number, data: Buffer): SdRecord {
  const head = Buffer.alloc(8);
  head.writeBigUInt64BE(BigInt(offset));
  return { fileIndex, stream: STREAM.SPARSE_DATA, data: Buffer.concat([head, data]) };
}

describe('backup of hard links (FT_LNKSAVED)', () => {
  const root = scratch('bacula-links');
  const tree = path.join(root, 'tree');
  mkdirSync(path.join(tree, 'sub'), { recursive: true });
  writeFileSync(path.join(tree, 'a.txt'), 'linked content\n');
  linkSync(path.join(tree, 'a.txt'), path.join(tree, 'b.txt'));
  linkSync(path.join(tree, 'a.txt'), path.join(tree, 'sub', 'c.txt'));
  writeFileSync(path.join(tree, 'single.txt'), 'one link\n');

  it('sends the first name with its data, the others as FT_LNKSAVED with LinkFI, no data and the same digest', async () => {
    const { attributes, byName, streamsOf, totals } = await backup([tree], 'M');
    // The walk goes in directory order, as bacula-fd: whichever name comes first carries the data.
    const names = ['a.txt', 'b.txt', 'sub/c.txt'].map((n) => path.join(tree, n));
    const firstName = attributes.find((a) => names.includes(a.fname))!.fname;
    const first = byName(firstName);
    expect(first.type).toBe(FT.REG);
    expect(first.stat.linkFI).toBe(0);
    const firstStreams = streamsOf(first.fileIndex);
    expect(firstStreams.map((s) => s.stream)).toEqual([STREAM.FILE_DATA, STREAM.MD5_DIGEST]);
    for (const other of names.filter((n) => n !== firstName)) {
      const rec = byName(other);
      expect(rec.type).toBe(FT.LNKSAVED);
      expect(rec.link).toBe(firstName);
      expect(rec.stat.linkFI).toBe(first.fileIndex);
      expect(rec.stat.nlink).toBe(3n);
      const streams = streamsOf(rec.fileIndex);
      expect(streams.map((s) => s.stream)).toEqual([STREAM.MD5_DIGEST]);
      expect(streams[0]!.frames[0]).toEqual(md5(Buffer.from('linked content\n')));
    }
    expect(byName(path.join(tree, 'single.txt')).type).toBe(FT.REG);
    expect(totals.readBytes).toBe('linked content\n'.length + 'one link\n'.length);
  });

  it('sends every name as a file of its own with hardlinks = no (H)', async () => {
    const { attributes, streamsOf } = await backup([tree], 'MH');
    const files = attributes.filter((a) => a.fname.endsWith('.txt'));
    expect(files.map((a) => a.type)).toEqual([FT.REG, FT.REG, FT.REG, FT.REG]);
    for (const f of files) expect(streamsOf(f.fileIndex).map((s) => s.stream)).toEqual([STREAM.FILE_DATA, STREAM.MD5_DIGEST]);
  });

  it('skips a name it already sent when a File line repeats it', async () => {
    const a = path.join(tree, 'a.txt');
    const { attributes } = await backup([a, a, path.join(tree, 'b.txt')], '');
    expect(attributes.map((r) => [r.fname, r.type])).toEqual([[a, FT.REG], [path.join(tree, 'b.txt'), FT.LNKSAVED]]);
  });
});

describe('backup of fifos, devices and sockets', () => {
  const root = scratch('bacula-special');
  const tree = path.join(root, 'tree');
  mkdirSync(tree);
  mkfifo(path.join(tree, 'pipe'), 0o640);

  it('sends a fifo inside a directory as FT_SPEC, attributes only, even with readfifo', async () => {
    const { byName, streamsOf } = await backup([tree], 'Mr');
    const fifo = byName(path.join(tree, 'pipe'));
    expect(fifo.type).toBe(FT.SPEC);
    expect(fifo.stat.mode).toBe(0o010640);
    expect(streamsOf(fifo.fileIndex)).toEqual([]);
  });

  it('skips a socket, as bacula-fd does ("Socket file skipped")', async () => {
    const dir = path.join(root, 'with-socket');
    mkdirSync(dir);
    const server = net.createServer();
    sockets.push(server);
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'sock'), resolve));
    const { attributes, logs } = await backup([dir], '');
    expect(attributes.map((a) => a.fname)).toEqual([`${dir}/`]);
    expect(logs).toContain(`info: Socket file skipped: ${path.join(dir, 'sock')}`);
  });

  it.runIf(IS_ROOT)('sends a character device as FT_SPEC with its rdev (as root)', async () => {
    const dir = path.join(root, 'devices');
    mkdirSync(dir);
    const rdev = BigInt(statSync('/dev/null').rdev);
    mknod(path.join(dir, 'null'), 0o020666, rdev);
    const { byName } = await backup([dir], '');
    const dev = byName(path.join(dir, 'null'));
    expect(dev.type).toBe(FT.SPEC);
    expect(dev.stat.rdev).toBe(rdev);
    expect(dev.stat.mode & 0o170000).toBe(0o020000);
  });

  it('reads a fifo named by a File line with readfifo = yes (FT_FIFO): its data, no digest', async () => {
    const fifo = path.join(root, 'top-fifo');
    mkfifo(fifo, 0o600);
    const writer = spawn('sh', ['-c', `printf 'through the pipe' > '${fifo}'`]);
    const { byName, streamsOf } = await backup([fifo], 'Mr');
    writer.kill();
    const rec = byName(fifo);
    expect(rec.type).toBe(FT.FIFO);
    const streams = streamsOf(rec.fileIndex);
    expect(streams.map((s) => [s.stream, s.length])).toEqual([[STREAM.FILE_DATA, 0n]]);
    expect(Buffer.concat(streams[0]!.frames).toString()).toBe('through the pipe');
  });

  it('gives up on a readfifo fifo nobody writes to after the timeout, and goes on', async () => {
    const fifo = path.join(root, 'lonely-fifo');
    mkfifo(fifo, 0o600);
    const other = path.join(root, 'after.txt');
    writeFileSync(other, 'after\n');
    const started = Date.now();
    const { byName, streamsOf, totals } = await backup([fifo, other], 'r', { fifoOpenTimeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(totals.errors).toEqual([`Cannot open "${fifo}": no writer opened the fifo within 0.3 s (bacula-fd's limit too); start the writer first`]);
    expect(streamsOf(byName(fifo).fileIndex).map((s) => s.frames.length)).toEqual([0]);
    expect(byName(other).type).toBe(FT.REG);
  });

  it('without readfifo, a fifo named by a File line is FT_SPEC and never opened', async () => {
    const fifo = path.join(root, 'unread-fifo');
    mkfifo(fifo, 0o600);
    const { byName } = await backup([fifo], '');
    expect(byName(fifo).type).toBe(FT.SPEC);
  });
});

describe('sparse = yes (streams 6 and 7)', () => {
  const root = scratch('bacula-sparse');
  const file = path.join(root, 'disk.img');
  const head = Buffer.from('start of the file\n'.repeat(100));
  const middle = Buffer.alloc(5000, 0x41);
  const size = 20 * BLOCK + 123;
  let whole: Buffer;

  it('skips whole zero blocks before the last, prefixes each frame with its offset, and names stream 6 in every LStat', async () => {
    whole = await sparseFile(file, size, [[0, head], [7 * BLOCK + 10, middle]]);
    const { byName, streamsOf, totals } = await backup([root], 'M s');
    const rec = byName(file);
    expect(rec.stat.dataStream).toBe(STREAM.SPARSE_DATA);
    expect(byName(`${root}/`).stat.dataStream).toBe(STREAM.SPARSE_DATA); // the directory's LStat too
    const [data, digest] = streamsOf(rec.fileIndex);
    expect([data!.stream, data!.length]).toEqual([STREAM.SPARSE_DATA, BigInt(size)]);
    const offsets = data!.frames.map((f) => Number(f.readBigUInt64BE(0)));
    // Block 0 (head), block 7 (middle), and the last, short one (always sent, zeros or not).
    expect(offsets).toEqual([0, 7 * BLOCK, 20 * BLOCK]);
    expect(data!.frames.map((f) => f.length)).toEqual([8 + BLOCK, 8 + BLOCK, 8 + 123]);
    for (const frame of data!.frames) {
      const at = Number(frame.readBigUInt64BE(0));
      expect(frame.subarray(8).equals(whole.subarray(at, at + frame.length - 8))).toBe(true);
    }
    // Skipped blocks are neither digested nor counted as read, as in bacula-fd.
    const sentData = Buffer.concat(data!.frames.map((f) => f.subarray(8)));
    expect(digest!.frames[0]).toEqual(md5(sentData));
    expect(totals.readBytes).toBe(sentData.length);
  });

  it('sends the last whole block even when it is zeros, so the size comes back', async () => {
    const exact = path.join(root, 'exact', 'zeros.img');
    mkdirSync(path.dirname(exact));
    await sparseFile(exact, 3 * BLOCK, [[0, Buffer.from('x')]]);
    const { byName, streamsOf } = await backup([exact], 's');
    const frames = streamsOf(byName(exact).fileIndex)[0]!.frames;
    expect(frames.map((f) => Number(f.readBigUInt64BE(0)))).toEqual([0, 2 * BLOCK]);
  });

  it('with GZIP: stream 7, each frame the offset then an independent zlib stream of the block', async () => {
    const { byName, streamsOf } = await backup([file], 'Z6s');
    const rec = byName(file);
    expect(rec.stat.dataStream).toBe(STREAM.SPARSE_GZIP_DATA);
    const data = streamsOf(rec.fileIndex)[0]!;
    expect(data.stream).toBe(STREAM.SPARSE_GZIP_DATA);
    const restored = Buffer.alloc(size);
    for (const frame of data.frames) inflateSync(frame.subarray(8)).copy(restored, Number(frame.readBigUInt64BE(0)));
    expect(restored.equals(whole)).toBe(true);
  });

  it('restores the data at its offsets with holes between, the right size and content', async () => {
    const { sent } = await backup([file], 's');
    const where = path.join(root, 'restore');
    const { totals } = await restore(recordsOf(sent), where);
    expect(totals.errors).toEqual([]);
    const restored = path.join(where, file);
    expect(statSync(restored).size).toBe(size);
    expect(readFileSync(restored).equals(whole)).toBe(true);
    expect(statSync(restored).blocks * 512).toBeLessThan(size / 2);
  });

  it('restores stream 7 too', async () => {
    const { sent } = await backup([file], 'Z6s');
    const where = path.join(root, 'restore-gzip');
    await restore(recordsOf(sent), where);
    expect(readFileSync(path.join(where, file)).equals(whole)).toBe(true);
  });

  it('sets the size from the LStat when the last block did not come (ftruncate to st_size)', async () => {
    const where = path.join(root, 'restore-short');
    const { totals } = await restore(
      [attrRecord(1, FT.REG, '/data/short.img', { size: 1_000_000n, dataStream: STREAM.SPARSE_DATA }), sparseRecord(1, 4096, Buffer.from('middle'))],
      where,
    );
    expect(totals.errors).toEqual([]);
    const restored = readFileSync(path.join(where, 'data', 'short.img'));
    expect(restored.length).toBe(1_000_000);
    expect(restored.subarray(4096, 4102).toString()).toBe('middle');
    expect(restored.subarray(0, 4096).every((b) => b === 0)).toBe(true);
  });
});

describe('atime and incremental options', () => {
  const root = scratch('bacula-atime');
  const file = path.join(root, 'read-me.txt');
  writeFileSync(file, 'content to read\n');
  const old = new Date('2001-01-01T00:00:00Z');

  it('keepatime (k) puts the access time back after reading, and leaves the mtime exact', async () => {
    utimesSync(file, old, new Date('2020-05-05T05:05:05.123Z'));
    const before = statSync(file, { bigint: true });
    await backup([file], 'k');
    const after = statSync(file, { bigint: true });
    expect(after.atimeNs).toBe(before.atimeNs);
    expect(after.mtimeNs).toBe(before.mtimeNs);
  });

  it('noatime (K) reads without touching the access time', async () => {
    utimesSync(file, old, new Date('2020-05-05T05:05:05Z'));
    const before = statSync(file, { bigint: true });
    await backup([file], 'K');
    expect(statSync(file, { bigint: true }).atimeNs).toBe(before.atimeNs);
  });

  it('mtimeonly (m): an incremental ignores a newer ctime', async () => {
    const since = BigInt(Math.floor(Date.now() / 1000) - 60);
    utimesSync(file, old, old); // mtime long ago, ctime now
    const plain = await backup([file], '', { since });
    expect(plain.attributes.map((a) => a.fname)).toEqual([file]);
    const mtimeOnly = await backup([file], 'm', { since });
    expect(mtimeOnly.attributes).toEqual([]);
  });

  it('sends an empty file that is not world-readable as FT_REG (FT_REGE only when it is), without data', async () => {
    const dir = path.join(root, 'empty');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'private'), '');
    chmodSync(path.join(dir, 'private'), 0o600);
    writeFileSync(path.join(dir, 'public'), '');
    chmodSync(path.join(dir, 'public'), 0o644);
    const { byName, streamsOf } = await backup([dir], 'M');
    expect(byName(path.join(dir, 'private')).type).toBe(FT.REG);
    expect(byName(path.join(dir, 'public')).type).toBe(FT.REGE);
    expect(streamsOf(byName(path.join(dir, 'private')).fileIndex).map((s) => s.stream)).toEqual([STREAM.MD5_DIGEST]);
  });
});

describe('restore of hard links, fifos and devices', () => {
  const root = scratch('bacula-restore-kinds');
  const tree = path.join(root, 'tree');
  mkdirSync(path.join(tree, 'sub'), { recursive: true });
  writeFileSync(path.join(tree, 'a.txt'), 'shared\n');
  linkSync(path.join(tree, 'a.txt'), path.join(tree, 'sub', 'b.txt'));
  chmodSync(path.join(tree, 'a.txt'), 0o640);
  mkfifo(path.join(tree, 'pipe'), 0o600);
  chmodSync(path.join(tree, 'pipe'), 0o620); // past the umask
  if (IS_ROOT) mknod(path.join(tree, 'null'), 0o020666, BigInt(statSync('/dev/null').rdev));

  it('restores hard links as links of the restored first name, a fifo as a fifo, a device as a device (root)', async () => {
    const { sent } = await backup([tree], 'M');
    const where = path.join(root, 'restore');
    const { totals } = await restore(recordsOf(sent), where);
    expect(totals.errors).toEqual([]);
    const out = path.join(where, tree);
    const a = lstatSync(path.join(out, 'a.txt'));
    const b = lstatSync(path.join(out, 'sub', 'b.txt'));
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
    expect((a.mode & 0o7777).toString(8)).toBe('640');
    expect(readFileSync(path.join(out, 'sub', 'b.txt'), 'utf8')).toBe('shared\n');
    const pipe = lstatSync(path.join(out, 'pipe'));
    expect(pipe.isFIFO()).toBe(true);
    expect((pipe.mode & 0o7777).toString(8)).toBe('620');
    if (IS_ROOT) {
      const dev = lstatSync(path.join(out, 'null'));
      expect(dev.isCharacterDevice()).toBe(true);
      expect(dev.rdev).toBe(statSync('/dev/null').rdev);
    }
  });

  it('refuses a hard link whose first name resolves outside where, and writes nothing through a symlinked directory', async () => {
    const outside = path.join(root, 'outside');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret'), 'not yours\n');
    const where = path.join(root, 'restore-hostile');
    const { totals } = await restore(
      [
        attrRecord(1, FT.LNK, '/data/escape', { mode: 0o120777 }, outside),
        attrRecord(2, FT.LNKSAVED, '/data/grab', { linkFI: 9 }, '/data/escape/secret'),
        attrRecord(3, FT.REG, '/data/escape/planted', { size: 5n }),
        { fileIndex: 3, stream: STREAM.FILE_DATA, data: Buffer.from('evil\n') },
      ],
      where,
    );
    expect(readlinkSync(path.join(where, 'data', 'escape'))).toBe(outside);
    expect(existsSync(path.join(where, 'data', 'grab'))).toBe(false);
    expect(existsSync(path.join(outside, 'planted'))).toBe(false);
    expect(lstatSync(path.join(outside, 'secret')).nlink).toBe(1);
    expect(totals.errors).toHaveLength(2);
    expect(totals.errors[0]).toMatch(/^Could not hard link .*grab -> \/data\/escape\/secret: its first name "\/data\/escape\/secret" resolves to .*outside where/);
    expect(totals.errors[1]).toMatch(/escape is a symlink, and a restore under where never writes through or over it/);
  });

  it('says so when the first name of a hard link was not restored', async () => {
    const where = path.join(root, 'restore-missing');
    const { totals } = await restore([attrRecord(1, FT.LNKSAVED, '/data/second', { linkFI: 7 }, '/data/first')], where);
    expect(totals.errors).toEqual([expect.stringMatching(/^Could not hard link .*second -> \/data\/first: its first name "\/data\/first" was not restored at .* \(ENOENT\)/)]);
  });

  it('does not restore a socket (as bacula-fd), but counts it', async () => {
    const where = path.join(root, 'restore-socket');
    const { totals, logs } = await restore([attrRecord(1, FT.SPEC, '/data/sock', { mode: 0o140755 })], where);
    expect(totals.files).toBe(1);
    expect(existsSync(path.join(where, 'data', 'sock'))).toBe(false);
    expect(logs.some((l) => l.includes('Socket /data/sock is not restored'))).toBe(true);
  });

  it('writes FT_FIFO data into the restored fifo for its reader', async () => {
    const where = path.join(root, 'restore-fifo');
    const target = path.join(where, 'data', 'feed');
    const out = path.join(root, 'fifo-out.txt');
    const reader = spawn('sh', ['-c', `while [ ! -p '${target}' ]; do sleep 0.02; done; cat '${target}' > '${out}'`]);
    const done = new Promise((resolve) => reader.on('exit', resolve));
    const { totals } = await restore(
      [attrRecord(1, FT.FIFO, '/data/feed', { mode: 0o010600 }), { fileIndex: 1, stream: STREAM.FILE_DATA, data: Buffer.from('piped back\n') }],
      where,
    );
    await done;
    expect(totals.errors).toEqual([]);
    expect(readFileSync(out, 'utf8')).toBe('piped back\n');
  });

  it('gives up on an FT_FIFO nobody reads after the timeout', async () => {
    const where = path.join(root, 'restore-fifo-alone');
    const { totals } = await restore(
      [attrRecord(1, FT.FIFO, '/data/feed', { mode: 0o010600 }), { fileIndex: 1, stream: STREAM.FILE_DATA, data: Buffer.from('lost\n') }],
      where,
      'a',
      300,
    );
    expect(totals.errors).toEqual([expect.stringMatching(/feed.*no reader opened the fifo within 0.3 s/)]);
    expect(lstatSync(path.join(where, 'data', 'feed')).isFIFO()).toBe(true);
  });
});

describe('replace= (always, ifnewer, ifolder, never)', () => {
  const root = scratch('bacula-replace');
  const backupTime = BigInt(Math.floor(new Date('2022-02-02T00:00:00Z').getTime() / 1000));
  const records = () => [
    attrRecord(1, FT.REG, '/data/file.txt', { size: 4n, mtime: backupTime }),
    { fileIndex: 1, stream: STREAM.FILE_DATA, data: Buffer.from('new\n') },
  ];
  const prepare = (name: string, mtime: Date) => {
    const where = path.join(root, name);
    mkdirSync(path.join(where, 'data'), { recursive: true });
    writeFileSync(path.join(where, 'data', 'file.txt'), 'existing\n');
    utimesSync(path.join(where, 'data', 'file.txt'), mtime, mtime);
    return where;
  };
  const older = new Date('2020-01-01T00:00:00Z');
  const newer = new Date('2024-01-01T00:00:00Z');
  const content = (where: string) => readFileSync(path.join(where, 'data', 'file.txt'), 'utf8');

  it.each([
    ['a', 'older', 'new\n'],
    ['a', 'newer', 'new\n'],
    ['w', 'older', 'new\n'],
    ['w', 'newer', 'existing\n'],
    ['o', 'older', 'existing\n'],
    ['o', 'newer', 'new\n'],
    ['n', 'older', 'existing\n'],
    ['n', 'newer', 'existing\n'],
  ] as const)('replace=%s over a file %s than the backup leaves %j', async (mode, age, expected) => {
    const mtime = age === 'older' ? older : newer;
    const where = prepare(`${mode}-${age}`, mtime);
    const { totals, logs } = await restore(records(), where, mode);
    expect(totals.errors).toEqual([]);
    expect(totals.files).toBe(1); // a skipped file counts, as in bacula-fd
    expect(content(where)).toBe(expected);
    if (expected === 'existing\n') expect(logs.some((l) => /File skipped\. (Not newer|Not older|Already exists): /.test(l))).toBe(true);
  });

  it('replaces a symlink at a file name by a new file, never writing through it', async () => {
    const where = path.join(root, 'over-symlink');
    mkdirSync(path.join(where, 'data'), { recursive: true });
    const victim = path.join(root, 'victim.txt');
    writeFileSync(victim, 'untouched\n');
    symlinkSync(victim, path.join(where, 'data', 'file.txt'));
    const { totals } = await restore(records(), where, 'a');
    expect(totals.errors).toEqual([]);
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(lstatSync(path.join(where, 'data', 'file.txt')).isFile()).toBe(true);
    expect(content(where)).toBe('new\n');
  });

  it('replace=never still sets the attributes of a directory the restore made', async () => {
    const where = path.join(root, 'never-dirs');
    const { totals } = await restore(
      [...records(), attrRecord(2, FT.DIREND, '/data/', { mode: 0o040705, mtime: backupTime })],
      where,
      'n',
    );
    expect(totals.errors).toEqual([]);
    const dir = statSync(path.join(where, 'data'));
    expect((dir.mode & 0o7777).toString(8)).toBe('705');
    expect(Math.floor(dir.mtimeMs / 1000)).toBe(Number(backupTime));
  });
});

describe.runIf(IS_ROOT && spawnSync('losetup', ['--version']).status === 0)('raw block devices (FT_RAW)', () => {
  it('reads a block device named by a File line, and restores its data under where as an image file', async () => {
    const root = scratch('bacula-raw');
    const image = path.join(root, 'backing.img');
    const content = Buffer.alloc(256 * 1024);
    content.write('raw device data', 70_000);
    writeFileSync(image, content);
    const attach = spawnSync('losetup', ['-f', '--show', image], { encoding: 'utf8' });
    if (attach.status !== 0) return; // no free loop device here
    const device = attach.stdout.trim();
    try {
      const { byName, streamsOf, sent } = await backup([device], 'Ms');
      const rec = byName(device);
      expect(rec.type).toBe(FT.RAW);
      const [data, digest] = streamsOf(rec.fileIndex);
      // Size 0 in the LStat: every zero block is skipped, the last one too.
      expect(data!.frames.map((f) => Number(f.readBigUInt64BE(0)))).toEqual([BLOCK]);
      expect(digest!.stream).toBe(STREAM.MD5_DIGEST);
      const where = path.join(root, 'restore');
      const { logs } = await restore(recordsOf(sent), where);
      expect(logs.some((l) => l.includes('restored under where as an image file'))).toBe(true);
      const restored = readFileSync(path.join(where, device));
      expect(restored.subarray(70_000, 70_015).toString()).toBe('raw device data');
    } finally {
      spawnSync('losetup', ['-d', device]);
    }
  });
});

describe('prelinks (add where to absolute symlink targets)', () => {
  it('prefixes absolute targets with where when the Director asks, and leaves relative ones', async () => {
    const root = scratch('prelinks');
    for (const prefixLinks of [true, false]) {
      const where = path.join(root, `where-${prefixLinks}`);
      const totals = await receiveRestore({
        records: (async function* () {
          yield attrRecord(1, FT.LNK, '/data/abs', { mode: 0o120777 }, '/data/target.txt');
          yield attrRecord(2, FT.LNK, '/data/rel', { mode: 0o120777 }, 'target.txt');
        })(),
        where,
        prefixLinks,
        log: () => undefined,
      });
      expect(totals.errors).toEqual([]);
      expect(readlinkSync(path.join(where, 'data', 'abs'))).toBe(prefixLinks ? path.join(where, 'data', 'target.txt') : '/data/target.txt');
      expect(readlinkSync(path.join(where, 'data', 'rel'))).toBe('target.txt');
    }
  });
});

describe('File entries that cannot be read', () => {
  it('reports a File entry that does not exist, and saves the others', async () => {
    const root = scratch('bacula-missing');
    writeFileSync(path.join(root, 'here.txt'), 'here\n');
    const missing = path.join(root, 'not-there');
    const { totals, attributes } = await backup([missing, path.join(root, 'here.txt')], 'M');
    expect(totals.errors).toEqual([expect.stringMatching(new RegExp(`^Could not stat "${missing}": .*ENOENT`))]);
    expect(attributes.map((a) => a.fname)).toEqual([path.join(root, 'here.txt')]);
  });
});
