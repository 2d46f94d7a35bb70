/**
 * `agentfd serve` on Windows, as a Windows bacula-fd is used: Windows Node.js under Wine
 * (scripts/windows/wine-node.sh) is the client of the real Linux Director and Storage Daemon
 * (scripts/bacula/lab.sh). The FileSet names the tree with a Windows path written with '/'
 * (Z: is Wine's drive for /), as Bacula's Windows FileSets are written. A full backup must end
 * "Backup OK" with '/'-separated names in the catalog; a restore by the Windows serve "Restore OK",
 * the files byte for byte under where\Z\...; then the real Linux bacula-fd restores the same job
 * (plain STREAM_FILE_DATA, portable) to where/Z:/..., identical too.
 *
 * Wine is prepared here (setup + prebuilds): when it cannot be, the test fails with the reason.
 * Windows node's output reaches wine-node.sh's stdout only when it ends, so a preload (-r) copies
 * it into a file that the lab helper reads while it runs.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab } from '../helpers/bacula-lab.js';
import { ROOT } from '../helpers/native.js';

const WINE_NODE = path.join(ROOT, 'scripts', 'windows', 'wine-node.sh');

let tree: string;
const bacula = new BaculaLab('bacula-win', {
  ports: { dir: 9181, fd: 9182, sd: 9183 },
  extraDirectorConf: (lab) =>
    [
      'FileSet {', '  Name = "WinSet"', '  Include {', '    Options { signature = MD5 }',
      `    File = "${winSlashes(path.join(lab, 'winroot'))}"`, '  }', '}',
      'Job { Name = "WinBackup"; JobDefs = "LabJobDefs"; FileSet = "WinSet" }',
    ].join('\n'),
});

/** The Windows name of a Linux path, as Bacula's Windows FileSets write it: Z:/tmp/... */
function winSlashes(linuxPath: string): string {
  return `Z:${linuxPath}`;
}

/** The same with backslashes, as a Windows command line gives it. */
function winPath(linuxPath: string): string {
  return `Z:${linuxPath.replace(/\//g, '\\')}`;
}

function wineNode(args: string[]): string {
  const result = spawnSync('bash', [WINE_NODE, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 900_000 });
  const out = `${result.stdout}${result.stderr}`;
  if (result.status !== 0) throw new Error(`wine-node.sh ${args.join(' ')} failed (${result.status ?? result.signal ?? result.error?.message}); Windows node under Wine cannot run here:\n${out}`);
  return out;
}

