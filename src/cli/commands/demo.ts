/**
 * `agentfd demo` (what `npm start` runs): the main job on an embedded default, with nothing to set
 * up. In a scratch directory it makes sample data (an Exchange-style store, SQL Server-style
 * databases, a directory tree), a key pair and a configuration, then backs up all three through
 * their agents (encrypted, signed, zstd), verifies, restores, compares, and prints a summary.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, lstatSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { registryFor } from '../context.js';
import { Catalog } from '../../catalog/catalog.js';
import { SAMPLE_PLUGIN_DIR, parseConfig } from '../../config/load.js';
import { restoreComponents, toAgentPath } from '../../agents/filesystem/agent-path.js';
import { generateKeyFiles, loadPrivateIdentity } from '../../crypto/keys.js';
import { AgentfdError } from '../../errors.js';
import { runBackup } from '../../jobs/backup.js';
import { runRestore } from '../../jobs/restore.js';
import { runVerify } from '../../jobs/verify.js';
import { humanBytes } from '../progress.js';
import { printJson, reportFailure, table, type CommandIo } from '../output.js';

function write(file: string, content: string | Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** Text that compresses like real logs do. */
function logLines(count: number, seed: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(`2026-11-26T12:${String((i / 60) % 60 | 0).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z host${seed} app[${1000 + (i % 7)}]: request ${i * 7919 % 100003} served in ${(i * 31) % 997} ms, status ${[200, 200, 200, 304, 404][i % 5]}`);
  }
  return lines.join('\n') + '\n';
}

function makeSampleData(root: string): void {
  for (const sg of ['SG1', 'SG2']) {
    write(path.join(root, 'exchange', sg, 'Mailbox1.edb'), Buffer.concat([randomBytes(256 * 1024), Buffer.from(logLines(20000, 1))]));
    write(path.join(root, 'exchange', sg, 'Mailbox1.stm'), randomBytes(64 * 1024));
    for (let n = 1; n <= 4; n++) write(path.join(root, 'exchange', sg, 'logs', `E${n.toString(16).toUpperCase().padStart(8, '0')}.log`), logLines(2000, n));
  }
  write(path.join(root, 'mssql', 'sales', 'sales.mdf'), Buffer.concat([randomBytes(128 * 1024), Buffer.from(logLines(10000, 2))]));
  write(path.join(root, 'mssql', 'sales', 'sales_log.ldf'), logLines(3000, 3));
  write(path.join(root, 'mssql', 'hr', 'hr.mdf'), logLines(2000, 4));
  write(path.join(root, 'files', 'www', 'index.html'), '<h1>agentfd demo</h1>\n');
  write(path.join(root, 'files', 'www', 'access.log'), logLines(20000, 5));
  write(path.join(root, 'files', 'notes', 'été 📦.txt'), 'unicode names survive\n');
  symlinkSync('www/index.html', path.join(root, 'files', 'home.html'));
}

/** Compare two trees: the same entries, bytes, symlink targets and permission bits. */
export function compareTrees(a: string, b: string): string[] {
  const problems: string[] = [];
  const walk = (rel: string) => {
    const left = path.join(a, rel);
    const right = path.join(b, rel);
    let l;
    let r;
    try {
      l = lstatSync(left);
      r = lstatSync(right);
    } catch {
      problems.push(`${rel}: missing in the restore`);
      return;
    }
    if ((l.mode & 0o7777) !== (r.mode & 0o7777) && !l.isSymbolicLink()) problems.push(`${rel}: mode ${(r.mode & 0o7777).toString(8)} != ${(l.mode & 0o7777).toString(8)}`);
    if (l.isSymbolicLink()) {
      if (!r.isSymbolicLink() || readlinkSync(left) !== readlinkSync(right)) problems.push(`${rel}: symlink differs`);
    } else if (l.isDirectory()) {
      for (const name of readdirSync(left).sort()) walk(path.join(rel, name));
    } else if (!readFileSync(left).equals(readFileSync(right))) problems.push(`${rel}: content differs`);
  };
  walk('');
  return problems;
}

