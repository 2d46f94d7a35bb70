/**
 * The one tree walker (src/agents/filesystem/tree-walk.ts) that the filesystem agent's walk and
 * agentfd serve's backup both stand on, on real trees with lstat as the probe.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TreeWalk, namesInByteOrder, namesInReaddirOrder } from '../../src/agents/filesystem/tree-walk.js';
import { tempDir } from '../helpers/native.js';
import { encodeName } from '../../src/platform/byte-names.js';

interface Entry {
  path: string;
  st: Stats;
}

/** A tree: root/{b, a, dir/{y, x}, link -> dir}. */
function tree(): string {
  const root = path.join(tempDir('tree-walk'), 'root');
  mkdirSync(path.join(root, 'dir'), { recursive: true });
  for (const name of ['b', 'a', 'dir/y', 'dir/x']) writeFileSync(path.join(root, name), name);
  symlinkSync('dir', path.join(root, 'link'));
  return root;
}

/** Walk `root` in byte order, descending where `descend` says; every step as a line. */
async function steps(root: string, options: { batch: number; ahead: number }, descend = (_: Entry) => true, probed: string[] = []): Promise<string[]> {
  const probe = (dir: string, names: Buffer[]) => {
    probed.push(...names.map(String));
    return Promise.all(names.map(async (name) => ({ path: path.join(dir, String(name)), st: await lstat(path.join(dir, String(name))) })));
  };
  const walk = new TreeWalk<string, Buffer, Entry>({ probe, ...options });
  const out: string[] = [];
  walk.enter(root, await namesInByteOrder(root));
  try {
    for (let step = await walk.next(); step !== null; step = await walk.next()) {
      if (step.kind === 'leave') {
        out.push(`leave ${path.relative(root, step.dir) || '.'}`);
        continue;
      }
      const { path: p, st } = step.entry;
      out.push(`${st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'file'} ${path.relative(root, p)}`);
      if (st.isDirectory() && descend(step.entry)) walk.enter(p, await namesInByteOrder(p));
    }
  } finally {
    await walk.close();
  }
  return out;
}

describe('the tree walker', () => {
  it('walks depth-first in the names order given, leaves each directory after its contents, never follows a symlink', async () => {
    const root = tree();
    const expected = ['file a', 'file b', 'dir dir', 'file dir/x', 'file dir/y', 'leave dir', 'link link', 'leave .'];
    expect(await steps(root, { batch: 1, ahead: 0 })).toEqual(expected);
    // Batches and probing ahead change nothing the caller sees.
    expect(await steps(root, { batch: 2, ahead: 3 })).toEqual(expected);
  });

  it('descends only where the caller enters', async () => {
    expect(await steps(tree(), { batch: 64, ahead: 2 }, () => false)).toEqual(['file a', 'file b', 'dir dir', 'link link', 'leave .']);
  });

  it('probes each entry only when the walk reaches it with ahead 0, and ahead of the walk otherwise', async () => {
    const root = tree();
    const probe = async (dir: string, names: string[]) => {
      probed.push(...names);
      return names.map((name) => path.join(dir, name));
    };
    const probed: string[] = [];
    const inTurn = new TreeWalk<string, string, string>({ probe, batch: 1, ahead: 0 });
    inTurn.enter(root, ['a', 'b', 'dir', 'link']);
    await inTurn.next();
    expect(probed).toEqual(['a']);
    probed.length = 0;
    const ahead = new TreeWalk<string, string, string>({ probe, batch: 1, ahead: 3 });
    ahead.enter(root, ['a', 'b', 'dir', 'link']);
    await ahead.next();
    await new Promise((resolve) => setImmediate(resolve));
    expect(probed).toEqual(['a', 'b', 'dir', 'link']);
    await Promise.all([inTurn.close(), ahead.close()]);
  });

  it('waits on close for the probes in flight', async () => {
    let finished = 0;
    const probe = async (_dir: string, names: string[]) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      finished += names.length;
      return names;
    };
    const walk = new TreeWalk<string, string, string>({ probe, batch: 1, ahead: 4 });
    walk.enter('/', ['a', 'b', 'c', 'd', 'e']);
    await walk.next();
    await walk.close();
    const settled = finished;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(settled).toBe(finished); // nothing was still running after close()
    expect(finished).toBeGreaterThanOrEqual(4);
    expect(await walk.next()).toBeNull();
  });

  it('lists names by their bytes, or in the order readdir(3) gives them', async () => {
    const dir = tempDir('tree-walk-names');
    const raw = [Buffer.from('b'), Buffer.from('B'), Buffer.from('é'), Buffer.from([0x61, 0xff]), Buffer.from('a')];
    for (const name of raw) writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), name]), '');
    expect((await namesInByteOrder(dir)).map((n) => n.toString('hex'))).toEqual(['42', '61', '61ff', '62', 'c3a9']);
    const ls = spawnSync('ls', ['-f', dir], { encoding: 'buffer' }).stdout.toString('latin1').split('\n').filter((n) => n !== '' && n !== '.' && n !== '..');
    // Each name as its bytes (platform/byte-names.ts), the one that is not UTF-8 included.
    expect((await namesInReaddirOrder(dir)).map((n) => encodeName(n).toString('hex'))).toEqual(ls.map((n) => Buffer.from(n, 'latin1').toString('hex')));
  });
});
