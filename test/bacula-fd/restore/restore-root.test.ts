/** restore-root.ts: the one guard a serve restore writes through. */
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RestoreRoot } from '../../../src/bacula-fd/transfer/restore/restore-root.js';
import { tempDir } from '../../helpers/native.js';

const FILE = { mode: 0o100644, uid: 0, gid: 0, directory: false };
const modeOf = (p: string) => (lstatSync(p).mode & 0o7777).toString(8);
const umask = () => process.umask();

describe.skipIf(process.platform !== 'linux')('the restore root (restore/restore-root.ts)', () => {
  it('under a where: makes a file\'s missing parents as makepath does, and remembers them as made here', async () => {
    const where = path.join(tempDir('root-parents'), 'where');
    mkdirSync(where);
    const root = await RestoreRoot.open(where);
    try {
      const target = root.target('/a/b/c');
      await root.parents(target, { mode: 0o100640, uid: 4321, gid: 5432, directory: false });
      // The outer ones 0777 less the umask; the nearest the file's mode plus u+wx, and its owner.
      expect(modeOf(path.join(where, 'a'))).toBe((0o777 & ~umask()).toString(8));
      expect(modeOf(path.join(where, 'a', 'b'))).toBe('740');
      if (process.getuid?.() === 0) expect(lstatSync(path.join(where, 'a', 'b'))).toMatchObject({ uid: 4321, gid: 5432 });
      expect(lstatSync(path.join(where, 'a')).uid).toBe(process.getuid?.());
      expect([...root.made]).toEqual([path.join(root.root, 'a'), path.join(root.root, 'a', 'b')]);
      expect(() => root.target('/a/../../x')).toThrow();
      // A parent that is there is left as it is.
      await root.parents(root.target('/a/b/d'), { mode: 0o100600, uid: 0, gid: 0, directory: false });
      expect(modeOf(path.join(where, 'a', 'b'))).toBe('740');
    } finally {
      root.close();
    }
  });

  it('under a where: a directory\'s missing parents, and the where made at open, get its mode plus u+wx', async () => {
    const where = path.join(tempDir('root-dir-parents'), 'new', 'where');
    const root = await RestoreRoot.open(where);
    try {
      await root.parents(root.target('/a/b/'), { mode: 0o040705, uid: 4321, gid: 5432, directory: true });
      for (const dir of [path.dirname(where), where, path.join(where, 'a')]) expect(modeOf(dir)).toBe('705');
      expect(existsSync(path.join(where, 'a', 'b'))).toBe(false); // the directory itself is create-entry's
      // Only the first entry finds the where made: the next file's parents are its own.
      await root.parents(root.target('/c/f'), { mode: 0o100600, uid: 0, gid: 0, directory: false });
      expect(modeOf(where)).toBe('705');
      expect(modeOf(path.join(where, 'c'))).toBe('700');
    } finally {
      root.close();
    }
  });

  it('under a where: a checked parent swapped for a symlink is refused by the next call, which names the entry', async () => {
    const base = tempDir('root-swap');
    const outside = path.join(base, 'outside');
    mkdirSync(outside);
    const root = await RestoreRoot.open(path.join(base, 'where'));
    try {
      const target = root.target('/d/file');
      await root.parents(target, FILE);
      renameSync(path.join(root.root, 'd'), path.join(root.root, 'd.moved'));
      symlinkSync(outside, path.join(root.root, 'd'));
      await expect(root.at(target, (p) => writeFile(p, 'x'))).rejects.toMatchObject({ code: 'E_RESTORE_PATH', message: expect.stringContaining(`${root.root}/d/file:`) });
      await expect(root.self(path.join(root.root, 'd'), () => 'reached')).rejects.toMatchObject({ code: 'E_RESTORE_PATH' });
      expect(readdirSync(outside)).toEqual([]);
    } finally {
      root.close();
    }
  });

  it('under a where: an error of a call names the entry, not the /proc path it was made through', async () => {
    const root = await RestoreRoot.open(path.join(tempDir('root-names'), 'where'));
    try {
      const target = root.target('/f');
      writeFileSync(target, 'there');
      await expect(root.at(target, (p) => writeFile(p, 'x', { flag: 'wx' }))).rejects.toThrow(`EEXIST: file already exists, open '${target}'`);
    } finally {
      root.close();
    }
  });

  it('in place: the path as it is, symlinked directories of the system followed', async () => {
    const base = tempDir('root-inplace');
    mkdirSync(path.join(base, 'usr-lib'));
    symlinkSync(path.join(base, 'usr-lib'), path.join(base, 'lib'));
    const root = await RestoreRoot.open('/');
    const target = root.target(path.join(base, 'lib', 'x'));
    await root.parents(target, FILE);
    expect(await root.at(target, (p) => p)).toBe(target);
    await root.at(target, (p) => writeFile(p, 'x'));
    expect(existsSync(path.join(base, 'usr-lib', 'x'))).toBe(true);
  });
});
