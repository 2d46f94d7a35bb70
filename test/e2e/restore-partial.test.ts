/**
 * A path the restore refuses fails that file, not the restore: through the real CLI, a symlink
 * whose place in the target is taken by a directory of someone else's files is refused (the
 * directory and its files are left alone), every other file is restored, and the restore reports
 * the refusal and exits non-zero.
 */
import { mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { removeDir, tempDir } from '../helpers/native.js';

let ws: string;
let config: string;
let tree: string;

beforeAll(() => {
  ws = tempDir('restore-partial');
  tree = path.join(ws, 'tree');
  mkdirSync(path.join(tree, 'a'), { recursive: true });
  writeFileSync(path.join(tree, 'a', 'x.txt'), 'under a\n');
  writeFileSync(path.join(tree, 'b.txt'), 'b\n');
  symlinkSync('b.txt', path.join(tree, 'link'));
  config = path.join(ws, 'agentfd.toml');
  writeFileSync(config, `data_dir = "state"\n[jobs.tree]\nagent = "filesystem"\npaths = [${JSON.stringify(tree)}]\n`);
});
afterAll(() => removeDir(ws));

describe('a restore with a path it must refuse', () => {
  it('refuses that file, restores the others, and says so', () => {
    const backup = runCliJson(['backup', '--job', 'tree', '--config', config]);
    expect(backup.status, backup.stderr).toBe(0);
    const to = path.join(ws, 'restore');
    const root = path.join(to, ...tree.split(path.sep).filter(Boolean));
    mkdirSync(path.join(root, 'link'), { recursive: true });
    writeFileSync(path.join(root, 'link', 'keep.txt'), 'not from the backup\n');
    const restore = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', to, '--config', config]);
    expect(restore.status).toBe(1);
    expect(restore.json.status).toBe('failed');
    expect(restore.json.errors).toHaveLength(1);
    expect(restore.json.errors[0]).toMatch(/restore of the symlink .*\/link refused: the directory .* is in the way/);
    expect(restore.json.files).toBe(4); // the tree, a, a/x.txt, b.txt
    expect(readFileSync(path.join(root, 'a', 'x.txt'), 'utf8')).toBe('under a\n');
    expect(readFileSync(path.join(root, 'b.txt'), 'utf8')).toBe('b\n');
    expect(readFileSync(path.join(root, 'link', 'keep.txt'), 'utf8')).toBe('not from the backup\n');
    expect(() => readlinkSync(path.join(root, 'link'))).toThrow();
  });
});
