/**
 * Confined restore writes on Windows (src/platform/pinned-target.ts): restores never write
 * through a link planted in the target, and no directory on the way can be renamed or removed
 * while a call passes through it. Run by the Windows lane (npm run test:windows) under Wine; the
 * links are Unix symlinks that the lane's Linux half planted (scripts/windows/cross.mjs make),
 * because Windows node under Wine cannot make one (and Wine shows a Unix symlink to a directory as
 * a reparse point, which is what a Windows symbolic link or junction is).
 */
import { mkdirSync, readdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfinedError } from '../../src/platform/confined-target.js';
import { PinnedTarget } from '../../src/platform/pinned-target.js';
import { closeHandle } from '../../src/platform/kernel32.js';
import { runCliJson } from '../helpers/cli.js';
import { SAMPLE_DIR, tempDir } from '../helpers/native.js';

const CROSS = process.env.AGENTFD_CROSS_DIR;
const planted = (...parts: string[]) => path.resolve(CROSS!, 'planted', ...parts);

function confinedError(body: () => unknown): ConfinedError {
  try {
    body();
  } catch (error) {
    if (error instanceof ConfinedError) return error;
    throw error;
  }
  throw new Error('the call was not refused');
}

describe('confined restore writes on Windows', () => {
  it('pins every directory on the way: none can be renamed or removed during a call, each can after it', () => {
    const root = tempDir('win-pins');
    const target = PinnedTarget.open(root);
    try {
      const attempts: Record<string, string> = {};
      const tryRename = (from: string[], label: string) => {
        try {
          renameSync(path.join(root, ...from), path.join(root, `moved-${label}`));
          attempts[label] = 'renamed';
        } catch (error) {
          attempts[label] = (error as NodeJS.ErrnoException).code ?? String(error);
        }
      };
      target.withDir(['a', 'b', 'c'], true, () => {
        tryRename(['a'], 'a');
        tryRename(['a', 'b'], 'b');
        tryRename(['a', 'b', 'c'], 'c');
        try {
          rmdirSync(path.join(root, 'a', 'b', 'c'));
          attempts.rmdir = 'removed';
        } catch (error) {
          attempts.rmdir = (error as NodeJS.ErrnoException).code ?? String(error);
        }
      });
      expect(attempts).toEqual({ a: 'EBUSY', b: 'EBUSY', c: 'EBUSY', rmdir: 'EBUSY' });
      // Nothing stays pinned between calls: the restore holds only its target.
      renameSync(path.join(root, 'a', 'b'), path.join(root, 'a', 'b2'));
      expect(readdirSync(path.join(root, 'a'))).toEqual(['b2']);
      const busy = (() => {
        try {
          renameSync(root, `${root}-moved`);
          return 'renamed';
        } catch (error) {
          return (error as NodeJS.ErrnoException).code;
        }
      })();
      expect(busy, 'the target itself is pinned for the whole restore').toBe('EBUSY');
    } finally {
      target.close();
    }
  });

  it('refuses a link planted in the target, and names that Windows would read as something else', () => {
    const target = PinnedTarget.open(planted('pin'));
    try {
      expect(confinedError(() => target.checkDir(['link'])).kind).toBe('refused');
      const through = confinedError(() => target.openFile(['link', 'escaped.txt'], { truncate: true, exclusive: false }));
      expect(through.kind).toBe('refused');
      expect(through.message).toMatch(/symbolic link, a junction or not a directory/);
      for (const name of ['a\\..\\..\\escaped.txt', 'C:escaped', 'CON', 'trailing.', 'x:stream']) {
        const invalid = confinedError(() => target.openFile([name], { truncate: true, exclusive: false }));
        expect(invalid.kind, name).toBe('invalid');
        expect(invalid.message).toMatch(/not a name Windows can hold/);
      }
      const name = `ok-${randomBytes(4).toString('hex')}.txt`;
      closeHandle(target.openFile(['inside', name], { truncate: true, exclusive: true }));
      expect(confinedError(() => target.openFile(['inside', name], { truncate: false, exclusive: true })).code).toBe('EEXIST');
    } finally {
      target.close();
    }
    expect(readdirSync(planted('pin-outside'))).toEqual([]);
    expect(readdirSync(planted('pin', 'inside')).length).toBeGreaterThan(0);
  });

  it('a gen 3 agent (Exchange) restores through restore_open, and a link planted in the target refuses the restore with nothing outside', () => {
    const ws = tempDir('win-planted-exchange');
    const store = path.join(ws, 'store');
    mkdirSync(path.join(store, 'SG1'), { recursive: true });
    writeFileSync(path.join(store, 'SG1', 'Mailbox1.edb'), randomBytes(100_000));
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(
      config,
      `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\ndata_dir = "state"\n[jobs.exchange]\nagent = "MicrosoftExchange"\noptions = { store = ${JSON.stringify(store)}, truncate_logs = "no" }\n`,
    );
    const backup = runCliJson(['backup', '--job', 'exchange', '--config', config]);
    expect(backup.status, backup.stdout).toBe(0);
    const clean = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', path.join(ws, 'clean'), '--config', config]);
    expect(clean.status, clean.stdout).toBe(0);
    expect(readdirSync(path.join(ws, 'clean', 'SG1'))).toContain('Mailbox1.edb');

    const restore = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', planted('exchange'), '--config', config]);
    expect(restore.status, restore.stdout).toBe(1);
    expect([restore.json.message, ...(restore.json.errors ?? [])].join('\n')).toMatch(/SG1.*refused.*AFD_E_REFUSED/);
    expect(readdirSync(planted('exchange-outside'))).toEqual([]);
  });

  it('the filesystem agent refuses a link planted in the target, with nothing outside', () => {
    const ws = tempDir('win-planted-files');
    // A tree on Wine's Z: drive (the lane's directory), so that the restore writes <target>\Z\...
    const tree = path.resolve(CROSS!, 'windows-planted-tree');
    mkdirSync(path.join(tree, 'sub'), { recursive: true });
    writeFileSync(path.join(tree, 'sub', 'file.txt'), 'restored below the target only\n');
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, `data_dir = "state"\n[jobs.files]\nagent = "filesystem"\npaths = [${JSON.stringify(tree)}]\n`);
    const backup = runCliJson(['backup', '--job', 'files', '--config', config]);
    expect(backup.status, backup.stdout).toBe(0);
    expect(path.parse(tree).root).toMatch(/^Z:/i); // where the link is
    const restore = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', planted('files'), '--config', config]);
    expect(restore.status, restore.stdout).toBe(1);
    expect([restore.json.message, ...(restore.json.errors ?? [])].join('\n')).toMatch(/refused/);
    expect(readdirSync(planted('files-outside'))).toEqual([]);
  });
});
