/**
 * The core job end to end, through the real CLI in child processes, with the compiled sample
 * agents, real files, real volumes and the real SQLite catalog: round trips for every agent with
 * every codec, with and without encryption; restores with the recorded agent missing, raw and
 * rerouted; a catalog rebuilt by scan; tampering, wrong keys, missing volumes, and an agent whose
 * stream breaks off.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, chmodSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees } from '../../src/cli/commands/demo.js';
import { runCli, runCliJson } from '../helpers/cli.js';
import { SAMPLE_DIR, makePluginDir, removeDir, tempDir } from '../helpers/native.js';

const AGENTS = ['filesystem', 'MicrosoftExchange', 'MSSQL', 'LegacyFlatFiles'] as const;
const CODECS = ['none', 'gzip:6', 'zstd:3'] as const;

let ws: string; // the workspace
let config: string;
/** The same jobs with native agents run inside the daemon (isolation = "none"). */
let inProcessConfig: string;
const cleanup: string[] = [];

function write(file: string, content: string | Buffer, mode?: number): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  if (mode !== undefined) chmodSync(file, mode);
}

function text(lines: number): string {
  return Array.from({ length: lines }, (_, i) => `line ${i} of a log that compresses ${i % 13}\n`).join('');
}

/** Source data of each agent: the directory a restore must reproduce. */
function sources(root: string): Record<(typeof AGENTS)[number], string> {
  const fs = path.join(root, 'tree');
  write(path.join(fs, 'a', 'b', 'deep.txt'), text(2000), 0o640);
  write(path.join(fs, 'random.bin'), randomBytes(2_500_000));
  write(path.join(fs, 'empty'), '');
  write(path.join(fs, 'été 📦.txt'), 'unicode\n', 0o600);
  symlinkSync('a/b/deep.txt', path.join(fs, 'rel-link'));
  symlinkSync('/etc/hostname', path.join(fs, 'abs-link'));
  chmodSync(path.join(fs, 'a'), 0o750);
  utimesSync(path.join(fs, 'random.bin'), new Date('2020-02-02T02:02:02Z'), new Date('2020-02-02T02:02:02.123Z'));

  const store = path.join(root, 'store');
  write(path.join(store, 'SG1', 'DB1.edb'), Buffer.concat([randomBytes(300_000), Buffer.from(text(5000))]));
  write(path.join(store, 'SG1', 'DB1.stm'), randomBytes(10_000));
  for (let n = 1; n <= 3; n++) write(path.join(store, 'SG1', 'logs', `E0000000${n}.log`), text(300 * n));

  const sql = path.join(root, 'sql');
  write(path.join(sql, 'sales', 'sales.mdf'), Buffer.concat([randomBytes(200_000), Buffer.from(text(3000))]));
  write(path.join(sql, 'sales', 'sales_log.ldf'), text(800));
  write(path.join(sql, 'hr', 'hr.mdf'), randomBytes(5000));

  const flat = path.join(root, 'flat');
  write(path.join(flat, 'export1.csv'), text(100));
  write(path.join(flat, 'export2.csv'), randomBytes(70_000));
  return { filesystem: fs, MicrosoftExchange: store, MSSQL: sql, LegacyFlatFiles: flat };
}

let src: ReturnType<typeof sources>;

function jobName(agent: string, codec: string, encrypted: boolean): string {
  return `${agent}-${codec.replace(':', '')}-${encrypted ? 'enc' : 'plain'}`;
}

function jobToml(agent: (typeof AGENTS)[number], codec: string, encrypted: boolean): string {
  const lines = [`[jobs.${jobName(agent, codec, encrypted)}]`, `agent = "${agent}"`, `compression = "${codec}"`];
  if (encrypted) lines.push('encrypt_to = ["keys/admin.pub"]', 'sign_with = "keys/admin.key"');
  if (agent === 'filesystem') lines.push(`paths = [${JSON.stringify(src.filesystem)}]`);
  if (agent === 'MicrosoftExchange') lines.push(`options = { store = ${JSON.stringify(src.MicrosoftExchange)}, truncate_logs = "no" }`);
  if (agent === 'MSSQL') lines.push(`options = { data_dir = ${JSON.stringify(src.MSSQL)} }`);
  if (agent === 'LegacyFlatFiles') lines.push(`options = { dir = ${JSON.stringify(src.LegacyFlatFiles)} }`);
  return lines.join('\n');
}

