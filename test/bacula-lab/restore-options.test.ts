/**
 * The restore options a Bacula administrator uses, with a real Bacula 9.6 Director: `regexwhere=`,
 * `strip_prefix=`/`add_prefix=`/`add_suffix=` (which the Director sends as a regexwhere, here with
 * a restore job that has PrefixLinks = yes, so symlink targets are rewritten too), one file marked
 * in a deep tree, and one empty directory marked there (bacula-fd's makepath makes the missing
 * parents). Each restore is run by agentfd serve into ours/, then by the real bacula-fd into
 * theirs/: the two trees (names, contents, modes, owners, link targets) and the Director's counts
 * must be the same, and the names must be where the option puts them.
 */
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab } from '../helpers/bacula-lab.js';

const bacula = new BaculaLab('bacula-restore-opts', {
  ports: { dir: 9201, fd: 9202, sd: 9203 },
  extraDirectorConf: () =>
    [
      'Job {', '  Name = "PrefixLinksRestore"', '  Type = Restore', '  Client = agentfd-fd', '  Storage = File1', '  FileSet = "LabSet"',
      '  Pool = LabPool', '  Messages = Standard', '  PrefixLinks = yes', '}',
    ].join('\n'),
});
const lab = bacula.dir;
const data = path.join(lab, 'data');
const isRoot = process.getuid?.() === 0;
let jobId = 0;

/** The lab's path in a regex: only characters that are themselves, or '.' as "[.]" (bconsole eats backslashes). */
function ere(literal: string): string {
  if (!/^[A-Za-z0-9/._-]+$/.test(literal)) throw new Error(`the lab's path ${literal} has characters this test does not put in a regex; set TMPDIR to a plain path`);
  return literal.replace(/\./g, '[.]');
}

function write(rel: string, content: string, mode = 0o644): void {
  const full = path.join(data, rel);
  mkdirSync(path.dirname(full), { recursive: true });
  writeFileSync(full, content);
  chmodSync(full, mode);
}

/** The backed-up tree: a deep file and an empty directory (modes and owners of their own), links, a name with spaces. */
function makeTree(): void {
  write('deep/a/b/c/file.txt', 'deep file\n', 0o640);
  mkdirSync(path.join(data, 'deep/a/b/empty'));
  chmodSync(path.join(data, 'deep/a'), 0o700);
  chmodSync(path.join(data, 'deep/a/b'), 0o750);
  chmodSync(path.join(data, 'deep/a/b/c'), 0o711);
  chmodSync(path.join(data, 'deep/a/b/empty'), 0o705);
  if (isRoot) {
    chownSync(path.join(data, 'deep/a/b/c/file.txt'), 1234, 2345);
    chownSync(path.join(data, 'deep/a/b/empty'), 1234, 2345);
  }
  write('top/plain.txt', 'plain\n');
  write('top/Data Upper.TXT', 'upper\n');
  symlinkSync(path.join(data, 'top/plain.txt'), path.join(data, 'top/abs-link'));
  symlinkSync('plain.txt', path.join(data, 'top/rel-link'));
  linkSync(path.join(data, 'top/plain.txt'), path.join(data, 'top/hard.txt'));
}

/** Every entry under `root`: type, mode, owner, and content digest and mtime or link target; `root`'s own path written as ROOT. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    const head = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out[rel] = `link -> ${readlinkSync(full).split(root).join('ROOT')}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${head}`;
      for (const name of readdirSync(full).sort()) walk(path.join(rel, name));
    } else out[rel] = `file ${head} ${Math.floor(st.mtimeMs / 1000)} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
  };
  walk('.');
  return out;
}

const count = (report: string, field: string) => new RegExp(`${field}:\\s+(\\d+)`).exec(report)?.[1];

/**
 * The same restore by agentfd serve (into lab/ours) and by the real bacula-fd (into lab/theirs):
 * `restore(out)` runs it with `out` as the place to restore to. Returns both trees, which must be
 * the same, and agentfd's, and the Director's counts must be the same.
 */
async function restoreByBoth(restore: (out: string) => string): Promise<Record<string, string>> {
  const ours = path.join(lab, 'ours');
  const theirs = path.join(lab, 'theirs');
  const ourReport = restore(ours);
  await bacula.stopServe();
  bacula.sh(['start-real-fd']);
  let theirReport: string;
  try {
    theirReport = restore(theirs);
  } finally {
    bacula.sh(['stop-real-fd']);
    await bacula.startServe();
  }
  for (const field of ['Files Expected', 'Files Restored', 'Bytes Restored', 'FD Errors']) expect(count(ourReport, field), field).toBe(count(theirReport, field));
  const ourTree = tree(ours);
  expect(ourTree).toEqual(tree(theirs));
  return ourTree;
}