/** Every file and directory under `root`: "dir", or the file's size and SHA-256. */
function contents(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    if (st.isDirectory()) {
      if (rel !== '') out[rel] = 'dir';
      for (const name of readdirSync(full).sort()) walk(rel === '' ? name : `${rel}/${name}`);
    } else if (st.isFile()) {
      out[rel] = `${st.size} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    } else out[rel] = 'other';
  };
  walk('');
  return out;
}

/** Modification times in whole seconds, files only. */
function mtimes(root: string): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    if (st.isDirectory()) for (const name of readdirSync(full)) walk(rel === '' ? name : `${rel}/${name}`);
    else out[rel] = Math.floor(st.mtimeMs / 1000);
  };
  walk('');
  return out;
}

beforeAll(() => {
  // Wine first: a lab without a client is of no use.
  const setup = wineNode(['setup']);
  expect(setup).toMatch(/Windows node v22\.\S+ win32 x64/);
  wineNode(['prebuilds']);
  tree = path.join(bacula.dir, 'winroot');
  mkdirSync(path.join(tree, 'sub dir', 'deeper'), { recursive: true });
  writeFileSync(path.join(tree, 'readme.txt'), 'plain text\r\nwith Windows line ends\r\n');
  writeFileSync(path.join(tree, 'binary.bin'), Buffer.concat([randomBytes(200_000), Buffer.alloc(70_000), randomBytes(1234)]));
  writeFileSync(path.join(tree, 'name with spaces.txt'), 'spaces in the name\n');
  writeFileSync(path.join(tree, 'empty'), '');
  writeFileSync(path.join(tree, 'sub dir', 'inner.txt'), 'inner\n'.repeat(5000));
  writeFileSync(path.join(tree, 'sub dir', 'deeper', 'data.bin'), randomBytes(65_536 * 2 + 17));
  bacula.start();
}, 900_000);

afterAll(async () => {
  try {
    await bacula.destroy();
  } finally {
    spawnSync('bash', [WINE_NODE, 'stop'], { cwd: ROOT, timeout: 60_000 });
  }
});

/** Start agentfd serve under Windows node, with its output copied to a file the helper reads. */
async function startWindowsServe(): Promise<void> {
  const outputFile = path.join(bacula.dir, 'windows-serve.log');
  const tee = path.join(bacula.dir, 'tee-output.cjs');
  writeFileSync(
    tee,
    [
      "const fs = require('node:fs');",
      `const file = ${JSON.stringify(winPath(outputFile))};`,
      'for (const stream of [process.stdout, process.stderr]) {',
      '  const write = stream.write.bind(stream);',
      '  stream.write = (chunk, ...rest) => { try { fs.appendFileSync(file, chunk); } catch {} return write(chunk, ...rest); };',
      '}',
    ].join('\n'),
  );
  await bacula.startServe('', false, {
    command: 'bash',
    args: (config) => [WINE_NODE, 'node', '-r', winPath(tee), 'bin/agentfd.js', 'serve', '--config', winPath(config)],
    outputFile,
    // No [bacula] table: Bacula's plugins are Linux libraries.
    baculaTable: [],
  });
}

describe('agentfd serve under Windows node (Wine), with the real Linux Director and SD', () => {
  let jobId = 0;

  it('answers status client from win32', async () => {
    await startWindowsServe();
    const status = bacula.console('status client=agentfd-fd');
    expect(status).toMatch(/agentfd-fd Version: agentfd .* x64 win32/);
  });

  it('backs up a Windows FileSet: Backup OK, names with / and the drive', () => {
    const { report, jobId: id } = bacula.runJob('WinBackup');
    jobId = id;
    expect(report).toMatch(/FD Files Written:\s+9\b/);
    // The catalog's names (9.6 schema: Path, then Filename in File's FilenameId).
    const query = `SELECT Path.Path || Filename.Name FROM File JOIN Path USING (PathId) JOIN Filename USING (FilenameId) WHERE JobId = ${jobId};`;
    const catalog = spawnSync('sqlite3', [path.join(bacula.dir, 'work-dir', 'bacula.db'), query], { encoding: 'utf8' });
    expect(catalog.status, catalog.stderr).toBe(0);
    const listed = catalog.stdout;
    const base = winSlashes(tree);
    for (const name of ['readme.txt', 'binary.bin', 'name with spaces.txt', 'empty', 'sub dir/inner.txt', 'sub dir/deeper/data.bin']) {
      expect(listed).toContain(`${base}/${name}`);
    }
    expect(listed).not.toContain('\\');
  });

  it('restores with the Windows serve: Restore OK, byte for byte under where\\Z\\...', () => {
    const where = path.join(bacula.dir, 'restore-win');
    const report = bacula.restore(jobId, winSlashes(where));
    expect(report).not.toMatch(/Error:|Warning:/);
    // where + "Z:/tmp/..." is where\Z\tmp\... on Windows (the drive's colon made a separator).
    const restored = path.join(where, 'Z', tree);
    expect(contents(restored)).toEqual(contents(tree));
    expect(mtimes(restored)).toEqual(mtimes(tree));
  });

  it('a restore under where never writes through a link planted in it: those files fail, nothing lands outside', () => {
    // Someone who can write in where plants a link where the restore will make "sub dir". Wine
    // follows a Unix symlink to a directory like a junction, and lstat there shows it as a plain
    // directory: only the pins (pinned-target.ts) see it, by its reparse-point attribute.
    const where = path.join(bacula.dir, 'restore-planted');
    const outside = path.join(bacula.dir, 'outside-planted');
    mkdirSync(outside, { recursive: true });
    const restored = path.join(where, 'Z', tree);
    mkdirSync(restored, { recursive: true });
    symlinkSync(outside, path.join(restored, 'sub dir'));
    const { out } = bacula.sh(['restore', String(jobId), winSlashes(where)], true);
    expect(readdirSync(outside)).toEqual([]);
    expect(out).toMatch(/sub dir.*(symbolic link|junction|not a plain directory)/);
    expect(out).not.toMatch(/Termination:\s+Restore OK\s*$/m);
    // What does not pass through the link is restored as usual.
    expect(readFileSync(path.join(restored, 'readme.txt'), 'utf8')).toBe(readFileSync(path.join(tree, 'readme.txt'), 'utf8'));
    expect(lstatSync(path.join(restored, 'sub dir')).isSymbolicLink()).toBe(true);
  });

  it('the real Linux bacula-fd restores the Windows backup identically', async () => {
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    const where = path.join(bacula.dir, 'restore-linux');
    bacula.restore(jobId, where);
    // A Linux FD keeps the name as it is: where/Z:/tmp/...
    const restored = path.join(where, 'Z:', tree);
    expect(contents(restored)).toEqual(contents(tree));
    expect(mtimes(restored)).toEqual(mtimes(tree));
    // Directories from Windows come with 'x' where they have 'r' (a Windows bacula-fd sends 0777).
    expect(lstatSync(path.join(restored, 'sub dir')).mode & 0o777).toBe(0o777);
  });
});
