/**
 * The PostgreSQL agent against a real PostgreSQL 15 server, through the real CLI: a full backup of
 * a pgbench database, tables of known content and a tablespace, through the replication protocol
 * (base.tar, <oid>.tar, backup_manifest); a restore into a new data directory that PostgreSQL
 * starts on another port with the same content (per-table checksums computed by queries); a raw
 * restore whose tar files and manifest pg_verifybackup accepts; a restore refused over a running
 * cluster; a cancelled backup, and one whose agent host is killed, that leave no backup running
 * on the server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from '../../helpers/cli.js';
import { childPids } from '../../helpers/processes.js';
import { ROOT, makePluginDir, tempDir } from '../../helpers/native.js';
import { BACKUP_PASSWORD, BACKUP_ROLE, PG_BIN, PgCluster, passfile, postgresReady, serverDir, tableChecksums } from '../../helpers/postgres.js';

const skip = postgresReady();
const lane = skip === null ? describe : describe.skip;

let ws: string;
let config: string;
let server: PgCluster;
const started: PgCluster[] = [];
const DB = 'shop';

const cli = (args: string[]) => runCliJson([...args, '--config', config]);

/** The full backup the tests share: made by the first test that needs it. */
let full: { jobId: number; files: string[] } | undefined;
function fullBackup() {
  if (full) return full;
  const result = cli(['backup', '--job', 'pg', '--level', 'full']);
  expect(result.status, result.stdout + result.stderr).toBe(0);
  expect(result.json.status).toBe('ok');
  const files = (cli(['files', String(result.json.jobId)]).json.files as { path: string }[]).map((f) => f.path).sort();
  full = { jobId: result.json.jobId, files };
  return full;
}

