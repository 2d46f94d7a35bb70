/** set-attributes.ts: an entry's mode and times set through the root, and directories deepest first at the end. */
import { lstatSync, mkdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { readEntryRecord } from '../../../src/bacula-fd/transfer/restore/entry-record.js';
import { RestoreRoot } from '../../../src/bacula-fd/transfer/restore/restore-root.js';
import { DeferredDirectories, setAttributes } from '../../../src/bacula-fd/transfer/restore/set-attributes.js';
import { tempDir } from '../../helpers/native.js';
import { attrRecord } from '../records.js';

const statOf = (mode: number, mtime: bigint) => readEntryRecord(STREAM.UNIX_ATTRIBUTES, attrRecord(1, 3, '/x', { mode, mtime, atime: mtime }).data).stat;

describe.skipIf(process.platform !== 'linux')('attributes (restore/set-attributes.ts)', () => {
  it('sets a file\'s mode and times; a symlink\'s own times, never its target\'s', async () => {
    const base = tempDir('set-attributes');
    const root = await RestoreRoot.open(path.join(base, 'where'));
    try {
      const file = path.join(root.root, 'f');
      writeFileSync(file, 'x');
      await setAttributes(root, file, statOf(0o100604, 1_000_000n), false);
      expect((statSync(file).mode & 0o7777).toString(8)).toBe('604');
      expect(statSync(file).mtimeMs).toBe(1_000_000_000);
      const outside = path.join(base, 'outside');
      writeFileSync(outside, 'y');
      utimesSync(outside, 5_000, 5_000);
      const link = path.join(root.root, 'l');
      symlinkSync(outside, link);
      await setAttributes(root, link, statOf(0o120777, 2_000_000n), true);
      expect(lstatSync(link).mtimeMs).toBe(2_000_000_000);
      expect(statSync(outside).mtimeMs).toBe(5_000_000);
    } finally {
      root.close();
    }
  });

  it('sets the directories deepest first, so a parent keeps its saved time, and reports one that cannot be set', async () => {
    const root = await RestoreRoot.open(path.join(tempDir('deferred'), 'where'));
    try {
      const parent = path.join(root.root, 'p');
      mkdirSync(path.join(parent, 'c'), { recursive: true });
      const directories = new DeferredDirectories();
      directories.add(parent, statOf(0o040750, 1_000_000n), '');
      directories.add(path.join(parent, 'c'), statOf(0o040700, 2_000_000n), '');
      directories.add(path.join(root.root, 'gone'), statOf(0o040700, 2_000_000n), '');
      const problems: string[] = [];
      expect(await directories.apply(root, (m) => problems.push(m))).toBe(2);
      expect(statSync(parent).mtimeMs).toBe(1_000_000_000);
      expect((statSync(parent).mode & 0o7777).toString(8)).toBe('750');
      expect(problems).toEqual([expect.stringMatching(/^Unable to set the attributes of ".*gone": .*ENOENT/)]);
    } finally {
      root.close();
    }
  });
});