function cli(args: string[]) {
  return runCliJson([...args, '--config', config]);
}

/** Where a restore of `agent` puts the copy of its source. */
function restoredRoot(agent: string, to: string): string {
  return agent === 'filesystem' ? path.join(to, ...src.filesystem.split(path.sep).filter(Boolean)) : to;
}

beforeAll(() => {
  ws = tempDir('e2e');
  cleanup.push(ws);
  src = sources(path.join(ws, 'src'));
  expect(runCli(['keys', 'generate', '--out', path.join(ws, 'keys'), '--name', 'admin']).status).toBe(0);
  expect(runCli(['keys', 'generate', '--out', path.join(ws, 'keys'), '--name', 'other']).status).toBe(0);
  const jobs = AGENTS.flatMap((a) => CODECS.flatMap((c) => [jobToml(a, c, false), jobToml(a, c, true)]));
  jobs.push('[jobs.broken]\nagent = "MidstreamFailure"');
  jobs.push(`[jobs.exchange-fileset]\nagent = "MicrosoftExchange"\ninclude = ["/@exchange/**"]\nexclude = ["**/*.stm", "/@exchange/SG1/logs/E00000002.log"]\noptions = { store = ${JSON.stringify(src.MicrosoftExchange)}, truncate_logs = "no" }`);
  config = path.join(ws, 'agentfd.toml');
  writeFileSync(config, [`plugin_dir = ${JSON.stringify(path.join(ws, 'plugins'))}`, 'data_dir = "state"', 'volume_size = "4M"', '', ...jobs].join('\n\n'));
  inProcessConfig = path.join(ws, 'in-process.toml');
  writeFileSync(inProcessConfig, [`plugin_dir = ${JSON.stringify(path.join(ws, 'plugins'))}`, 'data_dir = "state-in-process"', 'isolation = "none"', '', ...jobs].join('\n\n'));
  // The samples plus the agent whose stream breaks off.
  const plugins = makePluginDir(['exchange', 'mssql', 'legacy', 'bad_midstream']);
  renameSync(plugins, path.join(ws, 'plugins'));
});
afterAll(() => cleanup.forEach(removeDir));

/**
 * Job ids of backups with the default (isolated) configuration, by job name: made by the round
 * trips, or by backedUp at a later test's first need, so that each test also runs alone (-t).
 */
const backups = new Map<string, number>();

function backedUp(name: string): number {
  let jobId = backups.get(name);
  if (jobId === undefined) {
    const backup = cli(['backup', '--job', name]);
    expect(backup.json, backup.stderr).toMatchObject({ status: 'ok', jobStatus: 'committed' });
    jobId = backup.json.jobId as number;
    backups.set(name, jobId);
  }
  return jobId;
}

