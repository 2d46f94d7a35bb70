/**
 * Names are bytes in agentfd's own backups, through the real CLI: a tree holding a Latin-1 file
 * name, a Latin-1 directory and a symlink to a Latin-1 name is backed up whole (nothing skipped,
 * no warning), listed by `files` with \xNN, restored byte for byte (all of it, or what an
 * --include written with \xNN selects), again after `scan` rebuilt the catalog from the volumes
 * alone, and an incremental after a change saves only the changed Latin-1 file. Before, such a
 * name was skipped with a warning and the job said ok.
 */
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { makePluginDir, tempDir } from '../helpers/native.js';

const latin1 = (text: string) => Buffer.from(text, 'latin1');
/** `dir` joined with raw (Latin-1) name bytes, as a Buffer path Node's fs calls take. */
const join = (dir: string | Buffer, ...names: string[]) => Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from('/'), latin1(n)])]);

let ws: string;
let tree: string;
let config: string;

/** Every entry under `root`: its name bytes (Latin-1 shown) and what it is. */
function listing(root: Buffer | string): string[] {
  const out: string[] = [];
  const walk = (dir: Buffer, rel: string) => {
    for (const name of readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const shown = `${rel}${name.toString('latin1')}`;
      let what: string;
      try {
        what = `link -> ${readlinkSync(full, { encoding: 'buffer' }).toString('latin1')}`;
      } catch {
        try {
          what = `file ${readFileSync(full).toString('hex')}`;
        } catch {
          what = 'dir';
          walk(full, `${shown}/`);
        }
      }
      out.push(`${shown}: ${what}`);
    }
  };
  walk(Buffer.from(root), '');
  return out.sort();
}

const cli = (...args: string[]) => runCliJson([...args, '--config', config]);

