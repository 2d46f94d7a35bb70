/**
 * The Windows lane (npm run test:windows): the real CLI under Windows Node.js (in Wine), with the
 * sample agents and the broken test agents built as DLLs by MinGW. The same checks as the Linux
 * suites where they apply: exports, negotiation and refusals, a full backup, verify and restore
 * through isolated DLL agents, an agent that crashes in its host; then the cross-system checks: a
 * backup made on Linux restored here with the documented name mapping, and a backup made here for
 * scripts/windows/cross.mjs to restore on Linux.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareTrees } from '../../src/cli/commands/demo.js';
import { restoreComponents, toAgentPath } from '../../src/agents/filesystem/agent-path.js';
import { runCliJson } from '../helpers/cli.js';
import { RELEASE_DIR, ROOT, SAMPLE_DIR, makePluginDir, tempDir } from '../helpers/native.js';
import { headerExports, peExports } from '../helpers/pe.js';

const CROSS = process.env.AGENTFD_CROSS_DIR;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function write(file: string, content: string | Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

describe('agentfd on Windows', () => {
  it('runs under Windows Node.js', () => {
    console.log(`Windows lane: process.platform === ${JSON.stringify(process.platform)}, node ${process.version}, ${process.arch}`);
    expect(process.platform).toBe('win32');
    expect(RELEASE_DIR).toMatch(/windows$/); // the MinGW-built DLLs
  });

  it('builds agent DLLs that export exactly what the header declares', () => {
    const declared = headerExports(readFileSync(path.join(ROOT, 'binding', 'include', 'agentfd_agent.h'), 'utf8'));
    expect(declared).toEqual(['Name', 'afd_negotiate']);
    const dlls = readdirSync(SAMPLE_DIR).filter((f) => f.endsWith('.dll'));
    expect(dlls.sort()).toEqual(['exchange.dll', 'faulty.dll', 'legacy.dll', 'mssql.dll', 'synthetic.dll']);
    for (const dll of dlls) expect(peExports(path.join(SAMPLE_DIR, dll)), dll).toEqual(declared);
    expect(peExports(path.join(RELEASE_DIR, 'afd_bacula_shim.dll'))).toEqual(['afd_bacula_shim']);
  });

  it('loads and negotiates the DLL agents, and refuses broken ones with the same reasons as on Linux', () => {
    const plugins = makePluginDir(['exchange', 'mssql', 'legacy', 'bad_future_abi', 'bad_null_name', 'bad_crash_name'], { 'notes.txt.dll': 'not a library' });
    const { status, json } = runCliJson(['plugins', 'list', '--plugin-dir', plugins]);
    expect(status).toBe(0);
    const byName = Object.fromEntries(json.agents.map((a: { name: string }) => [a.name, a]));
    // Generation 3 (confined restore writes, through pinned directories here) as on Linux.
    expect(byName.MicrosoftExchange).toMatchObject({ abi: 3, agentAbiRange: [1, 3], vendor: 'agentfd samples' });
    expect(byName.MSSQL).toMatchObject({ abi: 3, agentAbiRange: [2, 3] });
    expect(byName.LegacyFlatFiles).toMatchObject({ abi: 1, agentAbiRange: [1, 1], capabilities: ['full', 'restore'] });
    const refused = Object.fromEntries(json.refused.map((r: { file: string; code: string }) => [path.basename(r.file), r.code]));
    expect(refused).toEqual({
      'bad_crash_name.dll': 'E_LOAD_CRASHED',
      'bad_future_abi.dll': 'E_ABI_RANGE',
      'bad_null_name.dll': 'E_BAD_NAME',
      'notes.txt.dll': 'E_NOT_LIBRARY',
    });
  });

  it('backs up, verifies and restores Exchange, MSSQL and a directory through isolated DLL agents', () => {
    const ws = tempDir('win-e2e');
    const store = path.join(ws, 'store');
    write(path.join(store, 'SG1', 'DB1.edb'), Buffer.concat([randomBytes(400_000), Buffer.from('x'.repeat(200_000))]));
    write(path.join(store, 'SG1', 'logs', 'E00000001.log'), 'log\n'.repeat(5000));
    const sql = path.join(ws, 'sql');
    write(path.join(sql, 'sales', 'sales.mdf'), randomBytes(150_000));
    const tree = path.join(ws, 'tree');
    write(path.join(tree, 'a', 'b', 'deep.txt'), 'deep\n'.repeat(3000));
    write(path.join(tree, 'random.bin'), randomBytes(1_500_000));
    write(path.join(tree, 'été 📦.txt'), 'unicode\n');
    write(path.join(tree, 'empty'), '');
    const keys = runCliJson(['keys', 'generate', '--out', path.join(ws, 'keys'), '--name', 'admin']);
    expect(keys.status, keys.stderr).toBe(0);
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(
      config,
      [
        `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}`,
        'data_dir = "state"',
        '[jobs.exchange]', 'agent = "MicrosoftExchange"', 'encrypt_to = ["keys/admin.pub"]', 'sign_with = "keys/admin.key"',
        `options = { store = ${JSON.stringify(store)}, truncate_logs = "no" }`,
        '[jobs.sql]', 'agent = "MSSQL"', 'compression = "gzip:6"', `options = { data_dir = ${JSON.stringify(sql)} }`,
        '[jobs.files]', 'agent = "filesystem"', `paths = [${JSON.stringify(tree)}]`, 'encrypt_to = ["keys/admin.pub"]',
      ].join('\n'),
    );
    const key = path.join(ws, 'keys', 'admin.key');
    for (const [job, original, restoredAt] of [
      ['exchange', store, (to: string) => to],
      ['sql', sql, (to: string) => to],
      // C:\...\tree is restored as <to>\C\...\tree (the drive's colon cannot be in a name).
      ['files', tree, (to: string) => path.join(to, ...restoreComponents(toAgentPath(tree)))],
    ] as const) {
      const backup = runCliJson(['backup', '--job', job, '--config', config]);
      expect(backup.status, `${job}: ${backup.stdout} ${backup.stderr}`).toBe(0);
      expect(backup.json.status).toBe('ok');
      const verify = runCliJson(['verify', '--job-id', String(backup.json.jobId), '--config', config, '--key', key]);
      expect(verify.status, verify.stdout).toBe(0);
      const to = path.join(ws, 'restore', job);
      const restore = runCliJson(['restore', '--job-id', String(backup.json.jobId), '--to', to, '--config', config, '--key', key]);
      expect(restore.status, `${job}: ${restore.stdout}`).toBe(0);
      const root = restoredAt(to);
      const compared = job === 'exchange' ? path.join(root, 'SG1') : root;
      expect(compareTrees(job === 'exchange' ? path.join(original, 'SG1') : original, compared), job).toEqual([]);
    }
    // MSSQL's stream is a usable file on its own: --raw writes it under its own name.
    const raw = runCliJson(['restore', '--job-id', '2', '--to', path.join(ws, 'raw'), '--raw', '--config', config]);
    expect(raw.status, raw.stdout).toBe(0);
  });

  it('contains an agent that crashes in its host process: the job fails with the call named, agentfd goes on', () => {
    const ws = tempDir('win-crash');
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(
      config,
      `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\ndata_dir = "state"\n[jobs.crash]\nagent = "FaultInjector"\noptions = { fault = "crash-read" }\n[jobs.healthy]\nagent = "FaultInjector"\noptions = { fault = "none" }\n`,
    );
    const crash = runCliJson(['backup', '--job', 'crash', '--config', config]);
    expect(crash.signal, 'agentfd itself must not die').toBeNull();
    expect(crash.status).toBe(1);
    expect(crash.json.status).toBe('failed');
    expect([crash.json.message, ...(crash.json.errors ?? [])].join('\n')).toMatch(
      /agent "FaultInjector" \(.*faulty\.dll\) crashed in backup_read\(\): its host process exited with code 3221225477 \(0xC0000005: an access violation/,
    );
    const healthy = runCliJson(['backup', '--job', 'healthy', '--config', config]);
    expect(healthy.status, healthy.stdout).toBe(0);
    expect(healthy.json).toMatchObject({ status: 'ok', files: 3 });
  });
});

describe('across systems', () => {
  it('has the Linux half of the lane (scripts/test-windows.sh sets AGENTFD_CROSS_DIR)', () => {
    expect(CROSS, 'run this suite with npm run test:windows').toBeTruthy();
    expect(existsSync(path.join(CROSS!, 'linux', 'expected.json'))).toBe(true);
  });

  it('restores a backup made on Linux, mapping the names Windows cannot hold', () => {
    const expected = JSON.parse(readFileSync(path.join(CROSS!, 'linux', 'expected.json'), 'utf8')) as { tree: string; files: Record<string, string> };
    const ws = tempDir('win-from-linux');
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, 'data_dir = "state"\n');
    const volumesDir = path.join(CROSS!, 'linux', 'data', 'volumes');
    const volumes = readdirSync(volumesDir).filter((f) => f.endsWith('.afv')).map((f) => path.join(volumesDir, f));
    const scan = runCliJson(['scan', ...volumes, '--config', config]);
    expect(scan.status, scan.stdout).toBe(0);
    const to = path.join(ws, 'restore');
    const restore = runCliJson(['restore', '--job-id', '1', '--to', to, '--config', config]);
    const root = path.join(to, ...expected.tree.split('/').filter(Boolean));
    const read = (name: string) => sha256(readFileSync(path.join(root, ...name.split('/'))));
    // Names Windows holds come back as they were.
    for (const name of ['plain.txt', 'random.bin', 'sub/deep.log', 'README.md']) expect(read(name), name).toBe(expected.files[name]);
    // The documented mapping (README, "Windows"): forbidden characters and a trailing dot as %XX,
    // the first letter of a device name as %XX.
    expect(read('a%3Ab.txt')).toBe(expected.files['a:b.txt']);
    expect(read('what%3F.txt')).toBe(expected.files['what?.txt']);
    expect(read('%43ON')).toBe(expected.files.CON);
    expect(read('%61ux.log')).toBe(expected.files['aux.log']);
    expect(read('trailing%2E')).toBe(expected.files['trailing.']);
    // Readme.md would overwrite README.md on a case-insensitive system: refused, and said so.
    expect(restore.status).toBe(1);
    expect(restore.json.errors.join('\n')).toMatch(/Readme\.md.*README\.md|README\.md.*Readme\.md/);
    expect(restore.json.errors).toHaveLength(1);
  });

  it('makes a backup, with Windows attributes, for Linux to restore', () => {
    const base = path.resolve(CROSS!, 'windows'); // with its drive (Z: is Wine's /)
    const tree = path.join(base, 'tree');
    const files: Record<string, Buffer> = {
      'report.docx': randomBytes(200_000),
      'notes/today.txt': Buffer.from('written on Windows\r\n'.repeat(100)),
      'hidden.cfg': Buffer.from('hidden=yes\r\n'),
    };
    for (const [name, bytes] of Object.entries(files)) write(path.join(tree, ...name.split('/')), bytes);
    // attrib.exe is Windows' own tool: "hidden" has no POSIX twin.
    expect(spawnSync('attrib', ['+H', path.join(tree, 'hidden.cfg')]).status).toBe(0);
    const config = path.join(base, 'agentfd.toml');
    writeFileSync(config, `data_dir = "data"\n[jobs.tree]\nagent = "filesystem"\npaths = [${JSON.stringify(tree)}]\ncompression = "zstd:3"\n`);
    const backup = runCliJson(['backup', '--job', 'tree', '--config', config]);
    expect(backup.status, backup.stdout).toBe(0);
    const listed = runCliJson(['files', String(backup.json.jobId), '--config', config]).json.files as { path: string; winAttributes: number }[];
    const agentRoot = toAgentPath(tree);
    const hidden = listed.find((f) => f.path === `${agentRoot}/hidden.cfg`);
    expect(hidden!.winAttributes & 0x2).toBe(0x2);
    writeFileSync(
      path.join(base, 'expected.json'),
      JSON.stringify({
        agentRoot,
        files: Object.fromEntries(Object.entries(files).map(([name, bytes]) => [name, sha256(bytes)])),
        attributes: { 'hidden.cfg': hidden!.winAttributes },
      }),
    );
  });
});
