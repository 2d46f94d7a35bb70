/**
 * Verify jobs through `agentfd serve` with the real Bacula 9.6 Director and SD, one test per level
 * the FD takes part in, each on its own tree: "Verify OK" while the tree (or volume) matches the
 * catalog, "Verify Differences" naming the file once it does not. The last test runs the same
 * jobs with agentfd and with the real bacula-fd and compares the Director's reports line by line.
 *
 * Data verifies compare the volume's data with the volume's own digests and sizes, which a changed
 * tree cannot touch (and the SD's block checksums catch a changed volume): its difference here is
 * a file whose data is shorter than its st_size says, as sysfs files are (/sys/devices/system/cpu/
 * online: st_size 4096, a few bytes of data), which `verify = ...s` reports. VolumeToCatalog
 * compares the volume with the catalog: its difference is a catalog digest changed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab } from '../helpers/bacula-lab.js';

const TREES = ['init', 'disk', 'volume', 'data', 'compare'] as const;

function tree(lab: string, name: (typeof TREES)[number]): string {
  return path.join(lab, `tree-${name}`);
}

/** A sysfs file: its st_size (4096) is not the length of its data. */
const SYSFS_FILE = '/sys/devices/system/cpu/online';

/** A FileSet on one tree (and more files): MD5 digests, `verify = pins5`, GZIP so Data has data to decode. */
function fileSet(name: string, root: string, ...more: string[]): string {
  const files = [root, ...more].map((file) => `File = "${file}"`).join('; ');
  return `FileSet { Name = "${name}"; Include { Options { signature = MD5; verify = pins5; compression = GZIP6 }; ${files} } }`;
}

function verifyJob(name: string, level: string, set: string, verifyJob?: string): string {
  return `Job { Name = "${name}"; JobDefs = "LabJobDefs"; Type = Verify; Level = ${level}; FileSet = "${set}"${verifyJob ? `; Verify Job = "${verifyJob}"` : ''} }`;
}

function directorConf(lab: string): string {
  return [
    fileSet('InitSet', tree(lab, 'init')),
    verifyJob('InitVerify', 'InitCatalog', 'InitSet'),
    fileSet('DiskSet', tree(lab, 'disk')),
    'Job { Name = "DiskBackup"; JobDefs = "LabJobDefs"; FileSet = "DiskSet" }',
    verifyJob('DiskVerify', 'DiskToCatalog', 'DiskSet', 'DiskBackup'),
    fileSet('VolumeSet', tree(lab, 'volume')),
    'Job { Name = "VolumeBackup"; JobDefs = "LabJobDefs"; FileSet = "VolumeSet" }',
    verifyJob('VolumeVerify', 'VolumeToCatalog', 'VolumeSet', 'VolumeBackup'),
    fileSet('DataSet', tree(lab, 'data')),
    fileSet('DataSysfsSet', tree(lab, 'data'), SYSFS_FILE),
    'Job { Name = "DataBackup"; JobDefs = "LabJobDefs"; FileSet = "DataSet" }',
    'Job { Name = "DataSysfsBackup"; JobDefs = "LabJobDefs"; FileSet = "DataSysfsSet" }',
    verifyJob('DataVerify', 'Data', 'DataSet', 'DataBackup'),
    verifyJob('DataSysfsVerify', 'Data', 'DataSysfsSet', 'DataSysfsBackup'),
    fileSet('CompareSet', tree(lab, 'compare'), SYSFS_FILE),
    'Job { Name = "CompareBackup"; JobDefs = "LabJobDefs"; FileSet = "CompareSet" }',
    verifyJob('CompareInit', 'InitCatalog', 'CompareSet'),
    verifyJob('CompareDisk', 'DiskToCatalog', 'CompareSet', 'CompareBackup'),
    verifyJob('CompareVolume', 'VolumeToCatalog', 'CompareSet', 'CompareBackup'),
    verifyJob('CompareData', 'Data', 'CompareSet', 'CompareBackup'),
  ].join('\n');
}

const bacula = new BaculaLab('bacula-verify', { ports: { dir: 9221, fd: 9222, sd: 9223 }, extraDirectorConf: directorConf });

/** Files of the kinds a verify sends; no hard links: bacula-fd 9.6's Data verify reports each further link as different (transfer/verify/data-check.ts), agentfd's does not. */
function makeTree(root: string): void {
  mkdirSync(path.join(root, 'sub dir'), { recursive: true });
  writeFileSync(path.join(root, 'a.txt'), 'version 1\n');
  writeFileSync(path.join(root, 'empty'), '');
  writeFileSync(path.join(root, 'sub dir', 'random.bin'), randomBytes(150_000));
  writeFileSync(path.join(root, 'sub dir', 'text.txt'), 'some text\n'.repeat(20_000));
  symlinkSync('a.txt', path.join(root, 'link'));
}

