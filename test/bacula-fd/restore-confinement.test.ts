/**
 * agentfd serve's restore under a where against someone who swaps a directory for a symlink while
 * the restore runs (Linux). The records are fed to receiveRestore directly, as a Storage Daemon
 * delivers them, and the swap happens between two records: after serve made and checked the
 * directory, before it writes into it again. Every later write into it (a file, the directory's
 * own record, the attributes set at the end) must be refused, with the restore's errors saying so,
 * and nothing may change where the link points. Both ways the kernel may be asked: openat2, and the
 * per-component openat walk of older kernels.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../src/bacula-fd/attributes/lstat.js';
import { receiveRestore } from '../../src/bacula-fd/transfer/restore.js';
import type { SdRecord } from '../../src/bacula-fd/transfer/storage-daemon.js';
import { useOpenat2 } from '../../src/platform/confined-target.js';
import { tempDir } from '../helpers/native.js';
import { attrRecord } from './records.js';

afterEach(() => useOpenat2(true));

/** A directory outside where, whose contents, mode and times must stay as they are. */
function outsideDir(root: string, name: string): { dir: string; unchanged: () => void } {
  const dir = path.join(root, name);
  mkdirSync(dir, { mode: 0o755 });
  utimesSync(dir, 1_000_000, 1_000_000);
  const before = statSync(dir);
  return {
    dir,
    unchanged: () => {
      const after = statSync(dir);
      expect(readdirSync(dir)).toEqual([]);
      expect((after.mode & 0o7777).toString(8)).toBe((before.mode & 0o7777).toString(8));
      expect(after.mtimeMs).toBe(before.mtimeMs);
    },
  };
}

/** Swap the restored directory `dir` for a symlink to `to`, as someone else could at any moment. */
function swap(dir: string, to: string): void {
  renameSync(dir, `${dir}.moved`);
  symlinkSync(to, dir);
}

describe.skipIf(process.platform !== 'linux')('serve restore under a where, a directory swapped for a symlink meanwhile', () => {
  for (const openat2 of [true, false]) {
    it(`refuses every later write through it and writes nothing outside (${openat2 ? 'openat2' : 'openat walk'})`, async () => {
      useOpenat2(openat2);
      const root = tempDir('serve-swap');
      const where = path.join(root, 'where');
      const outsideA = outsideDir(root, 'outside-a');
      const outsideB = outsideDir(root, 'outside-b');
      const restoredA = path.join(where, 'data', 'A');
      const restoredB = path.join(where, 'data', 'B');
      const file = (fi: number, name: string, text: string): SdRecord[] => [
        attrRecord(fi, FT.REG, name, { size: BigInt(text.length), mode: 0o100644 }),
        { fileIndex: fi, stream: STREAM.FILE_DATA, data: Buffer.from(text) },
      ];
      async function* records(): AsyncGenerator<SdRecord> {
        yield* file(1, '/data/A/f1', 'one\n');
        yield* file(2, '/data/B/g1', 'gee\n');
        yield attrRecord(3, FT.DIREND, '/data/B/', { mode: 0o040700, mtime: 2_000_000n });
        swap(restoredA, outsideA.dir); // A was made and checked for f1
        yield* file(4, '/data/A/f2', 'evil\n');
        yield attrRecord(5, FT.DIREND, '/data/A/', { mode: 0o040700, mtime: 2_000_000n });
        // B's record is done; its mode and times are set at the end of the restore, through whatever is there then.
        swap(restoredB, outsideB.dir);
      }
      const logs: string[] = [];
      const totals = await receiveRestore({ records: records(), where, log: (level, message) => logs.push(`${level}: ${message}`) });

      outsideA.unchanged();
      outsideB.unchanged();
      expect(readFileSync(path.join(`${restoredA}.moved`, 'f1'), 'utf8')).toBe('one\n');
      expect(readFileSync(path.join(`${restoredB}.moved`, 'g1'), 'utf8')).toBe('gee\n');
      expect(existsSync(path.join(`${restoredA}.moved`, 'f2'))).toBe(false);
      expect(lstatSync(restoredA).isSymbolicLink()).toBe(true);
      expect(totals.errors).toEqual([
        expect.stringMatching(/data\/A\/f2.*symbolic link.*never writes through/),
        expect.stringMatching(/data\/A is a symlink, and a restore under where never writes through or over it/),
        expect.stringMatching(/^Unable to set the attributes of ".*data\/B": .*symbolic link/),
      ]);
      expect(logs.filter((l) => l.startsWith('error: '))).toHaveLength(3);
    });
  }

  it('a file whose parent is swapped after its data gets its mode and times through its descriptor, and nothing outside changes', async () => {
    // The file's owner, mode and times are set through the descriptor its data went into (as
    // bacula-fd's fchmod/futimes), so a swap between its data and its end reaches only that file.
    const root = tempDir('serve-swap-attributes');
    const where = path.join(root, 'where');
    const outside = outsideDir(root, 'outside');
    const restoredA = path.join(where, 'data', 'A');
    async function* records(): AsyncGenerator<SdRecord> {
      yield attrRecord(1, FT.REG, '/data/A/f1', { size: 4n, mode: 0o100604, mtime: 3_000_000n });
      yield { fileIndex: 1, stream: STREAM.FILE_DATA, data: Buffer.from('one\n') };
      swap(restoredA, outside.dir); // f1 is open: its end (attributes, close) comes with the next record
      yield attrRecord(2, FT.REG, '/data/A/f2', { size: 5n });
      yield { fileIndex: 2, stream: STREAM.FILE_DATA, data: Buffer.from('evil\n') };
    }
    const totals = await receiveRestore({ records: records(), where, log: () => undefined });

    outside.unchanged();
    const f1 = statSync(path.join(`${restoredA}.moved`, 'f1'));
    expect([(f1.mode & 0o7777).toString(8), f1.mtimeMs / 1000, f1.size]).toEqual(['604', 3_000_000, 4]);
    expect(existsSync(path.join(`${restoredA}.moved`, 'f2'))).toBe(false);
    expect(totals.errors).toEqual([expect.stringMatching(/data\/A\/f2.*symbolic link.*never writes through/)]);
  });

  it('an in-place restore (where /) follows a symlinked directory of the system, as bacula-fd does', async () => {
    const root = tempDir('serve-inplace-link');
    const real = path.join(root, 'usr-lib');
    mkdirSync(real);
    symlinkSync(real, path.join(root, 'lib'));
    const totals = await receiveRestore({
      records: (async function* () {
        yield attrRecord(1, FT.REG, path.join(root, 'lib', 'x.so'), { size: 3n });
        yield { fileIndex: 1, stream: STREAM.FILE_DATA, data: Buffer.from('elf') };
      })(),
      where: '/',
      log: () => undefined,
    });
    expect(totals.errors).toEqual([]);
    expect(readFileSync(path.join(real, 'x.so'), 'utf8')).toBe('elf');
  });
});
