/**
 * agentfd serve's Windows forms (src/bacula-fd/attributes/windows.ts), checked on Linux with the
 * platform as a parameter: the names sent to the SD, the LStat mode of directories, where a restore
 * puts a name, and a Windows FD's attribsEx; plus a restore on Linux of records a Windows bacula-fd
 * writes (stream 5), which must come back as ordinary files.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FT, STREAM, encodeAttributes, encodeLStat, type BaculaStat } from '../../src/bacula-fd/attributes/lstat.js';
import { receiveRestore, restorePath } from '../../src/bacula-fd/transfer/restore.js';
import type { SdRecord } from '../../src/bacula-fd/transfer/storage-daemon.js';
import { isUnsupported } from '../../src/bacula-fd/attributes/xattr.js';
import { baculaName, childName, decodeWindowsAttribs, encodeWindowsAttribs, lstatMode, restoreTarget } from '../../src/bacula-fd/attributes/windows.js';

describe('names sent to the SD', () => {
  it('on Windows: / separators, the drive first, as a Windows bacula-fd', () => {
    expect(baculaName('Z:\\tmp\\a b\\c.txt', true)).toBe('Z:/tmp/a b/c.txt');
    expect(baculaName('Z:/tmp/x', true)).toBe('Z:/tmp/x');
    expect(childName('Z:/tmp/root', 'name with spaces.txt', true)).toBe('Z:/tmp/root/name with spaces.txt');
    expect(childName('C:/', 'Users', true)).toBe('C:/Users');
  });

  it('on Linux: unchanged (path.join, as before)', () => {
    expect(baculaName('/tmp/a\\b', false)).toBe('/tmp/a\\b');
    expect(childName('/tmp/root/', 'a', false)).toBe('/tmp/root/a');
    expect(childName('/tmp/root', 'a\\b', false)).toBe('/tmp/root/a\\b');
  });
});

describe('LStat mode', () => {
  it('a Windows directory gets x where it has r; files and Linux modes are kept', () => {
    expect(lstatMode(0o40666, true)).toBe(0o40777);
    expect(lstatMode(0o40444, true)).toBe(0o40555);
    expect(lstatMode(0o100666, true)).toBe(0o100666);
    expect(lstatMode(0o40700, false)).toBe(0o40700);
  });
});

describe('restore paths', () => {
  it('on Windows under a where: the drive colon becomes a separator (build_attr_output_fnames)', () => {
    expect(restoreTarget('Z:\\tmp\\restore', 'Z:/tmp/root/a b.txt', true)).toBe('Z:\\tmp\\restore\\Z\\tmp\\root\\a b.txt');
    expect(restoreTarget('C:\\r', 'C:/', true)).toBe('C:\\r\\C');
    // A name from a Linux client goes under where as it is.
    expect(restoreTarget('C:\\r', '/home/ann/x', true)).toBe('C:\\r\\home\\ann\\x');
  });

  it('on Windows in place: the name itself, a Linux name on the current drive', () => {
    expect(restoreTarget('', 'C:/Users/ann/x.txt', true)).toBe('C:\\Users\\ann\\x.txt');
    expect(restoreTarget('/', '/home/ann', true)).toBe('\\home\\ann');
  });

  it('on Windows: refuses a component that would not name one entry there, and ..', () => {
    expect(() => restoreTarget('C:\\r', '/home/a\\..\\..\\evil', true)).toThrow(/separator/);
    expect(() => restoreTarget('C:\\r', '/home/a:b', true)).toThrow(/alternate data stream/);
    expect(() => restoreTarget('C:\\r', 'C:/x/../../y', true)).toThrow(/"\.\."/);
  });

  it('on Linux: unchanged, a Windows name kept with its colon', () => {
    expect(restorePath('/tmp/r', 'Z:/tmp/root/a', false)).toBe('/tmp/r/Z:/tmp/root/a');
    expect(restorePath('', '/etc/x', false)).toBe('/etc/x');
    expect(restorePath('/tmp/r', '/a\\b', false)).toBe('/tmp/r/a\\b');
    expect(() => restorePath('/tmp/r', '/a/../b', false)).toThrow(/"\.\."/);
  });
});

describe('ACLs and xattrs off Linux', () => {
  it("src/platform/libc.ts's ENOSYS (Windows) counts as a filesystem without them, not as a file's error", () => {
    expect(isUnsupported(Object.assign(new Error('x'), { code: 'ENOSYS' }))).toBe(true);
    expect(isUnsupported(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe(false);
  });
});

describe("a Windows FD's attribsEx", () => {
  it('round-trips: attributes, FILETIMEs, size high and low', () => {
    const attribs = { attributes: 0x21, birthtimeNs: 1_600_000_000_123_456_700n, atimeNs: 1_700_000_000_000_000_000n, mtimeNs: 1_650_000_000_987_654_300n, size: 0x1_0000_0005n };
    const text = encodeWindowsAttribs(attribs);
    expect(text.split(' ')).toHaveLength(6);
    expect(decodeWindowsAttribs(text)).toEqual(attribs);
  });

  it("a Unix FD's empty attribsEx is not one", () => {
    expect(decodeWindowsAttribs('')).toBeNull();
    expect(decodeWindowsAttribs('A B')).toBeNull();
  });
});

describe('restoring records a Windows bacula-fd wrote (stream 5) on Linux', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('restores them as ordinary files: data, and the LStat time; attribsEx is ignored off Windows', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'agentfd-win-records-'));
    const stat: BaculaStat = {
      dev: 0n, ino: 0n, mode: 0o100777, nlink: 1n, uid: 0, gid: 0, rdev: 0n, size: 5n, blksize: 0n, blocks: 0n,
      atime: 1_600_000_000n, mtime: 1_600_000_000n, ctime: 1_600_000_000n, linkFI: 0, flags: 0, dataStream: STREAM.FILE_DATA,
    };
    const attribsEx = encodeWindowsAttribs({ attributes: 0x20, birthtimeNs: 0n, atimeNs: 1_600_000_000n * 1_000_000_000n, mtimeNs: 1_600_000_000n * 1_000_000_000n, size: 5n });
    const records: SdRecord[] = [
      { fileIndex: 1, stream: STREAM.UNIX_ATTRIBUTES_EX, data: encodeAttributes({ fileIndex: 1, type: FT.REG, fname: 'C:/data/a.txt', lstat: encodeLStat(stat), link: '', attribsEx, deltaSeq: 0 }) },
      { fileIndex: 1, stream: STREAM.FILE_DATA, data: Buffer.from('hello') },
    ];
    const totals = await receiveRestore({ records: (async function* () { yield* records; })(), where: dir, log: () => undefined });
    expect(totals.errors).toEqual([]);
    expect(totals.files).toBe(1);
    const restored = path.join(dir, 'C:', 'data', 'a.txt');
    expect(readFileSync(restored, 'utf8')).toBe('hello');
  });
});