lane(`the PostgreSQL agent with a real server${skip ? ` [SKIPPED: ${skip}]` : ''}`, () => {
  let before: Record<string, string>;
  let tablespaceOid: string;

  beforeAll(async () => {
    ws = tempDir('pg');
    server = await PgCluster.create();
    started.push(server);
    server.sql(`CREATE DATABASE ${DB}`);
    const bench = server.run('pgbench', ['-U', 'postgres', '-i', '-s', '1', '-q', DB]);
    expect(bench.status, bench.stderr).toBe(0);
    const tsDir = serverDir('pgts');
    server.sql(`CREATE TABLESPACE extra LOCATION '${tsDir}'`);
    tablespaceOid = server.sql("SELECT oid FROM pg_tablespace WHERE spcname = 'extra'");
    server.sql(
      [
        "CREATE TABLE known (id int PRIMARY KEY, word text, amount numeric(12,2))",
        "INSERT INTO known SELECT g, 'word-' || g, g * 1.25 FROM generate_series(1, 5000) g",
        'CREATE TABLE in_tablespace (id int, payload text) TABLESPACE extra',
        "INSERT INTO in_tablespace SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 3000) g",
        "CREATE TABLE tiny (k text PRIMARY KEY, v text)",
        "INSERT INTO tiny VALUES ('a', 'alpha'), ('b', E'line\\nbreak'), ('c', NULL)",
      ].join('; '),
      DB,
    );
    before = tableChecksums(server, DB);

    const plugins = makePluginDir(['postgresql']);
    const pass = passfile(path.join(ws, 'secrets'), server, BACKUP_ROLE, BACKUP_PASSWORD);
    const options = `host = "127.0.0.1", port = "${server.port}", user = "${BACKUP_ROLE}", passfile = ${JSON.stringify(pass)}`;
    config = path.join(ws, 'agentfd.toml');
    writeFileSync(
      config,
      [
        `plugin_dir = ${JSON.stringify(plugins)}`,
        'data_dir = "state"',
        `[jobs.pg]\nagent = "PostgreSQL"\noptions = { ${options}, cluster = "main15" }`,
        // The server sends at most 32 kB/s: a backup that lasts until it is cancelled.
        `[jobs.pg-slow]\nagent = "PostgreSQL"\noptions = { ${options}, cluster = "main15", max_rate = "32" }`,
      ].join('\n\n'),
    );
  }, 300_000);

  afterAll(() => {
    for (const cluster of started) cluster.stop();
  });

  it('saves base.tar, each tablespace and the manifest as files of /@postgresql/<cluster>/', () => {
    const { files } = fullBackup();
    expect(files).toEqual(['/@postgresql/main15/backup_manifest', '/@postgresql/main15/base.tar', `/@postgresql/main15/${tablespaceOid}.tar`].sort());
    // No backup left running on the server.
    expect(server.sql('SELECT count(*) FROM pg_stat_progress_basebackup')).toBe('0');
  }, 300_000);

  it('estimates a full from the databases\' sizes, without starting a backup', () => {
    const estimate = cli(['estimate', '--job', 'pg', '--level', 'full']);
    expect(estimate.status, estimate.stdout + estimate.stderr).toBe(0);
    expect(estimate.json).toMatchObject({ method: 'agent', level: 'full', files: 3 });
    const sizes = Number(server.sql("SELECT sum(pg_database_size(oid)) FROM pg_database"));
    expect(estimate.json.bytes).toBe(sizes);
    expect(server.sql('SELECT count(*) FROM pg_stat_progress_basebackup')).toBe('0');
  }, 300_000);

  it('restores into a data directory that PostgreSQL starts with the same content', async () => {
    const { jobId } = fullBackup();
    const to = tempDir('pg-restore');
    const restore = cli(['restore', '--job-id', String(jobId), '--to', to]);
    expect(restore.status, restore.stdout + restore.stderr).toBe(0);
    expect(readFileSync(path.join(to, 'recovery.signal'), 'utf8')).toBe('');
    expect(readFileSync(path.join(to, 'postgresql.auto.conf'), 'utf8')).toMatch(/^restore_command = 'cp ".*\/agentfd_wal\/%f" "%p"'$/m);
    const restored = await PgCluster.open(to);
    started.push(restored);
    try {
      // Recovery ends and the server is promoted (recovery_target_action = promote).
      expect(await restored.recovered(), `recovery did not end:\n${restored.log()}`).toBe(true);
      expect(tableChecksums(restored, DB)).toEqual(before);
      expect(restored.sql('SELECT count(*) FROM pgbench_accounts', DB)).toBe('100000');
      expect(restored.sql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'extra'")).toBe(path.join(to, 'agentfd_tablespaces', tablespaceOid));
    } finally {
      restored.stop();
    }
  }, 300_000);

  it('restores raw files that tar and pg_verifybackup accept', () => {
    const { jobId } = fullBackup();
    const raw = tempDir('pg-raw');
    const restore = cli(['restore', '--job-id', String(jobId), '--to', raw, '--raw']);
    expect(restore.status, restore.stdout + restore.stderr).toBe(0);
    const saved = path.join(raw, '@postgresql', 'main15');
    expect(readdirSync(saved).sort()).toEqual(['backup_manifest', 'base.tar', `${tablespaceOid}.tar`].sort());
    // pg_verifybackup reads a plain data directory: unpack each tar as pg_basebackup -Fp lays it out.
    const plain = path.join(raw, 'plain');
    mkdirSync(path.join(plain, 'pg_tblspc', tablespaceOid), { recursive: true });
    const archives: [string, string][] = [['base.tar', plain], [`${tablespaceOid}.tar`, path.join(plain, 'pg_tblspc', tablespaceOid)]];
    for (const [tar, dir] of archives) {
      const untar = spawnSync('tar', ['-xf', path.join(saved, tar), '-C', dir], { encoding: 'utf8' });
      expect(untar.status, untar.stderr).toBe(0);
    }
    writeFileSync(path.join(plain, 'backup_manifest'), readFileSync(path.join(saved, 'backup_manifest')));
    const verify = spawnSync(path.join(PG_BIN, 'pg_verifybackup'), [plain], { encoding: 'utf8' });
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/backup successfully verified/);
  }, 300_000);

  it('refuses to restore over the data directory of a running server', () => {
    const { jobId } = fullBackup();
    const restore = cli(['restore', '--job-id', String(jobId), '--to', server.dataDir]);
    expect(restore.status).not.toBe(0);
    expect(JSON.stringify(restore.json)).toMatch(/holds a running PostgreSQL server's data directory \(postmaster\.pid\): refusing to write over it/);
    expect(server.sql('SELECT count(*) FROM known', DB)).toBe('5000');
  }, 300_000);

  it('refuses a target that holds a data directory already, and a restore without base.tar', () => {
    const { jobId } = fullBackup();
    const used = tempDir('pg-used');
    writeFileSync(path.join(used, 'PG_VERSION'), '15\n');
    const over = cli(['restore', '--job-id', String(jobId), '--to', used]);
    expect(over.status).not.toBe(0);
    expect(JSON.stringify(over.json)).toMatch(/already holds a PostgreSQL data directory \(PG_VERSION\): restore into an empty directory/);
    const partial = cli(['restore', '--job-id', String(jobId), '--to', tempDir('pg-partial'), '--include', '/@postgresql/main15/backup_manifest']);
    expect(partial.status).not.toBe(0);
    expect(JSON.stringify(partial.json)).toMatch(/no base\.tar was restored: a data directory needs the cluster's base\.tar/);
  }, 300_000);

  it('never shows or stores the password', () => {
    const { jobId } = fullBackup();
    const files = cli(['files', String(jobId)]);
    expect(files.stdout + files.stderr).not.toContain(BACKUP_PASSWORD);
    const catalog = readFileSync(path.join(ws, 'state', 'catalog.sqlite'));
    expect(catalog.includes(BACKUP_PASSWORD)).toBe(false);
    for (const volume of readdirSync(path.join(ws, 'state', 'volumes')).filter((f) => f.endsWith('.afv'))) {
      expect(readFileSync(path.join(ws, 'state', 'volumes', volume)).includes(BACKUP_PASSWORD)).toBe(false);
    }
  }, 300_000);

  /** The slow job, interrupted by `interrupt` once the server has sent 64 kB; its exit and output. */
  function slowBackupThen(interrupt: (child: ChildProcess) => void) {
    return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), 'backup', '--job', 'pg-slow', '--config', config], {
        env: { ...process.env, AGENTFD_CONFIG: '' },
      });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c));
      child.stderr.on('data', (c: Buffer) => (output += c));
      // Cancel once the server has sent 64 kB (2 s at 32 kB/s): the agent has had the start of
      // the COPY stream (the server's output buffer was flushed many times) and reads it.
      const poll = setInterval(() => {
        if (server.sql('SELECT count(*) FROM pg_stat_progress_basebackup WHERE backup_streamed >= 65536') === '1') {
          clearInterval(poll);
          interrupt(child);
        }
      }, 200);
      const deadline = setTimeout(() => {
        clearInterval(poll);
        child.kill('SIGKILL');
        reject(new Error(`the backup never started streaming:\n${output}`));
      }, 90_000);
      child.on('close', (code) => {
        clearTimeout(deadline);
        clearInterval(poll);
        resolve({ code, output });
      });
    });
  }

  /** No base backup and no walsender left on the server (the walsender notices its client gone). */
  async function expectNothingRunning() {
    let running = '';
    for (let i = 0; i < 100; i++) {
      running = server.sql("SELECT (SELECT count(*) FROM pg_stat_progress_basebackup) || '/' || (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')");
      if (running === '0/0') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(running, 'base backups / walsenders still running').toBe('0/0');
  }

  it('stops a cancelled backup at once and leaves no backup running on the server', async () => {
    const result = await slowBackupThen((child) => child.kill('SIGTERM'));
    expect(result.code, result.output).toBe(1);
    expect(result.output).toMatch(/the job was cancelled while reading the base backup; the base backup was ended on the server/);
    // The walsender ends with the connection, and the server's backup with it.
    await expectNothingRunning();
    const jobs = cli(['jobs']).json.jobs as { status: string }[];
    expect(jobs.at(-1)?.status).toBe('aborted');
    // And the next backup succeeds.
    const next = cli(['backup', '--job', 'pg', '--level', 'full']);
    expect(next.status, next.stdout + next.stderr).toBe(0);
  }, 300_000);

  it('a killed agent host fails the job, leaves no backup running on the server, and the next backup succeeds', async () => {
    const result = await slowBackupThen((child) => {
      const hosts = childPids(child.pid!, 'host-main.js');
      expect(hosts, 'the agent host process').not.toEqual([]);
      for (const pid of hosts) process.kill(pid, 'SIGKILL');
    });
    expect(result.code, result.output).toBe(1);
    expect(result.output).toMatch(/agent "PostgreSQL" .* crashed in backup_read\(\): its host process was killed by signal SIGKILL/);
    await expectNothingRunning();
    expect((cli(['jobs']).json.jobs as { status: string }[]).at(-1)?.status).toBe('aborted');
    const next = cli(['backup', '--job', 'pg', '--level', 'full']);
    expect(next.status, next.stdout + next.stderr).toBe(0);
  }, 300_000);
});