beforeAll(() => {
  ws = tempDir('byte-names');
  tree = path.join(ws, 'tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'latin1-\xe9.txt'), 'accented name\n');
  mkdirSync(join(tree, 'r\xe9pertoire'));
  writeFileSync(join(tree, 'r\xe9pertoire', '\xf1and\xfa.bin'), Buffer.from([1, 2, 3, 0xe9]));
  symlinkSync(latin1('latin1-\xe9.txt'), join(tree, 'link-to-latin1'));
  writeFileSync(path.join(tree, 'utf8-café.txt'), 'UTF-8 beside them\n');
  config = path.join(ws, 'agentfd.toml');
  writeFileSync(config, [`plugin_dir = ${JSON.stringify(makePluginDir(['legacy']))}`, 'data_dir = "state"', '', '[jobs.names]', 'agent = "filesystem"', `paths = [${JSON.stringify(tree)}]`].join('\n'));
});

/** A full backup of the tree; its job id. */
function fullBackup(): number {
  const backup = cli('backup', '--job', 'names');
  expect(backup.json, backup.stderr).toMatchObject({ status: 'ok', jobStatus: 'committed' });
  expect(backup.stderr).not.toMatch(/skipped|not valid UTF-8/);
  return backup.json.jobId as number;
}

describe('names are bytes in agentfd’s own backups', () => {
  it('backs up Latin-1 names whole and restores them byte for byte', () => {
    const jobId = fullBackup();
    const to = path.join(ws, 'restore-all');
    const restore = cli('restore', '--job-id', String(jobId), '--to', to);
    expect(restore.json, restore.stderr).toMatchObject({ status: 'ok' });
    expect(listing(join(to, ...tree.split('/').filter(Boolean)))).toEqual(listing(tree));
  });

  it('lists them in `files` with \\xNN, and the exact bytes as hex', () => {
    const jobId = fullBackup();
    const files = cli('files', String(jobId));
    const byPath = new Map((files.json.files as { path: string; pathHex?: string }[]).map((f) => [f.path, f]));
    const shown = `${tree}/latin1-\\xE9.txt`;
    expect(byPath.has(shown), [...byPath.keys()].join('\n')).toBe(true);
    expect(byPath.get(shown)!.pathHex).toBe(join(tree, 'latin1-\xe9.txt').toString('hex'));
    expect(byPath.get(`${tree}/utf8-café.txt`)!.pathHex).toBeUndefined();
  });

  it('restores only what an --include written with \\xNN selects', () => {
    const jobId = fullBackup();
    const to = path.join(ws, 'restore-include');
    const restore = cli('restore', '--job-id', String(jobId), '--to', to, '--include', '**/r\\xE9pertoire/**');
    expect(restore.json, restore.stderr).toMatchObject({ status: 'ok', files: 2 }); // the directory and its file
    const copy = join(to, ...tree.split('/').filter(Boolean));
    expect(listing(copy)).toEqual(['r\xe9pertoire/\xf1and\xfa.bin: file 010203e9', 'r\xe9pertoire: dir']);
  });

  it('restores them after `scan` rebuilt the catalog from the volumes alone', () => {
    const jobId = fullBackup();
    for (const file of ['catalog.sqlite', 'catalog.sqlite-wal', 'catalog.sqlite-shm']) rmSync(path.join(ws, 'state', file), { force: true });
    const volumes = readdirSync(path.join(ws, 'state', 'volumes')).filter((f) => f.endsWith('.afv')).map((f) => path.join(ws, 'state', 'volumes', f));
    const scan = cli('scan', ...volumes);
    expect(scan.json, scan.stderr).toMatchObject({ status: 'ok' });
    const to = path.join(ws, 'restore-after-scan');
    const restore = cli('restore', '--job-id', String(jobId), '--to', to);
    expect(restore.json, restore.stderr).toMatchObject({ status: 'ok' });
    expect(listing(join(to, ...tree.split('/').filter(Boolean)))).toEqual(listing(tree));
  });

  it('an incremental saves the changed Latin-1 file only, and the chain restores the new content', () => {
    fullBackup();
    const changed = join(tree, 'latin1-\xe9.txt');
    writeFileSync(changed, 'changed content\n');
    const later = new Date(Date.now() + 5000);
    utimesSync(changed, later, later);
    const incremental = cli('backup', '--job', 'names', '--level', 'incremental');
    expect(incremental.json, incremental.stderr).toMatchObject({ status: 'ok', jobStatus: 'committed' });
    const saved = (cli('files', String(incremental.json.jobId)).json.files as { path: string; seen: boolean; kind: string }[])
      .filter((f) => f.kind === 'regular' && !f.seen)
      .map((f) => f.path);
    expect(saved).toEqual([`${tree}/latin1-\\xE9.txt`]);
    const to = path.join(ws, 'restore-chain');
    expect(cli('restore', '--job-id', String(incremental.json.jobId), '--to', to).json).toMatchObject({ status: 'ok' });
    expect(readFileSync(join(to, ...tree.split('/').filter(Boolean), 'latin1-\xe9.txt'), 'utf8')).toBe('changed content\n');
  });

  it('never hands a native agent a name that is not UTF-8: routed to one, each such file fails with the way out', () => {
    const jobId = fullBackup();
    const to = path.join(ws, 'restore-native');
    // Only the Latin-1 names: the sample agent itself refuses any path outside /@legacy.
    const restore = runCliJson(['restore', '--job-id', String(jobId), '--to', to, '--agent', 'LegacyFlatFiles', '--include', '**/*\\xE9*', '--config', config]);
    expect(restore.json.code, restore.stdout).toBeUndefined(); // the agent was never asked, so it refused nothing
    const errors = (restore.json.errors ?? []) as string[];
    const ours = errors.filter((e) => /holds bytes that are not UTF-8 .*--raw, or with --agent filesystem/.test(e));
    expect(ours.length, errors.join('\n')).toBe(errors.length);
    expect(ours.map((e) => e.slice(e.lastIndexOf('/') + 1, e.indexOf(':'))).sort()).toEqual(['latin1-\\xE9.txt', 'r\\xE9pertoire']);
    expect(restore.json).toMatchObject({ status: 'failed', files: 0, skipped: expect.any(Number) });
  });
});
