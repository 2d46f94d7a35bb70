/**
 * File selection with a real Bacula 9.6 Director: a FileSet with wildcard and regex Options blocks,
 * an `exclude = yes` block, Exclude Dir Containing, an Exclude { } block, and File entries the
 * client expands itself (`\|command` and `\<file`). agentfd serve and the real bacula-fd back up
 * the same FileSet; the catalog must list the same files for both jobs, with the same digests
 * where the options ask for them.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab } from '../helpers/bacula-lab.js';

const bacula = new BaculaLab('bacula-selection', {
  ports: { dir: 9171, fd: 9172, sd: 9173 },
  extraDirectorConf: (lab) =>
    [
      'FileSet {', '  Name = "SelectSet"', '  Include {',
      '    Exclude Dir Containing = ".nobackup"',
      '    Options { wildfile = "*.tmp"; wilddir = "*/cache"; exclude = yes }',
      '    Options { regexfile = "\\\\.(log|txt)$"; signature = MD5 }',
      '    Options { signature = SHA1 }',
      `    File = "${lab}/tree"`,
      // Expanded by the client: a program's output lines, and a list file's lines.
      `    File = "\\\\|/bin/sh -c 'echo ${lab}/extra/from-program.dat; echo ${lab}/extra/also-program.dat'"`,
      `    File = "\\\\<${lab}/list.txt"`,
      '  }',
      '  Exclude {', `    File = "${lab}/tree/private"`, `    File = "${lab}/tree/*.bak"`, '  }',
      '}',
      'Job { Name = "SelectBackup"; JobDefs = "LabJobDefs"; FileSet = "SelectSet" }',
      'FileSet {', '  Name = "BrokenListSet"', '  Include {', `    File = "\\\\<${lab}/no-such-list.txt"`, '  }', '}',
      'Job { Name = "BrokenListBackup"; JobDefs = "LabJobDefs"; FileSet = "BrokenListSet" }',
    ].join('\n'),
});
const lab = bacula.dir;

function write(rel: string, content = `${rel}\n`): void {
  const full = path.join(lab, rel);
  mkdirSync(path.dirname(full), { recursive: true });
  writeFileSync(full, content);
}

/**
 * The files of a job as the catalog holds them (straight from the lab's SQLite catalog): path, and
 * which digest the FD sent (md5: 22 base64 characters, sha1: 27, none: '-').
 */
function catalogFiles(jobId: number): string[] {
  const db = path.join(lab, 'work-dir', 'bacula.db');
  const sql = `SELECT Path.Path || Filename.Name, File.MD5 FROM File JOIN Path USING (PathId) JOIN Filename USING (FilenameId) WHERE File.JobId = ${jobId} ORDER BY 1;`;
  const result = spawnSync('sqlite3', ['-separator', ' ', db, sql], { encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  const kind = (digest: string) => (digest.length === 22 ? 'md5' : digest.length === 27 ? 'sha1' : digest.length > 1 ? `digest(${digest.length})` : '-');
  return result.stdout.trim().split('\n').map((line) => {
    const [name, digest = ''] = line.split(' ');
    return `${name} ${kind(digest)}`;
  });
}

const namesOf = (files: string[]) => files.map((f) => f.split(' ')[0]!);

beforeAll(async () => {
  bacula.start();
  for (const rel of ['tree/a.txt', 'tree/b.log', 'tree/c.dat', 'tree/junk.tmp', 'tree/old.bak', 'tree/sub/d.txt', 'tree/sub/e.tmp', 'tree/sub/cache/f.txt',
    'tree/skipme/.nobackup', 'tree/skipme/g.txt', 'tree/private/h.txt', 'extra/from-program.dat', 'extra/also-program.dat', 'extra/from-list.log']) write(rel);
  writeFileSync(path.join(lab, 'list.txt'), `${lab}/extra/from-list.log\n`);
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

describe('FileSet selection with a real Bacula 9.6 Director', () => {
  let ours: string[] = [];

  it('saves what the patterns, exclusions and client-side lists select', () => {
    const { jobId } = bacula.runJob('SelectBackup');
    ours = catalogFiles(jobId);
    const t = `${lab}/tree`;
    expect(namesOf(ours)).toEqual([
      `${lab}/extra/also-program.dat`,
      `${lab}/extra/from-list.log`,
      `${lab}/extra/from-program.dat`,
      `${t}/`,
      `${t}/a.txt`,
      `${t}/b.log`,
      `${t}/c.dat`,
      `${t}/sub/`,
      `${t}/sub/d.txt`,
    ]);
    // Files below the File entry get the digest of the block that selected them.
    expect(ours).toContain(`${t}/a.txt md5`);
    expect(ours).toContain(`${t}/c.dat sha1`);
  });

  it('selects exactly what the real bacula-fd selects', async () => {
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    try {
      const { jobId } = bacula.runJob('SelectBackup');
      expect(catalogFiles(jobId)).toEqual(ours);
    } finally {
      bacula.sh(['stop-real-fd'], true);
      await bacula.startServe();
    }
  });

  it('fails the job, saying why, when a client-side list cannot be read', () => {
    const report = bacula.runJobAnyEnd('BrokenListBackup');
    expect(report).toMatch(/Termination:\s+\*\*\* Backup Error \*\*\*/);
    expect(report).toMatch(/Cannot open FileSet input file: .*no-such-list\.txt\. ERR=/);
  });
});