describe('round trips, agents isolated in host processes (the default) and in-process', () => {
  for (const isolation of ['process', 'none'] as const)
  for (const agent of AGENTS) {
    for (const codec of CODECS) {
      for (const encrypted of [false, true]) {
        const name = jobName(agent, codec, encrypted);
        it(`${name} (isolation ${isolation}): backup, verify and restore are byte-identical`, () => {
          const cli = (args: string[]) => runCliJson([...args, '--config', isolation === 'process' ? config : inProcessConfig]);
          const backup = cli(['backup', '--job', name]);
          expect(backup.status, backup.stdout + backup.stderr).toBe(0);
          expect(backup.json).toMatchObject({ status: 'ok', jobStatus: 'committed', compression: codec, encrypted, signed: encrypted });
          const jobId = backup.json.jobId as number;
          if (isolation === 'process') backups.set(name, jobId);

          const keyArgs = encrypted ? ['--key', path.join(ws, 'keys', 'admin.key')] : [];
          const verify = cli(['verify', '--job-id', String(jobId), ...keyArgs]);
          expect(verify.json, verify.stderr).toMatchObject({ status: 'ok', jobId, signature: encrypted ? 'valid' : 'unsigned' });

          const to = path.join(ws, 'restores', isolation, name);
          const restore = cli(['restore', '--job-id', String(jobId), '--to', to, ...keyArgs]);
          expect(restore.status, restore.stdout + restore.stderr).toBe(0);
          expect(restore.json).toMatchObject({ status: 'ok', jobId, mode: 'agent', agents: [agent] });
          expect(compareTrees(src[agent], restoredRoot(agent, to))).toEqual([]);
          if (agent === 'filesystem') {
            // mtimes to the microsecond, and the directory modes.
            const original = lstatSync(path.join(src.filesystem, 'random.bin'), { bigint: true });
            const restored = lstatSync(path.join(restoredRoot(agent, to), 'random.bin'), { bigint: true });
            expect(restored.mtimeNs / 1000n).toBe(original.mtimeNs / 1000n);
            expect(lstatSync(path.join(restoredRoot(agent, to), 'a')).mode & 0o7777).toBe(0o750);
          }
        });
      }
    }
  }

  it('stores text-like data smaller with zstd and gzip than without compression', () => {
    const ids = Object.fromEntries(['MSSQL-none-plain', 'MSSQL-zstd3-plain', 'MSSQL-gzip6-plain'].map((n) => [n, backedUp(n)]));
    const jobs = runCliJson(['jobs', '--config', config]).json.jobs as { jobId: number; storedBytes: number }[];
    const stored = (n: string) => jobs.find((j) => j.jobId === ids[n])!.storedBytes;
    expect(stored('MSSQL-zstd3-plain')).toBeLessThan(stored('MSSQL-none-plain') * 0.8);
    expect(stored('MSSQL-gzip6-plain')).toBeLessThan(stored('MSSQL-none-plain') * 0.8);
  });
});

describe('routing a restore', () => {
  it('stops when the recorded agent is missing, names it and offers --raw; --raw gives the .bak with its digest', () => {
    const jobId = backedUp('MSSQL-zstd3-enc');
    const keyArgs = ['--key', path.join(ws, 'keys', 'admin.key')];
    const noMssql = makePluginDir(['exchange', 'legacy']);
    cleanup.push(noMssql);
    const to = path.join(ws, 'restores', 'missing-agent');
    const refused = runCliJson(['restore', '--config', config, '--plugin-dir', noMssql, '--job-id', String(jobId), '--to', to, ...keyArgs]);
    expect(refused.status).toBe(1);
    expect(refused.json).toMatchObject({ status: 'error', code: 'E_AGENT_MISSING' });
    expect(refused.json.message).toContain('saved by agent "MSSQL", which is not installed');
    expect(refused.json.message).toContain('--raw');
    expect(existsSync(to)).toBe(false);

    const raw = runCliJson(['restore', '--config', config, '--plugin-dir', noMssql, '--job-id', String(jobId), '--to', to, '--raw', ...keyArgs]);
    expect(raw.status, raw.stderr).toBe(0);
    expect(raw.json).toMatchObject({ status: 'ok', mode: 'raw', files: 2 });
    const files = cli(['files', String(jobId)]).json.files as { path: string; streams: { sha256: string }[] }[];
    for (const f of files) {
      const bak = path.join(to, ...f.path.split('/').filter(Boolean));
      const content = readFileSync(bak);
      expect(createHash('sha256').update(content).digest('hex')).toBe(f.streams[0]!.sha256);
      expect(content.subarray(0, 8).toString('latin1')).toBe('AFDBAK01');
    }
  });

  it('routes every file to another agent with --agent', () => {
    const jobId = backedUp('LegacyFlatFiles-none-plain');
    const to = path.join(ws, 'restores', 'rerouted');
    const result = cli(['restore', '--job-id', String(jobId), '--to', to, '--agent', 'filesystem']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.json.agents).toEqual(['filesystem']);
    expect(readFileSync(path.join(to, '@legacy', 'export2.csv')).equals(readFileSync(path.join(src.LegacyFlatFiles, 'export2.csv')))).toBe(true);
  });

  it("answers the agent's fileset check from the job's include and exclude globs", () => {
    const backup = cli(['backup', '--job', 'exchange-fileset']);
    expect(backup.status, backup.stderr).toBe(0);
    const paths = (cli(['files', String(backup.json.jobId)]).json.files as { path: string }[]).map((f) => f.path).sort();
    expect(paths).toEqual(['/@exchange/SG1/DB1.edb', '/@exchange/SG1/logs/E00000001.log', '/@exchange/SG1/logs/E00000003.log']);
  });

  it('restores only what --include selects', () => {
    const jobId = backedUp('MicrosoftExchange-gzip6-plain');
    const to = path.join(ws, 'restores', 'include');
    const result = cli(['restore', '--job-id', String(jobId), '--to', to, '--include', '/@exchange/SG1/logs/**']);
    expect(result.status, result.stderr).toBe(0);
    expect(readdirSync(path.join(to, 'SG1'))).toEqual(['logs']);
  });
});

