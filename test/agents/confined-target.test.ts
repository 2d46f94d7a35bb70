/**
 * The confined restore primitive (src/platform/confined-target.ts) on real directories, both ways it
 * resolves: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) and the per-component
 * openat(O_NOFOLLOW | O_DIRECTORY) walk of kernels without openat2. Every call must refuse a path
 * through a symlink (planted before the call) and "..", create nothing outside, and work inside.
 */
import { closeSync, existsSync, lstatSync, readFileSync, readdirSync, symlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfinedError, ConfinedTarget, splitRelative, useOpenat2 } from '../../src/platform/confined-target.js';
import { tempDir } from '../helpers/native.js';

afterEach(() => useOpenat2(true));

describe.skipIf(process.platform !== 'linux')('ConfinedTarget', () => {
  for (const [way, openat2] of [['openat2', true], ['the openat walk', false]] as const) {
    it(`creates parents, files, links, renames and removes inside the target, and refuses a planted symlink for every call (${way})`, () => {
      useOpenat2(openat2);
      const root = path.join(tempDir('confined'), 'target');
      const outside = tempDir('confined-outside');
      const target = ConfinedTarget.open(root);
      try {
        const fd = target.openFile(['a', 'b', 'file.part'], 0, 0o640);
        writeSync(fd, 'hello');
        closeSync(fd);
        target.rename(['a', 'b', 'file.part'], ['a', 'b', 'file']);
        expect(readFileSync(path.join(root, 'a', 'b', 'file'), 'utf8')).toBe('hello');
        expect(lstatSync(path.join(root, 'a', 'b', 'file')).mode & 0o777).toBe(0o640 & ~process.umask());
        target.symlink(['a', 'link'], '/etc/hostname');
        target.mkdir(['a', 'dir'], 0o700);
        target.remove(['a', 'b', 'file']);
        target.remove(['a', 'b', 'missing']); // a missing file is fine
        expect(readdirSync(path.join(root, 'a')).sort()).toEqual(['b', 'dir', 'link']);

        symlinkSync(outside, path.join(root, 'planted'));
        const refused = (call: () => unknown) => {
          let error: unknown;
          try {
            call();
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(ConfinedError);
          expect((error as ConfinedError).kind).toBe('refused');
          expect((error as ConfinedError).message).toContain(`${root}/planted`);
        };
        refused(() => target.openFile(['planted', 'x'], 0, 0o600));
        refused(() => target.openFile(['planted', 'deeper', 'x'], 0, 0o600));
        refused(() => target.openFile(['planted'], 0, 0o600)); // the file itself is the link
        refused(() => target.mkdir(['planted', 'd'], 0o700));
        refused(() => target.symlink(['planted', 'l'], '/etc/passwd'));
        refused(() => target.rename(['a', 'link'], ['planted', 'moved']));
        refused(() => target.remove(['planted', 'x']));
        refused(() => target.checkDir(['planted']));
        refused(() => target.openDirForUpdate(['planted']));
        expect(readdirSync(outside)).toEqual([]);
        expect(() => splitRelative('a/../b')).toThrow(/not a relative path below the target/);
        expect(() => splitRelative('/etc/passwd')).toThrow(/not a relative path below the target/);
        expect(splitRelative('a\\b/c')).toEqual(['a\\b', 'c']); // a backslash is part of a name
        expect(existsSync(path.join(root, 'a', 'link'))).toBe(true); // the refused rename left it
      } finally {
        target.close();
      }
    });

    it(`createFile makes a new file in one call, EEXIST when anything is there, and refuses a path through a planted symlink (${way})`, () => {
      useOpenat2(openat2);
      const root = path.join(tempDir('confined-create'), 'target');
      const outside = tempDir('confined-create-outside');
      const target = ConfinedTarget.open(root);
      try {
        target.mkdir(['d'], 0o755);
        const fd = target.createFile(['d', 'new'], 0o640);
        writeSync(fd, 'data');
        closeSync(fd);
        expect(readFileSync(path.join(root, 'd', 'new'), 'utf8')).toBe('data');
        expect(lstatSync(path.join(root, 'd', 'new')).mode & 0o777).toBe(0o640 & ~process.umask());
        const codeOf = (call: () => unknown) => {
          try {
            call();
          } catch (error) {
            return error instanceof ConfinedError ? `${error.kind} ${error.code}` : String(error);
          }
          return 'created';
        };
        expect(codeOf(() => target.createFile(['d', 'new'], 0o600))).toBe('io EEXIST');
        // A symlink where the file goes is there: EEXIST, never followed to create its target.
        symlinkSync(path.join(outside, 'made'), path.join(root, 'd', 'link'));
        expect(codeOf(() => target.createFile(['d', 'link'], 0o600))).toBe('io EEXIST');
        symlinkSync(outside, path.join(root, 'planted'));
        expect(codeOf(() => target.createFile(['planted', 'x'], 0o600))).toMatch(/^refused (ELOOP|ENOTDIR|EXDEV)$/);
        expect(codeOf(() => target.createFile(['missing', 'x'], 0o600))).toBe('io ENOENT');
        expect(readdirSync(outside)).toEqual([]);
      } finally {
        target.close();
      }
    });
  }
});
