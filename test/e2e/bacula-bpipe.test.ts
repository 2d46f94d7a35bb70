/**
 * Debian's own, unmodified Bacula 9.6 bpipe plugin (/usr/lib/bacula/bpipe-fd.so, from the
 * bacula-fd package, installed on first use where the tests may: test/helpers/debian.ts) through
 * the real CLI: listed with what it declares,
 * a backup of a shell command's output, restores through the plugin's writer, raw, and with the
 * writer replaced at restore time; Bacula's parsing of a command with colons; and the refusal when
 * libbac, which bpipe needs from its host, is not preloaded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, runCliJson } from '../helpers/cli.js';
import { ensureDebianPackage, fileNeed, skipNote } from '../helpers/debian.js';
import { removeDir, tempDir } from '../helpers/native.js';

const BPIPE = '/usr/lib/bacula/bpipe-fd.so';
/** Null when bpipe is there (bacula-fd installed now if need be), else why these tests skip. */
const MISSING = ensureDebianPackage(fileNeed(BPIPE, 'bacula-fd'));
const SIZE = 24 * 1024 * 1024 + 12345; // tens of MiB, not a multiple of any read size

let ws: string;
let source: string;
let sourceDigest: string;
const configs: Record<'isolated' | 'inProcess', string> = { isolated: '', inProcess: '' };

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function writeConfig(name: string, isolation: 'process' | 'none', jobs: string[]): string {
  const dir = path.join(ws, name);
  mkdirSync(path.join(dir, 'plugins'), { recursive: true, mode: 0o755 });
  chmodSync(path.join(dir, 'plugins'), 0o755);
  const file = path.join(dir, 'agentfd.toml');
  writeFileSync(
    file,
    [
      'plugin_dir = "plugins"',
      'data_dir = "data"',
      `isolation = "${isolation}"`,
      '[bacula]',
      'plugin_dir = "/usr/lib/bacula"',
      ...jobs,
    ].join('\n'),
  );
  return file;
}

/**
 * A bpipe job: Bacula's own command string, reader and writer as bacula-fd would run them. Signed
 * unless said otherwise: a restore runs the writer recorded on the volume only for a job signed by
 * a trusted key.
 */
function bpipeJob(name: string, command: string, compression = 'zstd:3', signed = true): string {
  const sign = signed ? `\nsign_with = ${JSON.stringify(path.join(ws, 'keys', 'admin.key'))}` : '';
  return `[jobs.${name}]\nplugin = ${JSON.stringify(command)}\ncompression = "${compression}"${sign}`;
}

beforeAll(() => {
  if (MISSING) return;
  ws = tempDir('bpipe');
  chmodSync(ws, 0o755);
  source = path.join(ws, 'source.bin');
  // Half random, half text: compressible and not, so the codec's path is exercised both ways.
  const random = randomBytes(SIZE >> 1);
  const text = Buffer.from(Array.from({ length: (SIZE - random.length) / 40 + 1 }, (_, i) => `row ${i} of the dump, 40 bytes long....\n`).join('')).subarray(0, SIZE - random.length);
  writeFileSync(source, Buffer.concat([random, text]));
  sourceDigest = sha256(source);
  expect(runCli(['keys', 'generate', '--out', path.join(ws, 'keys'), '--name', 'admin']).status).toBe(0);
  const jobs = [
    bpipeJob('dump', `bpipe:/@bpipe@/dump.bin:cat ${source}:sh -c 'cat > %w/restored.bin'`),
    bpipeJob('dump-gzip', `bpipe:/@bpipe@/dump.bin:cat ${source}:sh -c 'cat > %w/restored.bin'`, 'gzip:6'),
    // bpipe splits at the first three colons: the reader is "echo left", the writer "right:cat ..."
    bpipeJob('colons', 'bpipe:/@bpipe@/colons.txt:echo left:right:cat > %w/colons.txt'),
    bpipeJob('failing', 'bpipe:/@bpipe@/failing.txt:sh -c "echo partial; exit 3":cat > %w/failing.txt'),
    bpipeJob('unsigned', "bpipe:/@bpipe@/unsigned.txt:echo saved:sh -c 'cat > %w/writer-ran.txt'", 'zstd:3', false),
  ];
  configs.isolated = writeConfig('isolated', 'process', jobs);
  configs.inProcess = writeConfig('in-process', 'none', jobs);
});

afterAll(() => {
  if (ws) removeDir(ws);
});