export async function demoCommand(io: CommandIo, options: { dir?: string; json?: boolean }): Promise<number> {
  try {
    const root = options.dir ? path.resolve(options.dir) : mkdtempSync(path.join(os.tmpdir(), 'agentfd-demo-'));
    mkdirSync(root, { recursive: true });
    if (readdirSync(root).length > 0) throw new AgentfdError('E_USAGE', `${root} is not empty; give agentfd demo an empty or new directory`);
    const data = path.join(root, 'data');
    makeSampleData(data);
    const keys = generateKeyFiles(root, 'demo');
    const configFile = path.join(root, 'agentfd.toml');
    const text = [
      `# Made by agentfd demo. Every path is relative to this file.`,
      `plugin_dir = ${JSON.stringify(SAMPLE_PLUGIN_DIR)}`,
      `data_dir = "state"`,
      `volume_size = "64M"`,
      ``,
      `[jobs.exchange]`,
      `agent = "MicrosoftExchange"`,
      `encrypt_to = ["demo.pub"]`,
      `sign_with = "demo.key"`,
      `options = { store = ${JSON.stringify(path.join(data, 'exchange'))}, truncate_logs = "no" }`,
      ``,
      `[jobs.mssql]`,
      `agent = "MSSQL"`,
      `encrypt_to = ["demo.pub"]`,
      `sign_with = "demo.key"`,
      `options = { data_dir = ${JSON.stringify(path.join(data, 'mssql'))} }`,
      ``,
      `[jobs.files]`,
      `agent = "filesystem"`,
      `paths = ["data/files"]`,
      `encrypt_to = ["demo.pub"]`,
      `sign_with = "demo.key"`,
      ``,
    ].join('\n');
    writeFileSync(configFile, text);
    const config = parseConfig(text, configFile);
    const registry = await registryFor(config);
    const secrets = { keys: [{ key: loadPrivateIdentity(keys.privateFile).encryption!, file: keys.privateFile }] };
    const rows: { job: string; agent: string; jobId: number; files: number; bytes: number; stored: number; verify: string; restore: string; compare: string }[] = [];
    for (const job of ['exchange', 'mssql', 'files']) {
      const backup = await runBackup({ config, registry, jobName: job });
      const catalog = Catalog.open(config.dataDir);
      try {
        const verify = await runVerify({ catalog, jobId: backup.jobId, secrets });
        const to = path.join(root, 'restore', job);
        const restore = await runRestore({ config, catalog, registry, jobId: backup.jobId, to, secrets });
        const original = job === 'files' ? path.join(data, 'files') : path.join(data, job);
        // The filesystem agent restores a path under the target as its agent path says (on Windows
        // "C:\\x" -> <to>\\C\\x): the same mapping finds it here.
        const restoredRoot = job === 'files' ? path.join(to, ...restoreComponents(toAgentPath(original))) : to;
        const problems = compareTrees(original, restoredRoot);
        rows.push({
          job, agent: backup.agent, jobId: backup.jobId, files: backup.files, bytes: backup.bytes, stored: backup.storedBytes,
          verify: verify.status === 'ok' ? `ok (signature ${verify.signature})` : `BAD: ${verify.error}`,
          restore: restore.status, compare: problems.length === 0 ? 'identical' : problems.join('; '),
        });
      } finally {
        catalog.close();
      }
    }
    const ok = rows.every((r) => r.verify.startsWith('ok') && r.restore === 'restored' && r.compare === 'identical');
    if (options.json) printJson(io, { status: ok ? 'ok' : 'failed', jobId: rows.at(-1)?.jobId ?? null, dir: root, config: configFile, jobs: rows });
    else {
      io.out(`agentfd demo in ${root}\n`);
      io.out(table([['JOB', 'AGENT', 'ID', 'FILES', 'READ', 'STORED', 'VERIFY', 'RESTORE', 'COMPARED'], ...rows.map((r) => [r.job, r.agent, String(r.jobId), String(r.files), humanBytes(r.bytes), humanBytes(r.stored), r.verify, r.restore, r.compare])]));
      io.out(`\nEverything was encrypted to ${keys.publicFile} and signed; zstd:3 compressed.`);
      io.out(`Try: npx agentfd jobs --config ${configFile}`);
      io.out(`     npx agentfd restore --config ${configFile} --job-id 2 --raw --to ${path.join(root, 'raw')} --key ${keys.privateFile}`);
    }
    return ok ? 0 : 1;
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export function registerDemoCommand(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description('back up, verify and restore sample Exchange, MSSQL and file data through the sample agents, in a scratch directory')
    .option('--dir <dir>', 'an empty directory to work in (default: a new temporary directory)')
    .option('--json', 'print one JSON object')
    .action(async (o: { dir?: string; json?: boolean }) => setExit(await demoCommand(io, o)));
}
