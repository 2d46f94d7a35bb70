/** create-entry.ts and hard-link.ts: one entry made as create_file makes it, under a real where. */
import { lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { createEntry, type CreateContext } from '../../../src/bacula-fd/transfer/restore/create-entry.js';
import { readEntryRecord } from '../../../src/bacula-fd/transfer/restore/entry-record.js';
import { restoreHardLink } from '../../../src/bacula-fd/transfer/restore/hard-link.js';
import { RestoreRoot } from '../../../src/bacula-fd/transfer/restore/restore-root.js';
import { DeferredDirectories } from '../../../src/bacula-fd/transfer/restore/set-attributes.js';
import type { ReplaceMode } from '../../../src/bacula-fd/transfer/restore/replace.js';
import { tempDir } from '../../helpers/native.js';
import { attrRecord } from '../records.js';

async function context(replace: ReplaceMode = 'a', prefixLinks = false): Promise<CreateContext & { logs: string[] }> {
  const where = path.join(tempDir('create-entry'), 'where');
  const logs: string[] = [];
  return { root: await RestoreRoot.open(where), replace, where, prefixLinks, directories: new DeferredDirectories(), log: (_l, m) => logs.push(m), logs };
}

const entry = (type: number, fname: string, stat = {}, link = '') => readEntryRecord(STREAM.UNIX_ATTRIBUTES, attrRecord(1, type, fname, stat, link).data);

describe.skipIf(process.platform !== 'linux')('creating one entry (restore/create-entry.ts)', () => {
  it('opens a new regular file for its data, its parents made', async () => {
    const ctx = await context();
    const target = ctx.root.target('/a/b/f');
    const created = await createEntry(ctx, entry(FT.REG, '/a/b/f'), target);
    expect(created.restored).toBe(false);
    await created.file!.handle.write(Buffer.from('hi'), 0, 2, 0);
    await created.file!.handle.close();
    expect(readFileSync(target, 'utf8')).toBe('hi');
    ctx.root.close();
  });

  it('keeps an entry replace=never finds, counts it, and says why', async () => {
    const ctx = await context('n');
    const target = ctx.root.target('/f');
    writeFileSync(target, 'old');
    expect(await createEntry(ctx, entry(FT.REG, '/f'), target)).toEqual({ file: null, restored: true });
    expect(readFileSync(target, 'utf8')).toBe('old');
    expect(ctx.logs).toEqual([`File skipped. Already exists: ${target}`]);
    ctx.root.close();
  });

  it('makes a symlink, with where in front of an absolute target under prelinks', async () => {
    const ctx = await context('a', true);
    const target = ctx.root.target('/l');
    expect(await createEntry(ctx, entry(FT.LNK, '/l', { mode: 0o120777 }, '/etc/x'), target)).toEqual({ file: null, restored: true });
    expect(readlinkSync(target)).toBe(path.join(ctx.where, '/etc/x'));
    ctx.root.close();
  });

  it('leaves a directory\'s attributes for the end, and refuses a symlink at its name', async () => {
    const ctx = await context();
    const dir = ctx.root.target('/d');
    expect(await createEntry(ctx, entry(FT.DIREND, '/d/', { mode: 0o040700 }), dir)).toEqual({ file: null, restored: false });
    expect(lstatSync(dir).isDirectory()).toBe(true);
    const link = ctx.root.target('/e');
    mkdirSync(path.join(path.dirname(ctx.where), 'elsewhere'));
    symlinkSync(path.join(path.dirname(ctx.where), 'elsewhere'), link);
    await expect(createEntry(ctx, entry(FT.DIREND, '/e/'), link)).rejects.toThrow(/e is a symlink, and a restore under where never writes through or over it/);
    ctx.root.close();
  });
});

describe.skipIf(process.platform !== 'linux')('a hard link (restore/hard-link.ts)', () => {
  it('links the other name to the restored first name, and says so when the first name is missing', async () => {
    const ctx = await context();
    const first = ctx.root.target('/first');
    writeFileSync(first, 'one');
    const second = ctx.root.target('/second');
    await restoreHardLink(ctx.root, second, '/first');
    expect(lstatSync(second).ino).toBe(lstatSync(first).ino);
    await expect(restoreHardLink(ctx.root, ctx.root.target('/third'), '/none')).rejects.toMatchObject({
      code: 'E_RESTORE_LINK',
      message: expect.stringMatching(/^Could not hard link .*third -> \/none: its first name "\/none" was not restored at .* \(ENOENT\)/),
    });
    ctx.root.close();
  });
});
