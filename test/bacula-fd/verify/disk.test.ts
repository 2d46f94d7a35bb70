/** The disk levels of a Verify job (transfer/verify/disk.ts), on real trees. */
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeLStat } from '../../../src/bacula-fd/attributes/lstat.js';
import { parseFileSet, verifyOptions } from '../../../src/bacula-fd/fileset/fileset.js';
import { verifyDisk, verifyFileSet } from '../../../src/bacula-fd/transfer/verify/disk.js';
import { digestMessage } from '../../../src/bacula-fd/transfer/verify/director-records.js';
import { tempDir } from '../../helpers/native.js';
import { recordingVerify } from './run.js';

/** A tree with a file, an empty file, a hard link, a symlink and a subdirectory. */
function makeTree(): string {
  const root = path.join(tempDir('verify-disk'), 'root');
  mkdirSync(path.join(root, 'sub'), { recursive: true });
  writeFileSync(path.join(root, 'sub', 'data.bin'), Buffer.alloc(100_000, 7));
  writeFileSync(path.join(root, 'empty'), '');
  writeFileSync(path.join(root, 'first'), 'hello\n');
  linkSync(path.join(root, 'first'), path.join(root, 'second'));
  symlinkSync('first', path.join(root, 'link'));
  return root;
}

/** Each attributes message as [JobFiles, opts, name, LStat, link]; digests as they are. */
function parsed(texts: string[]) {
  return texts.map((text) => {
    const fields = /^(\d+) 1 (\S+) ([^\0]*)\0([^\0]*)\0([^\0]*)\0$/.exec(text);
    return fields ? fields.slice(1) : text;
  });
}

describe('serve verify: InitCatalog, Catalog and DiskToCatalog', () => {
  it('sends each entry as verify_file does: Verify options, the LStat without LinkFI and data stream, link targets, the digest of regular files only', async () => {
    const root = makeTree();
    const fileset = parseFileSet(['I', 'O MVpins5:', 'N', `F ${root}`, 'N']);
    const { run, totals, texts } = recordingVerify(fileset);
    await verifyDisk(run, totals);
    const messages = parsed(texts());
    const attributes = messages.filter((m): m is string[] => Array.isArray(m));
    expect(attributes.map(([, opts]) => opts)).toEqual(Array(attributes.length).fill('VVpins5'));
    const byName = new Map(attributes.map(([index, , name, lstat, link]) => [name!, { index: Number(index), stat: decodeLStat(lstat!), link }]));
    expect([...byName.keys()].sort()).toEqual([`${root}/`, `${root}/empty`, `${root}/first`, `${root}/link`, `${root}/second`, `${root}/sub/`, `${root}/sub/data.bin`].sort());
    for (const { stat } of byName.values()) expect([stat.linkFI, stat.dataStream]).toEqual([0, 0]);
    expect(byName.get(`${root}/link`)!.link).toBe('first');
    // The hard link's second name points at the first, which got the digest; it gets none itself.
    const [firstName, secondName] = byName.get(`${root}/second`)!.link === `${root}/first` ? ['first', 'second'] : ['second', 'first'];
    expect(byName.get(`${root}/${secondName}`)!.link).toBe(`${root}/${firstName}`);
    const digests = messages.filter((m): m is string => typeof m === 'string');
    const md5 = (data: Buffer | string) => createHash('md5').update(data).digest();
    expect(digests.sort()).toEqual([
      digestMessage(byName.get(`${root}/empty`)!.index, 3, md5('')),
      digestMessage(byName.get(`${root}/${firstName}`)!.index, 3, md5('hello\n')),
      digestMessage(byName.get(`${root}/sub/data.bin`)!.index, 3, md5(Buffer.alloc(100_000, 7))),
    ].sort());
    expect(totals).toMatchObject({ files: 7, readBytes: 100_006, jobBytes: 100_006, errors: [] });
  });

  it('reads no file data when no digest is asked, and sends the plain "V" options', async () => {
    const root = makeTree();
    const { run, totals, texts } = recordingVerify(parseFileSet(['I', 'O ', 'N', `F ${root}`, 'N']));
    await verifyDisk(run, totals);
    expect(texts().every((t) => / 1 V \//.test(t))).toBe(true);
    expect(totals).toMatchObject({ files: 7, readBytes: 0 });
  });

  it('stops when the job is cancelled', async () => {
    const root = makeTree();
    const { run, totals, sent } = recordingVerify(parseFileSet(['I', 'O M', 'N', `F ${root}`, 'N']), () => true);
    await verifyDisk(run, totals);
    expect(sent).toEqual([]);
  });

  it('a FileSet as a verify reads it: no compression, ACLs or xattrs; Verify options per Include block', () => {
    const fileset = parseFileSet(['I', 'O MZ6AXVpins5:', 'N', 'O Vs1:', 'N', 'F /x', 'N', 'I', 'N', 'F /y', 'N']);
    const plain = verifyFileSet(fileset);
    expect(plain.includes[0]!.options.map(({ gzip, acl, xattr, digest }) => ({ gzip, acl, xattr, digest }))).toEqual([
      { gzip: null, acl: false, xattr: false, digest: 'md5' },
      { gzip: null, acl: false, xattr: false, digest: null },
    ]);
    expect(fileset.includes[0]!.options[0]!.gzip).toBe(6);
    expect(verifyOptions(fileset.includes[0]!)).toBe('VVpins5Vs1');
    expect(verifyOptions(fileset.includes[1]!)).toBe('V');
  });
});