beforeAll(async () => {
  for (const name of TREES) makeTree(tree(bacula.dir, name));
  bacula.start();
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

/** Run a Verify job; its report (the job's messages, then the Director's summary). */
function verify(job: string, ...options: string[]): string {
  const report = bacula.runJobAnyEnd(job, ...options);
  expect(report, `${job} did not end with a Verify termination:\n${report}\n--- serve:\n${bacula.serveLog}`).toMatch(/Termination:\s+Verify (OK|Differences)\n/);
  return report;
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function termination(report: string): string {
  return /Termination:\s+(.*)\n/.exec(report)![1]!;
}

/** Change a file's content in place (same inode, so only the digest and size tell). */
function modify(file: string): void {
  writeFileSync(file, 'version 2, longer\n');
}

describe('Verify jobs through agentfd serve, with the real Director', () => {
  it('InitCatalog, then Catalog: Verify OK on the unchanged tree, Verify Differences naming a modified file', () => {
    const root = tree(bacula.dir, 'init');
    const init = verify('InitVerify');
    expect(termination(init)).toBe('Verify OK');
    expect(init).toMatch(/Files Examined:\s+7\b/);
    expect(termination(verify('InitVerify', 'level=Catalog'))).toBe('Verify OK');
    modify(path.join(root, 'a.txt'));
    const changed = verify('InitVerify', 'level=Catalog');
    expect(termination(changed)).toBe('Verify Differences');
    expect(changed).toContain(`File: ${root}/a.txt`);
    expect(changed).toMatch(/st_size\s+differ\. Cat: 10 File: 18/);
    expect(changed).toMatch(/MD5 digest differs\. File=\S+ Cat=\S+/);
  });

  it('DiskToCatalog: Verify OK after the backup, Verify Differences naming an added and a removed file', () => {
    const root = tree(bacula.dir, 'disk');
    bacula.runJob('DiskBackup');
    expect(termination(verify('DiskVerify'))).toBe('Verify OK');
    writeFileSync(path.join(root, 'added.txt'), 'new\n');
    rmSync(path.join(root, 'sub dir', 'text.txt'));
    const changed = verify('DiskVerify');
    expect(termination(changed)).toBe('Verify Differences');
    expect(changed).toContain(`New file: ${root}/added.txt`);
    expect(changed).toMatch(new RegExp(`in the Catalog but not on disk:\\n.*\\s${escaped(`${root}/sub dir/text.txt`)}\\n`));
  });

  it('VolumeToCatalog: Verify OK for the backup, Verify Differences naming a file whose catalog digest differs from the volume', () => {
    const root = tree(bacula.dir, 'volume');
    const { jobId } = bacula.runJob('VolumeBackup');
    expect(termination(verify('VolumeVerify'))).toBe('Verify OK');
    const db = path.join(bacula.dir, 'work-dir', 'bacula.db');
    const tamper = `UPDATE File SET MD5 = 'AAAAAAAAAAAAAAAAAAAAAA' WHERE JobId = ${jobId} AND FilenameId = (SELECT FilenameId FROM Filename WHERE Name = 'random.bin');`;
    const updated = spawnSync('sqlite3', ['-cmd', '.timeout 10000', db, tamper], { encoding: 'utf8' });
    expect(updated.status, updated.stderr).toBe(0);
    const changed = verify('VolumeVerify');
    expect(termination(changed)).toBe('Verify Differences');
    expect(changed).toContain(`File: ${root}/sub dir/random.bin`);
    expect(changed).toMatch(/MD5 digest differs\. File=\S+ Cat=AAAAAAAAAAAAAAAAAAAAAA/);
  });

  it('Data: decodes the GZIP data and checks its digests and sizes: Verify OK, and Verify Differences naming a file whose data is shorter than its st_size', () => {
    bacula.runJob('DataBackup');
    const ok = verify('DataVerify');
    expect(termination(ok)).toBe('Verify OK');
    expect(ok).toMatch(/Files Examined:\s+7\b/);
    bacula.runJob('DataSysfsBackup');
    const changed = verify('DataSysfsVerify');
    expect(termination(changed)).toBe('Verify Differences');
    expect(changed).toMatch(/FD termination status:\s+Verify differences/);
    expect(changed).toMatch(new RegExp(`agentfd-fd JobId \\d+:    st_size  differs on "${escaped(SYSFS_FILE)}"\\. Vol: \\d+ File: 4096\\n`));
    expect(changed).not.toMatch(/digest differs/);
  });

  it('the real bacula-fd gives the same reports for the same Verify jobs', async () => {
    const agentfd = compareSequence();
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    let real: string[][];
    try {
      real = compareSequence();
    } finally {
      bacula.sh(['stop-real-fd'], true);
      await bacula.startServe();
    }
    // The reports hold what differed, not only that something did.
    const told = agentfd.flat().join('\n');
    expect(told).toMatch(/st_size  differs on "\/sys\/devices\/system\/cpu\/online"/);
    expect(told).toMatch(/File: .*\/tree-compare\/a\.txt/);
    expect(told).toMatch(/New file: .*\/tree-compare\/added\.txt/);
    expect(agentfd).toEqual(real);
  });
});

/**
 * Backup, InitCatalog, Catalog, DiskToCatalog, VolumeToCatalog, Data; then a file changed and one
 * added, and Catalog and DiskToCatalog again. The tree is put back first, its inodes kept.
 * Each job's report as the lines that depend on the FD: what differs, counts, termination.
 */
function compareSequence(): string[][] {
  const root = tree(bacula.dir, 'compare');
  writeFileSync(path.join(root, 'a.txt'), 'version 1\n');
  rmSync(path.join(root, 'added.txt'), { force: true });
  bacula.runJob('CompareBackup');
  const jobs: string[][] = [['CompareInit'], ['CompareInit', 'level=Catalog'], ['CompareDisk'], ['CompareVolume'], ['CompareData']];
  const reports = jobs.map((job) => verify(...(job as [string, ...string[]])));
  modify(path.join(root, 'a.txt'));
  writeFileSync(path.join(root, 'added.txt'), 'new\n');
  reports.push(verify('CompareInit', 'level=Catalog'), verify('CompareDisk'));
  return reports.map((report) =>
    report
      .split('\n')
      .filter((line) => /JobId \d+: ( |File:|New file|Warning: The following|.*differs)|Files Examined|Files Expected|FD termination|Non-fatal FD errors|Termination:/.test(line))
      .filter((line) => !/(Verifying against|Start Verify|Using Device|Ready to read|Forward spacing|End of Volume|Elapsed time)/.test(line))
      .map((line) => line.replace(/^\S+ \S+ /, '').replace(/JobId \d+/, 'JobId N')),
  );
}