beforeAll(async () => {
  bacula.start();
  makeTree();
  await bacula.startServe();
  jobId = bacula.runJob('LabBackup').jobId;
}, 300_000);

afterAll(() => bacula.destroy());

describe('restore options, agentfd serve beside the real bacula-fd', () => {
  it('regexwhere: every name rewritten by the list (back-references too), as bacula-fd', async () => {
    const got = await restoreByBoth((out) =>
      bacula.restore(jobId, '', 'restorejob=LabRestore', `regexwhere=!^${ere(data)}/!${out}/rx/!,!/(top)/(Data) (Upper)!/$1/$3-$2!`),
    );
    expect(got['rx/top/Upper-Data.TXT']).toMatch(/^file 644 /);
    expect(got['rx/deep/a/b/c/file.txt']).toMatch(/^file 640 /);
    expect(got['rx/top/abs-link']).toBe(`link -> ${data}/top/plain.txt`); // no PrefixLinks: as it was
    expect(got['rx/top/hard.txt']).toBeDefined();
    expect(lstatSync(path.join(lab, 'ours/rx/top/hard.txt')).ino).toBe(lstatSync(path.join(lab, 'ours/rx/top/plain.txt')).ino);
  });

  it('strip_prefix, add_prefix and add_suffix (with PrefixLinks): names and link targets, as bacula-fd', async () => {
    const got = await restoreByBoth((out) =>
      bacula.restore(jobId, '', 'restorejob=PrefixLinksRestore', `strip_prefix=${data}`, `add_prefix=${out}/sp`, 'add_suffix=.old'),
    );
    expect(got['sp/top/plain.txt.old']).toMatch(/^file 644 /);
    expect(got['sp/deep/a/b/c']).toMatch(/^dir 711 /); // a directory's name ends in '/': no suffix
    expect(got['sp/top/abs-link.old']).toBe('link -> ROOT/sp/top/plain.txt.old');
    expect(got['sp/top/rel-link.old']).toBe('link -> ROOT/spplain.txt.old'); // bacula-fd rewrites a relative target too
  });

  it('one file marked in a deep tree: its missing parents made as bacula-fd makes them', async () => {
    const got = await restoreByBoth((out) => bacula.restore(jobId, `${out}/mark`, 'restorejob=LabRestore', `mark=${data}/deep/a/b/c/file.txt`));
    const deep = path.join('mark', data, 'deep');
    const umasked = (0o777 & ~process.umask()).toString(8);
    expect(got[path.join(deep, 'a')]).toBe(`dir ${umasked} ${process.getuid?.()}:${process.getgid?.()}`);
    expect(got[path.join(deep, 'a/b')]).toMatch(new RegExp(`^dir ${umasked} `));
    expect(got[path.join(deep, 'a/b/c')]).toBe(`dir 740 ${isRoot ? '1234:2345' : `${process.getuid?.()}:${process.getgid?.()}`}`); // the file's owner, its mode | u+wx
  });

  it('a regexwhere that does not read: the job ends in error with "Bad where regexp", as with bacula-fd', async () => {
    const args = ['restore', String(jobId), '', 'restorejob=LabRestore', 'regexwhere=!a(!b!', `mark=${data}/top/plain.txt`];
    const ours = bacula.sh(args, true);
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    let theirs: { status: number | null; out: string };
    try {
      theirs = bacula.sh(args, true);
    } finally {
      bacula.sh(['stop-real-fd']);
      await bacula.startServe();
    }
    for (const { out } of [ours, theirs]) {
      expect(out).toMatch(/agentfd-fd JobId \d+: Fatal error: Bad where regexp\. where=!a\(!b!/);
      expect(out).toMatch(/Termination:\s+\*\*\* Restore Error \*\*\*/);
      expect(out).toMatch(/Files Restored:\s+0\n/);
    }
  });

  it('one empty directory marked in a deep tree: the parents its own record makes, as bacula-fd', async () => {
    const got = await restoreByBoth((out) => bacula.restore(jobId, `${out}/mark-dir`, 'restorejob=LabRestore', `mark=${data}/deep/a/b/empty`));
    expect(got[path.join('mark-dir', data, 'deep/a/b/empty')]).toMatch(/^dir 705 /);
  });
});
