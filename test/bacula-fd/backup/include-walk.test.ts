/** The walk of one Include block (transfer/backup/include-walk.ts), on real trees. */
import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { parseFileSet } from '../../../src/bacula-fd/fileset/fileset.js';
import { walkInclude } from '../../../src/bacula-fd/transfer/backup/include-walk.js';
import { tempDir } from '../../helpers/native.js';
import { recordingJob, sentAttributes } from './job.js';

/** A directory's names in the order readdir(3) gives them, as `ls -f` prints them. */
function readdirOrder(dir: string): string[] {
  return spawnSync('ls', ['-f', dir], { encoding: 'utf8' }).stdout.split('\n').filter((n) => n !== '' && n !== '.' && n !== '..');
}

function walkOf(items: string[], cancelAfter = Infinity) {
  const fileset = parseFileSet(items);
  let records = 0;
  const recorded = recordingJob({ fileset, isCancelled: () => records >= cancelAfter });
  const attributes = () => recorded.attributes().map((r) => [r.type, r.fname] as const);
  const sd = recorded.job.run.sd;
  recorded.job.run.sd = { sendStream: (...args) => ((records += 1), sd.sendStream(...args)) };
  return { ...recorded, attributes, walk: () => walkInclude(recorded.job, fileset.includes[0]!) };
}

describe('serve backup: the walk of an Include block', () => {
  it('walks in readdir order, each directory after its contents, symlinks not followed', async () => {
    const root = path.join(tempDir('include-walk'), 'root');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    for (const name of ['m', 'a', 'z', 'k', 'b', 'y']) writeFileSync(path.join(root, name), name);
    writeFileSync(path.join(root, 'sub', 'inner'), 'i');
    symlinkSync('sub', path.join(root, 'link'));
    const { walk, attributes } = walkOf(['I', 'O ', 'N', `F ${root}`, 'N']);
    await walk();
    const expected: (readonly [number, string])[] = [];
    for (const name of readdirOrder(root)) {
      const p = path.join(root, name);
      if (name === 'sub') expected.push([FT.REG, path.join(p, 'inner')], [FT.DIREND, `${p}/`]);
      else expected.push([name === 'link' ? FT.LNK : FT.REG, p]);
    }
    expected.push([FT.DIREND, `${root}/`]);
    expect(attributes()).toEqual(expected);
  });

  it('skips a directory holding the Exclude Dir Containing marker whole, and keeps a noRecursion directory without its contents', async () => {
    const root = path.join(tempDir('include-walk-marker'), 'root');
    mkdirSync(path.join(root, 'skipped'), { recursive: true });
    mkdirSync(path.join(root, 'shallow', 'deep'), { recursive: true });
    writeFileSync(path.join(root, 'skipped', '.nobackup'), '');
    writeFileSync(path.join(root, 'shallow', 'f'), '');
    const { walk, attributes } = walkOf(['I', 'O h', 'N', 'Z .nobackup', `F ${root}`, 'N']);
    await walk();
    expect(attributes()).toEqual([[FT.DIREND, `${root}/shallow/`], [FT.DIREND, `${root}/`]]);
  });

  it('once cancelled, stats nothing more but still sends the directories it entered', async () => {
    const root = path.join(tempDir('include-walk-cancel'), 'root');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    for (const name of ['a', 'b', 'c']) writeFileSync(path.join(root, 'sub', name), '');
    const { walk, attributes } = walkOf(['I', 'O ', 'N', `F ${root}`, 'N'], 1);
    await walk();
    const first = readdirOrder(path.join(root, 'sub'))[0]!;
    expect(attributes()).toEqual([[FT.REGE, path.join(root, 'sub', first)], [FT.DIREND, `${root}/sub/`], [FT.DIREND, `${root}/`]]);
  });

  it('lstats a hard link when it reaches it, after the earlier names of its file were sent (lstat ahead notwithstanding)', async () => {
    const root = path.join(tempDir('include-walk-links'), 'root');
    mkdirSync(root);
    const names = Array.from({ length: 6 }, (_, i) => `n${i}`);
    writeFileSync(path.join(root, names[0]!), 'linked', { mode: 0o600 });
    chmodSync(path.join(root, names[0]!), 0o600);
    for (const name of names.slice(1)) linkSync(path.join(root, names[0]!), path.join(root, name));
    const { job, walk, attributes, sent } = walkOf(['I', 'O ', 'N', `F ${root}`, 'N']);
    // Each time a name's attributes go out, the file's mode changes: bacula-fd, which lstats each
    // name when it reaches it, then sends every later name with the mode it has by then.
    const sd = job.run.sd;
    let mode = 0o600;
    job.run.sd = { sendStream: async (index, stream, length, frames) => {
      const sent = await sd.sendStream(index, stream, length, frames);
      if (stream === STREAM.UNIX_ATTRIBUTES) chmodSync(path.join(root, names[0]!), ++mode);
      return sent;
    } };
    await walk();
    expect(attributes().map(([type]) => type)).toEqual([FT.REG, ...Array<number>(5).fill(FT.LNKSAVED), FT.DIREND]);
    expect(sentAttributes(sent).slice(0, 6).map((r) => r.stat.mode & 0o7777)).toEqual([0o600, 0o601, 0o602, 0o603, 0o604, 0o605]);
  });

  it('reports a File line it cannot stat and goes on with the next', async () => {
    const dir = tempDir('include-walk-missing');
    writeFileSync(path.join(dir, 'there'), 'x');
    const { walk, attributes, job } = walkOf(['I', 'O ', 'N', `F ${dir}/missing`, `F ${dir}/there`, 'N']);
    await walk();
    expect(job.totals.errors).toEqual([expect.stringMatching(new RegExp(`^Could not stat "${dir}/missing": .*ENOENT`))]);
    expect(attributes()).toEqual([[FT.REG, `${dir}/there`]]);
  });
});
