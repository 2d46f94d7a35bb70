/** restore-root.ts: the one guard a serve restore writes through. */
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RestoreRoot } from '../../../src/bacula-fd/transfer/restore/restore-root.js';
import { tempDir } from '../../helpers/native.js';

describe.skipIf(process.platform !== 'linux')('the restore root (restore/restore-root.ts)', () => {
  it('under a where: makes missing parents with the given mode and remembers them as made here', async () => {
    const where = path.join(tempDir('root-parents'), 'where');
    const root = await RestoreRoot.open(where);
    try {
      const target = root.target('/a/b/c');
      await root.parents(target, 0o700);
      expect((lstatSync(path.join(where, 'a', 'b')).mode & 0o777).toString(8)).toBe('700');
      expect([...root.made]).toEqual([path.join(root.root, 'a'), path.join(root.root, 'a', 'b')]);
      expect(() => root.target('/a/../../x')).toThrow();
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
      await root.parents(target, 0o755);
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
    await root.parents(target, 0o755);
    expect(await root.at(target, (p) => p)).toBe(target);
    await root.at(target, (p) => writeFile(p, 'x'));
    expect(existsSync(path.join(base, 'usr-lib', 'x'))).toBe(true);
  });
});
