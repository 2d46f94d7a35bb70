#!/usr/bin/env node
/**
 * The Linux half of the Windows lane's cross-system checks (scripts/test-windows.sh):
 *
 *   node scripts/windows/cross.mjs make DIR    back up, on Linux, a tree whose names Windows cannot
 *                                              all hold; DIR/linux gets the volumes and expected.json
 *                                              (test/windows/lane.test.ts restores it under Windows)
 *                                              and DIR/planted: restore targets with symbolic
 *                                              links planted in them (Windows node under Wine
 *                                              cannot make a Unix symlink; Linux can)
 *   node scripts/windows/cross.mjs check DIR   restore, on Linux, the backup the Windows lane made in
 *                                              DIR/windows from its volumes alone (scan), and compare
 *                                              every file with DIR/windows/expected.json
 *
 * Exits non-zero with the differences when a check fails.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const [command, dirArg] = process.argv.slice(2);
if (!dirArg || !['make', 'check'].includes(command)) {
  console.error('usage: cross.mjs make|check DIR');
  process.exit(2);
}
const dir = path.resolve(dirArg);

function cli(args, config) {
  const result = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), ...args, '--config', config, '--json'], { encoding: 'utf8' });
  let json;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    throw new Error(`agentfd ${args.join(' ')} printed no JSON:\n${result.stdout}\n${result.stderr}`);
  }
  return { status: result.status, json };
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Names Linux holds and Windows does not, as they are, with their content. */
function linuxTree(tree) {
  const files = {
    'plain.txt': Buffer.from('a plain file\n'.repeat(100)),
    'random.bin': randomBytes(300_000),
    'sub/deep.log': Buffer.from(Array.from({ length: 2000 }, (_, i) => `log line ${i}\n`).join('')),
    'a:b.txt': Buffer.from('a colon in the name\n'),
    'what?.txt': Buffer.from('a question mark\n'),
    'CON': Buffer.from('a device name\n'),
    'aux.log': Buffer.from('another device name, with an extension\n'),
    'trailing.': Buffer.from('a trailing dot\n'),
    'README.md': Buffer.from('upper case\n'),
    'Readme.md': Buffer.from('mixed case: the same name for Windows\n'),
  };
  for (const [name, bytes] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(tree, name)), { recursive: true });
    writeFileSync(path.join(tree, name), bytes);
  }
  return Object.fromEntries(Object.entries(files).map(([name, bytes]) => [name, sha256(bytes)]));
}

/**
 * Restore targets with a link where a restore will pass, each to its own "outside" directory that
 * must stay empty: exchange/SG1 (the Exchange sample writes <target>/SG1/...), files/Z (a
 * filesystem restore of a tree on Wine's Z: drive writes <target>/Z/...), and pin/link for the
 * pinned-target checks.
 */
function plantLinks(planted) {
  rmSync(planted, { recursive: true, force: true });
  for (const [target, link] of [['exchange', 'SG1'], ['files', 'Z'], ['pin', 'link']]) {
    mkdirSync(path.join(planted, `${target}-outside`), { recursive: true });
    mkdirSync(path.join(planted, target), { recursive: true });
    symlinkSync(path.join(planted, `${target}-outside`), path.join(planted, target, link));
  }
}

if (command === 'make') {
  const base = path.join(dir, 'linux');
  rmSync(base, { recursive: true, force: true });
  const tree = path.join(base, 'tree');
  const files = linuxTree(tree);
  const config = path.join(base, 'agentfd.toml');
  writeFileSync(config, `data_dir = "data"\n[jobs.tree]\nagent = "filesystem"\npaths = [${JSON.stringify(tree)}]\ncompression = "zstd:3"\n`);
  const backup = cli(['backup', '--job', 'tree'], config);
  if (backup.status !== 0) throw new Error(`the Linux backup failed: ${JSON.stringify(backup.json)}`);
  writeFileSync(path.join(base, 'expected.json'), JSON.stringify({ tree, files, jobId: backup.json.jobId }, null, 2));
  console.log(`Linux backup of ${Object.keys(files).length} files made in ${base} (job ${backup.json.jobId})`);
  plantLinks(path.join(dir, 'planted'));
} else {
  const base = path.join(dir, 'windows');
  const expected = JSON.parse(readFileSync(path.join(base, 'expected.json'), 'utf8'));
  const work = path.join(dir, 'linux-check');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = path.join(work, 'agentfd.toml');
  writeFileSync(config, 'data_dir = "data"\n');
  const volumes = readdirSync(path.join(base, 'data', 'volumes')).filter((f) => f.endsWith('.afv')).map((f) => path.join(base, 'data', 'volumes', f));
  const scan = cli(['scan', ...volumes], config);
  if (scan.status !== 0) throw new Error(`scan of the Windows volumes failed: ${JSON.stringify(scan.json)}`);
  const to = path.join(work, 'restore');
  const restore = cli(['restore', '--job-id', '1', '--to', to], config);
  if (restore.status !== 0) throw new Error(`the Linux restore of the Windows backup failed: ${JSON.stringify(restore.json)}`);
  // The Windows tree's agent path (/Z:/tmp/.../tree) is restored under the target as it reads:
  // "Z:" is an ordinary directory name on Linux.
  const root = path.join(to, ...expected.agentRoot.split('/').filter(Boolean));
  const problems = [];
  for (const [name, digest] of Object.entries(expected.files)) {
    const file = path.join(root, ...name.split('/'));
    if (!existsSync(file)) problems.push(`${name}: missing`);
    else if (sha256(readFileSync(file)) !== digest) problems.push(`${name}: content differs`);
  }
  const listed = cli(['files', '1'], config).json.files;
  for (const [name, bits] of Object.entries(expected.attributes ?? {})) {
    const row = listed.find((f) => f.path === `${expected.agentRoot}/${name}`);
    if (!row) problems.push(`${name}: not in the catalog`);
    else if ((row.winAttributes ?? row.win_attributes) !== bits) problems.push(`${name}: Windows attributes ${row.winAttributes ?? row.win_attributes} where ${bits} were saved`);
  }
  if (problems.length > 0) {
    console.error(`the Windows backup does not restore on Linux as made:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`Linux restored the Windows backup: ${Object.keys(expected.files).length} files identical, Windows attributes kept in the catalog`);
}
