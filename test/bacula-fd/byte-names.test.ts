/**
 * Names are bytes in `agentfd serve`, as in bacula-fd: a file, a directory and a symlink target
 * whose names are not UTF-8 (Latin-1 here) are backed up with their names' own bytes in the
 * attributes records, and restored under where with exactly those bytes; a FileSet pattern
 * matches them byte for byte. Before, such a name became U+FFFD: "Could not stat" on backup, and
 * a restore wrote the name re-encoded as EF BF BD.
 */
import { mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { STREAM, decodeAttributes } from '../../src/bacula-fd/attributes/lstat.js';
import { parseFileSet } from '../../src/bacula-fd/fileset/fileset.js';
import { sendBackup } from '../../src/bacula-fd/transfer/backup.js';
import { receiveRestore } from '../../src/bacula-fd/transfer/restore.js';
import { decodeName } from '../../src/platform/byte-names.js';
import { tempDir } from '../helpers/native.js';
import { filesetOf, recordingSd, type Sent } from './backup/job.js';

const latin1 = (text: string) => Buffer.from(text, 'latin1');
/** `dir` joined with raw name bytes, as a Buffer path Node's fs calls take. */
const join = (dir: string, ...names: Buffer[]) => Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from('/'), n])]);

/** A tree under `root`: latin1-é.txt, a directory dïr holding ñ.bin, and a link to latin1-é.txt. */
function latin1Tree(root: string): void {
  writeFileSync(join(root, latin1('latin1-\xe9.txt')), 'accented\n');
  mkdirSync(join(root, latin1('d\xefr')));
  writeFileSync(join(root, latin1('d\xefr'), latin1('\xf1.bin')), Buffer.from([0, 1, 2, 0xe9]));
  symlinkSync(latin1('latin1-\xe9.txt'), join(root, latin1('link')));
}

/** The raw fname (and link) bytes of each attributes record sent. */
function sentNames(sent: Sent[]): Buffer[] {
  return sent.filter((s) => s.stream === STREAM.UNIX_ATTRIBUTES).map((s) => {
    const payload = s.frames[0]!;
    const head = payload.subarray(0, payload.indexOf(0));
    return head.subarray(head.indexOf(0x20, head.indexOf(0x20) + 1) + 1);
  });
}

describe('serve: names are bytes', () => {
  it('backs up Latin-1 names with their own bytes, and restores them byte for byte under where', async () => {
    const root = tempDir('latin1-src');
    latin1Tree(root);
    const { sd, sent } = recordingSd();
    const logs: string[] = [];
    const totals = await sendBackup({ sd, fileset: filesetOf('', [root]), since: null, isCancelled: () => false, log: (level, m) => logs.push(`${level}: ${m}`) });
    expect(totals.errors, logs.join('\n')).toEqual([]);
    const names = sentNames(sent).map((n) => n.toString('latin1'));
    expect(names).toContain(`${root}/latin1-\xe9.txt`);
    expect(names).toContain(`${root}/d\xefr/\xf1.bin`);
    const link = sent.map((s) => s.frames[0]!).filter((f) => f.includes(latin1('/link\0'))).map((f) => decodeAttributes(f).link);
    expect(link.length).toBe(1);

    const where = tempDir('latin1-where');
    const restored = await receiveRestore({
      records: (async function* () {
        yield* sent.flatMap((s) => s.frames.map((data) => ({ fileIndex: s.fileIndex, stream: s.stream, data })));
      })(),
      where,
      replace: 'a',
      log: (level, m) => logs.push(`${level}: ${m}`),
    });
    expect(restored.errors, logs.join('\n')).toEqual([]);
    const copy = join(where, ...root.split('/').filter(Boolean).map((p) => Buffer.from(p)));
    const listed = readdirSync(copy, { encoding: 'buffer' }).map((n) => n.toString('latin1')).sort();
    expect(listed).toEqual(['d\xefr', 'latin1-\xe9.txt', 'link']);
    expect(readFileSync(Buffer.concat([copy, latin1('/latin1-\xe9.txt')]), 'utf8')).toBe('accented\n');
    expect([...readFileSync(Buffer.concat([copy, latin1('/d\xefr/\xf1.bin')]))]).toEqual([0, 1, 2, 0xe9]);
    expect(readlinkSync(Buffer.concat([copy, latin1('/link')]), { encoding: 'buffer' }).toString('latin1')).toBe('latin1-\xe9.txt');
    // Nothing was written under a re-encoded name.
    expect(listed.some((n) => n.includes('\xef\xbf\xbd'))).toBe(false);
  });

  it('matches a FileSet wildcard against the name bytes: "*\\xe9*" keeps only the Latin-1 é file', async () => {
    const root = tempDir('latin1-match');
    latin1Tree(root);
    writeFileSync(path.join(root, 'plain.txt'), 'plain\n');
    // Include the é file, exclude every other regular file (bacula-fd's Options order).
    const pattern = decodeName(latin1('*\xe9*')); // as the Director's FileSet line arrives (bsock decodes it so)
    const fileset = parseFileSet(['I', 'O ', `W ${pattern}`, 'N', 'O e', 'W *.txt', 'W *.bin', 'N', `F ${root}`, 'N']);
    const { sd, sent } = recordingSd();
    await sendBackup({ sd, fileset, since: null, isCancelled: () => false, log: () => undefined });
    const names = sentNames(sent).map((n) => n.toString('latin1'));
    expect(names).toContain(`${root}/latin1-\xe9.txt`);
    expect(names).not.toContain(`${root}/plain.txt`);
    expect(names).not.toContain(`${root}/d\xefr/\xf1.bin`);
  });
});