describe('bad input', () => {
  it('refuses a wrong private key before writing anything', () => {
    const jobId = backedUp('filesystem-zstd3-enc');
    const to = path.join(ws, 'restores', 'wrong-key');
    const result = cli(['restore', '--job-id', String(jobId), '--to', to, '--key', path.join(ws, 'keys', 'other.key')]);
    expect(result.status).toBe(1);
    expect(result.json).toMatchObject({ status: 'failed', jobId, code: 'E_WRONG_KEY' });
    expect(result.json.message).toMatch(/is encrypted for the key [0-9a-f]{32}; the key .*other\.key \([0-9a-f]{32}\) does not open it/);
    expect(existsSync(to) ? readdirSync(to) : []).toEqual([]);
    const noKey = cli(['restore', '--job-id', String(jobId), '--to', to]);
    expect(noKey.json.message).toContain('no key or passphrase was given');
  });

  it('fails a job whose agent breaks off mid-stream, and never restores it as good', () => {
    const backup = cli(['backup', '--job', 'broken']);
    expect(backup.status).toBe(1);
    expect(backup.json).toMatchObject({ status: 'failed', jobStatus: 'failed', failedFiles: 1 });
    expect(backup.json.errors.join('\n')).toContain('read error at byte 131072');
    const jobId = backup.json.jobId as number;
    const files = cli(['files', String(jobId)]).json.files;
    expect(files).toMatchObject([{ path: '/@broken/data.bin', status: 'failed' }]);
    const restore = cli(['restore', '--job-id', String(jobId), '--to', path.join(ws, 'restores', 'broken')]);
    expect(restore.json).toMatchObject({ status: 'error', code: 'E_JOB_NOT_RESTORABLE' });
    const verify = cli(['verify', '--job-id', String(jobId)]);
    expect(verify.json).toMatchObject({ status: 'failed', verify: 'bad' });
  });

  it('names a job that does not exist and an agent that is not installed', () => {
    expect(cli(['backup', '--job', 'nope']).json.message).toContain('no job named "nope"');
    const cfg = path.join(ws, 'unknown-agent.toml');
    writeFileSync(cfg, `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\ndata_dir = "state2"\n[jobs.x]\nagent = "Oracle"\n`);
    const result = runCliJson(['backup', '--job', 'x', '--config', cfg]);
    expect(result.status).toBe(1);
    expect(result.json.message).toMatch(/no agent named "Oracle".*MSSQL/);
  });
});

