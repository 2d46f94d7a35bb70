/**
 * Names are bytes through `agentfd serve`, as through bacula-fd, against the real Director and SD:
 * a tree holding a Latin-1 file name, a Latin-1 directory and a symlink to a Latin-1 name (bytes
 * that are not UTF-8) is backed up "Backup OK" with the names' own bytes in the Director's
 * catalog, restored by serve byte for byte, restored identically by the real bacula-fd; and the
 * real bacula-fd's backup of it restores identically through serve. (Before: "Could not stat
 * ".../latin1-\ufffd.txt": ENOENT", Backup Error; a restore wrote the name re-encoded as EF BF BD.)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab, describeTree, restoredPath } from '../helpers/bacula-lab.js';

const bacula = new BaculaLab('bacula-names', { ports: { dir: 9241, fd: 9242, sd: 9243 } });
let data: string;

const latin1 = (text: string) => Buffer.from(text, 'latin1');
/** `dir` joined with raw name bytes, as a Buffer path Node's fs calls take. */
const join = (dir: string, ...names: string[]) => Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from('/'), latin1(n)])]);

beforeAll(async () => {
  data = path.join(bacula.dir, 'data');
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'latin1-\xe9.txt'), 'accented name\n');
  mkdirSync(join(data, 'r\xe9pertoire'));
  writeFileSync(join(data, 'r\xe9pertoire', '\xf1and\xfa.bin'), Buffer.from([1, 2, 3, 0xe9]));
  symlinkSync(latin1('latin1-\xe9.txt'), join(data, 'link-to-latin1'));
  writeFileSync(path.join(data, 'utf8-café.txt'), 'a UTF-8 name beside them\n');
  bacula.start();
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

/** The catalog's names of a job, as hex of their bytes (9.6 schema: Path, then Filename). */
function catalogNamesHex(jobId: number): string[] {
  const query = `SELECT hex(Path.Path || Filename.Name) FROM File JOIN Path USING (PathId) JOIN Filename USING (FilenameId) WHERE JobId = ${jobId};`;
  const result = spawnSync('sqlite3', [path.join(bacula.dir, 'work-dir', 'bacula.db'), query], { encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout.trim().split('\n');
}

describe('names as bytes through agentfd serve and the real Director', () => {
  let serveJob = 0;

  it('backs up Latin-1 names (Backup OK) with their own bytes in the catalog', () => {
    const { report, jobId } = bacula.runJob('LabBackup');
    serveJob = jobId;
    expect(report).not.toMatch(/Could not stat|ENOENT/);
    const names = catalogNamesHex(jobId).map((hex) => Buffer.from(hex, 'hex'));
    const expected = [join(data, 'latin1-\xe9.txt'), join(data, 'r\xe9pertoire', '\xf1and\xfa.bin'), join(data, 'link-to-latin1')];
    for (const name of expected) expect(names.some((n) => n.equals(name)), name.toString('latin1')).toBe(true);
    expect(names.some((n) => n.includes(Buffer.from([0xef, 0xbf, 0xbd])))).toBe(false); // nothing re-encoded
  });

  it('restores them byte for byte through serve (Restore OK)', () => {
    const where = path.join(bacula.dir, 'restore-serve');
    bacula.restore(serveJob, where);
    expect(describeTree(restoredPath(where, data))).toEqual(describeTree(data));
  });

  it('the real bacula-fd restores serve’s backup identically, and serve restores the real bacula-fd’s', async () => {
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    const byReal = path.join(bacula.dir, 'restore-real');
    bacula.restore(serveJob, byReal);
    expect(describeTree(restoredPath(byReal, data))).toEqual(describeTree(data));
    const { jobId: realJob } = bacula.runJob('LabBackup');
    bacula.sh(['stop-real-fd']);
    await bacula.startServe();
    const byServe = path.join(bacula.dir, 'restore-of-real');
    bacula.restore(realJob, byServe);
    expect(describeTree(restoredPath(byServe, data))).toEqual(describeTree(data));
    expect(describeTree(data)['latin1-\\xE9.txt']).toMatch(/^file /);
  });
});
