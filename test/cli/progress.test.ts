/** The progress bar: shown on a terminal (bytes, rate, ETA when the total is known), never when piped or with --json. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { ensureDebianPackage, fileNeed, skipNote } from '../helpers/debian.js';
import { ROOT, SAMPLE_DIR, removeDir, tempDir } from '../helpers/native.js';

const dir = tempDir('progress');
afterAll(() => removeDir(dir));

/** Run agentfd under `script`, which gives it a pseudo-terminal, and return what the terminal showed. */
function onTerminal(args: string[]): string {
  const command = [process.execPath, path.join(ROOT, 'bin', 'agentfd.js'), ...args].map((a) => `'${a}'`).join(' ');
  return execFileSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: { ...process.env, AGENTFD_CONFIG: '' } });
}

// util-linux's script(1) is part of every Debian system (bsdutils, Essential: yes).
const MISSING = ensureDebianPackage(fileNeed('/usr/bin/script', 'bsdutils'));
describe.skipIf(MISSING !== null)(`progress${skipNote(MISSING)}`, () => {
  it('shows bytes, rate and files on a terminal, and ETA on a restore, never in piped or JSON output', () => {
    mkdirSync(path.join(dir, 'data'));
    writeFileSync(path.join(dir, 'data', 'big.bin'), Buffer.alloc(64 * 1024 * 1024, 1));
    const config = path.join(dir, 'agentfd.toml');
    writeFileSync(config, `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\ndata_dir = "state"\n[jobs.p]\nagent = "filesystem"\npaths = ["data"]\ncompression = "none"\n`);

    const backup = onTerminal(['backup', '--job', 'p', '--config', config]);
    expect(backup).toMatch(/backup p \d+(\.\d)? (B|KiB|MiB) \| \d+(\.\d)? (B|KiB|MiB)\/s \| \d+ files \| ETA/);
    expect(backup).toMatch(/job 1 \(p, agent filesystem, full\): committed/);

    const restore = onTerminal(['restore', '--job-id', '1', '--to', path.join(dir, 'r'), '--config', config]);
    expect(restore).toMatch(/restore 1 .*\| ETA \d+s/);

    const piped = runCli(['backup', '--job', 'p', '--config', config]);
    expect(piped.stderr).not.toMatch(/B\/s/);
    expect(piped.stdout).not.toMatch(/B\/s/);
  });
});