describe('volumes', () => {
  function volumes(): string[] {
    const dir = path.join(ws, 'state', 'volumes');
    return readdirSync(dir).filter((f) => f.endsWith('.afv')).map((f) => path.join(dir, f));
  }

  it('rotates into several volumes, each starting with a header that says how to restore', () => {
    // Two backups of 2.5 MB of random bytes go past volume_size = "4M".
    backedUp('filesystem-none-plain');
    backedUp('filesystem-none-enc');
    const all = volumes();
    expect(all.length).toBeGreaterThan(1);
    const head = readFileSync(all[0]!).subarray(0, 4096).toString('utf8');
    expect(head).toContain('agentfd volume, format 1');
    expect(head).toContain('agentfd restore --job-id ID --to DIR');
  });

  it('verify names the record when one byte is flipped anywhere in a volume (an error in the job\'s own records, else a warning)', () => {
    const jobId = backedUp('filesystem-gzip6-plain');
    const placements = cli(['verify', '--job-id', String(jobId)]).json.volumes as string[];
    const volume = placements[0]!;
    const original = readFileSync(volume);
    const positions = [10, 3000, 4096 + 3, Math.floor(original.length / 2), original.length - 1];
    try {
      for (const at of positions) {
        const damaged = Buffer.from(original);
        damaged[at]! ^= 0x40;
        writeFileSync(volume, damaged);
        const result = cli(['verify', '--job-id', String(jobId)]);
        // The volume is shared with other jobs of this file: damage in their records is named as a
        // warning, and this job stays ok when its own records are sound.
        const named = result.json.verify === 'bad' ? result.json.error : (result.json.warnings as string[]).join('\n');
        expect(result.status, `flip at ${at}`).toBe(result.json.verify === 'bad' ? 1 : 0);
        expect(named, `flip at ${at}`).toMatch(at < 4096 ? /header/ : /(offset|byte) \d+/);
        expect(named).toContain(volume);
      }
    } finally {
      writeFileSync(volume, original);
    }
    expect(cli(['verify', '--job-id', String(jobId)]).json.verify).toBe('ok');
  });

  it('reports a missing volume clearly', () => {
    const jobId = backedUp('MicrosoftExchange-none-plain');
    const volume = (cli(['verify', '--job-id', String(jobId)]).json.volumes as string[])[0]!;
    renameSync(volume, `${volume}.away`);
    try {
      const result = cli(['restore', '--job-id', String(jobId), '--to', path.join(ws, 'restores', 'missing-volume')]);
      expect(result.status).toBe(1);
      expect(result.json.code).toBe('E_VOLUME_MISSING');
      expect(result.json.message).toContain(volume);
    } finally {
      renameSync(`${volume}.away`, volume);
    }
  });

  it('rebuilds a deleted catalog with scan, from which the same restores succeed', () => {
    const names = ['filesystem-zstd3-enc', 'MicrosoftExchange-gzip6-plain', 'MSSQL-none-enc', 'LegacyFlatFiles-zstd3-plain'];
    for (const name of names) backedUp(name);
    const listed = () => (cli(['jobs']).json.jobs as { jobId: number; name: string; status: string }[]).map(({ jobId, name, status }) => ({ jobId, name, status }));
    // A failed job too (made by the mid-stream test, or here when this test runs alone).
    if (!listed().some((j) => j.name === 'broken')) expect(cli(['backup', '--job', 'broken']).json.jobStatus).toBe('failed');
    const before = listed();
    const state = path.join(ws, 'state');
    for (const f of readdirSync(state).filter((f) => f.startsWith('catalog.sqlite'))) rmSync(path.join(state, f));
    expect(cli(['jobs']).json.jobs).toEqual([]);
    const scan = runCliJson(['scan', ...volumes(), '--config', config, '--key', path.join(ws, 'keys', 'admin.key')]);
    expect(scan.json.errors).toEqual([]);
    expect(scan.status).toBe(0);
    const jobs = listed();
    expect(jobs.sort((a, b) => a.jobId - b.jobId)).toEqual(before.sort((a, b) => a.jobId - b.jobId));
    expect(jobs.find((j) => j.name === 'broken')?.status).toBe('failed');
    for (const name of names) {
      const agent = name.split('-')[0] as (typeof AGENTS)[number];
      const to = path.join(ws, 'restores', `after-scan-${name}`);
      const restore = cli(['restore', '--job-id', String(backups.get(name)), '--to', to, '--key', path.join(ws, 'keys', 'admin.key')]);
      expect(restore.status, restore.stderr + restore.stdout).toBe(0);
      expect(compareTrees(src[agent], restoredRoot(agent, to))).toEqual([]);
    }
  });
});