describe.skipIf(MISSING !== null)(`Debian bpipe-fd.so${skipNote(MISSING)}`, () => {
  it('is listed with what it declares: name, interface 14, author and description', () => {
    const { status, json } = runCliJson(['plugins', 'list', '--config', configs.isolated]);
    expect(status).toBe(0);
    const bpipe = json.agents.find((a: { name: string }) => a.name === 'bpipe');
    expect(bpipe).toMatchObject({
      name: 'bpipe', kind: 'bacula', file: BPIPE, abi: 14, version: '1', author: 'Kern Sibbald', description: 'Bacula Pipe File Daemon Plugin',
    });
    // Only the -fd.so files of Bacula's directory are looked at, never libbac and the rest.
    expect(json.refused.filter((r: { file: string }) => r.file.startsWith('/usr/lib/bacula/'))).toEqual([]);
    const text = runCli(['plugins', 'list', '--config', configs.isolated]);
    expect(text.stdout).toMatch(/bpipe\s+Bacula 14\s+1\s+bpipe-fd\.so/);
    expect(text.stdout).toContain('bpipe: Bacula File Daemon plugin (interface 14): Bacula Pipe File Daemon Plugin, by Kern Sibbald');
  });

  for (const mode of ['isolated', 'inProcess'] as const) {
    describe(mode === 'isolated' ? 'isolated in an agent host (the default)' : 'in the daemon (isolation = "none")', () => {
      let made: number | undefined;

      /** The backup the restores below read, checked: made by the first test, or by a restore run alone (-t). */
      function backedUp(): number {
        if (made !== undefined) return made;
        const { status, json, stderr } = runCliJson(['backup', '--job', 'dump', '--config', configs[mode]]);
        expect(status, stderr).toBe(0);
        expect(json).toMatchObject({ status: 'ok', agent: 'bpipe', files: 1 });
        expect(json.bytes).toBe(SIZE);
        const files = runCliJson(['files', String(json.jobId), '--config', configs[mode]]);
        expect(files.json.files.map((f: { path: string }) => f.path)).toEqual(['/@bpipe@/dump.bin']);
        made = json.jobId as number;
        return made;
      }

      it('backs up the output of the reader command', () => {
        backedUp();
      });

      it('restores through the writer command saved with the job, byte for byte', () => {
        const to = path.join(ws, mode, 'restore-writer');
        mkdirSync(to, { recursive: true });
        const { status, json, stderr } = runCliJson(['restore', '--job-id', String(backedUp()), '--to', to, '--config', configs[mode]]);
        expect(status, stderr).toBe(0);
        expect(json).toMatchObject({ status: 'ok', files: 1, agents: ['bpipe'] });
        expect(sha256(path.join(to, 'restored.bin'))).toBe(sourceDigest);
        // bpipe ignores the core's file name: nothing else is written under the target.
        expect(existsSync(path.join(to, '@bpipe@'))).toBe(false);
      });

      it('restores with --raw as a plain file, without the plugin', () => {
        const to = path.join(ws, mode, 'restore-raw');
        const { status, json, stderr } = runCliJson(['restore', '--job-id', String(backedUp()), '--to', to, '--raw', '--config', configs[mode]]);
        expect(status, stderr).toBe(0);
        expect(json).toMatchObject({ status: 'ok', mode: 'raw' });
        expect(sha256(path.join(to, '@bpipe@', 'dump.bin'))).toBe(sourceDigest);
      });

      it('restores through another writer given at restore time (--option command=...)', () => {
        const to = path.join(ws, mode, 'restore-override');
        mkdirSync(to, { recursive: true });
        const command = `bpipe:/@bpipe@/dump.bin:cat /dev/null:sh -c 'cat > %w/other-name.bin'`;
        const { status, stderr } = runCliJson(['restore', '--job-id', String(backedUp()), '--to', to, '--option', `command=${command}`, '--config', configs[mode]]);
        expect(status, stderr).toBe(0);
        expect(sha256(path.join(to, 'other-name.bin'))).toBe(sourceDigest);
        expect(existsSync(path.join(to, 'restored.bin'))).toBe(false);
      });
    });
  }

  it('compresses with gzip:6 on the way and restores the same bytes', () => {
    const backup = runCliJson(['backup', '--job', 'dump-gzip', '--config', configs.isolated]);
    expect(backup.status, backup.stderr).toBe(0);
    const to = path.join(ws, 'gzip-restore');
    mkdirSync(to);
    const restore = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', to, '--config', configs.isolated]);
    expect(restore.status, restore.stderr).toBe(0);
    expect(sha256(path.join(to, 'restored.bin'))).toBe(sourceDigest);
  });

  it('does not run the writer recorded on an unsigned volume: the restore is refused until the command is given', () => {
    const backup = runCliJson(['backup', '--job', 'unsigned', '--config', configs.isolated]);
    expect(backup.status, backup.stderr).toBe(0);
    const to = path.join(ws, 'unsigned-restore');
    mkdirSync(to);
    const refused = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', to, '--config', configs.isolated]);
    expect(refused.status).not.toBe(0);
    expect(refused.json.code).toBe('E_PLUGIN_COMMAND');
    expect(refused.json.message).toContain("sh -c 'cat > %w/writer-ran.txt'"); // shown, for the person to read
    expect(refused.json.message).toMatch(/not signed by a trusted key.*--option command=/);
    expect(existsSync(path.join(to, 'writer-ran.txt'))).toBe(false);
    // Given by the person restoring, the same command runs.
    const command = "bpipe:/@bpipe@/unsigned.txt:true:sh -c 'cat > %w/writer-ran.txt'";
    const given = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', to, '--option', `command=${command}`, '--config', configs.isolated]);
    expect(given.status, given.stderr).toBe(0);
    expect(readFileSync(path.join(to, 'writer-ran.txt'), 'utf8')).toBe('saved\n');
  });

  it('parses a command with colons in the reader as bacula-fd does: the reader ends at the third colon', () => {
    const backup = runCliJson(['backup', '--job', 'colons', '--config', configs.isolated]);
    expect(backup.status, backup.stderr).toBe(0);
    const raw = path.join(ws, 'colons-raw');
    expect(runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', raw, '--raw', '--config', configs.isolated]).status).toBe(0);
    // The reader was "echo left"; ":right" went to the writer, as in bacula-fd.
    expect(readFileSync(path.join(raw, '@bpipe@', 'colons.txt'), 'utf8')).toBe('left\n');
    // ...whose writer is then the command "right:cat > ...", which does not exist: the restore
    // fails and says so, rather than reporting the data restored.
    const to = path.join(ws, 'colons-writer');
    mkdirSync(to);
    const restore = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', to, '--config', configs.isolated]);
    expect(restore.status).not.toBe(0);
    expect(restore.json.status).toBe('failed');
    expect(JSON.stringify(restore.json)).toMatch(/bpipe/);
  });

  it('fails the job when the reader command fails, keeping what bpipe said', () => {
    const backup = runCliJson(['backup', '--job', 'failing', '--config', configs.isolated]);
    expect(backup.status).not.toBe(0);
    expect(backup.json.status).toBe('failed');
    expect(JSON.stringify(backup.json)).toMatch(/bpipe-fd: Error closing for file \/@bpipe@\/failing\.txt: \d+ \(the command exited with status 3\)/);
  });

  it('is refused with the missing symbol named when libbac is not preloaded', () => {
    const dir = path.join(ws, 'no-libbac');
    mkdirSync(path.join(dir, 'plugins'), { recursive: true });
    chmodSync(path.join(dir, 'plugins'), 0o755);
    copyFileSync(BPIPE, path.join(dir, 'plugins', 'bpipe-fd.so'));
    chmodSync(path.join(dir, 'plugins', 'bpipe-fd.so'), 0o755);
    writeFileSync(path.join(dir, 'agentfd.toml'), 'plugin_dir = "plugins"\ndata_dir = "data"\n[bacula]\npreload = []\n');
    const { status, json } = runCliJson(['plugins', 'list', '--config', path.join(dir, 'agentfd.toml')]);
    expect(status).toBe(0);
    expect(json.agents).toEqual([]);
    expect(json.refused).toHaveLength(1);
    expect(json.refused[0].code).toBe('E_MISSING_SYMBOL');
    expect(json.refused[0].reason).toMatch(/needs the symbol \w+ \(_Z\w+\).*libbac.*no libraries are preloaded.*\[bacula\] preload.*\/usr\/lib\/bacula\/libbac\.so/);
    // With Debian's default preload the same copy loads.
    writeFileSync(path.join(dir, 'agentfd.toml'), 'plugin_dir = "plugins"\ndata_dir = "data"\n');
    const again = runCliJson(['plugins', 'list', '--config', path.join(dir, 'agentfd.toml')]);
    expect(again.json.agents.map((a: { name: string }) => a.name)).toEqual(['bpipe']);
  });
});
