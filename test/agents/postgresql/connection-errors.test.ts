/**
 * The PostgreSQL agent's connection errors against real servers, through the real CLI: each says
 * what failed and names the setting to change (job options, passfile, REPLICATION, pg_hba.conf,
 * wal_level, max_wal_senders), and no password ever appears in what agentfd prints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from '../../helpers/cli.js';
import { makePluginDir, tempDir } from '../../helpers/native.js';
import { BACKUP_PASSWORD, BACKUP_ROLE, PG_BIN, PLAIN_PASSWORD, PLAIN_ROLE, PgCluster, freePort, passfile, postgresReady } from '../../helpers/postgres.js';

const skip = postgresReady();
const lane = skip === null ? describe : describe.skip;

let ws: string;
let plugins: string;
const started: PgCluster[] = [];

/** A backup of a one-job configuration with these agent options; the failure's whole text. */
function failingBackup(name: string, options: Record<string, string | number>) {
  const config = path.join(ws, `${name}.toml`);
  const opts = Object.entries(options)
    .map(([k, v]) => `${k} = ${JSON.stringify(String(v))}`)
    .join(', ');
  writeFileSync(config, `plugin_dir = ${JSON.stringify(plugins)}\ndata_dir = "state-${name}"\n[jobs.pg]\nagent = "PostgreSQL"\noptions = { ${opts} }\n`);
  const result = runCliJson(['backup', '--job', 'pg', '--config', config]);
  expect(result.status, result.stdout + result.stderr).toBe(1);
  expect(result.json.status).toBe('failed');
  return { text: [result.json.message, ...(result.json.errors ?? [])].join('\n'), output: result.stdout + result.stderr };
}

lane(`the PostgreSQL agent's connection errors${skip ? ` [SKIPPED: ${skip}]` : ''}`, () => {
  let server: PgCluster;

  beforeAll(async () => {
    ws = tempDir('pg-errors');
    plugins = makePluginDir(['postgresql']);
    server = await PgCluster.create();
    started.push(server);
  }, 300_000);

  afterAll(() => {
    for (const cluster of started) cluster.stop();
  });

  it('server unreachable: names the host and port options', async () => {
    const port = await freePort(); // nothing listens there
    const { text } = failingBackup('unreachable', { host: '127.0.0.1', port, user: BACKUP_ROLE });
    expect(text).toMatch(new RegExp(`cannot connect to PostgreSQL \\(host=127\\.0\\.0\\.1 port=${port} user=${BACKUP_ROLE}, replication\\): .*Connection refused`));
    expect(text).toMatch(/the server cannot be reached: check the job options host and port/);
  });

  it('authentication failed: names the passfile, and never shows the password tried', () => {
    const wrong = 'wrong-password-5e1d';
    const pass = passfile(path.join(ws, 'wrong'), server, BACKUP_ROLE, wrong);
    const { text, output } = failingBackup('auth', { host: '127.0.0.1', port: server.port, user: BACKUP_ROLE, passfile: pass });
    expect(text).toMatch(/password authentication failed for user "agentfd_backup"/);
    expect(text).toMatch(/authentication failed: give the user's password in a passfile \(the job option passfile, PGPASSFILE, or ~\/\.pgpass/);
    expect(output).not.toContain(wrong);
  });

  it('a password given as a job option is refused, and not shown', () => {
    const { text, output } = failingBackup('password-option', { host: '127.0.0.1', port: server.port, user: BACKUP_ROLE, password: BACKUP_PASSWORD });
    expect(text).toMatch(/the job option password is not accepted: job options are recorded with every backup; put the password in a passfile/);
    expect(output).not.toContain(BACKUP_PASSWORD);
  });

  it('no REPLICATION privilege: says how to grant it', () => {
    const pass = passfile(path.join(ws, 'plain'), server, PLAIN_ROLE, PLAIN_PASSWORD);
    const { text } = failingBackup('no-replication', { host: '127.0.0.1', port: server.port, user: PLAIN_ROLE, passfile: pass });
    expect(text).toMatch(/must be superuser or replication role to start walsender/);
    expect(text).toMatch(/the role has no REPLICATION privilege: ALTER ROLE <user> REPLICATION/);
  });

  it('wal_level too low: names wal_level and max_wal_senders', async () => {
    const minimal = await PgCluster.create({ settings: { wal_level: 'minimal', max_wal_senders: '0' } });
    started.push(minimal);
    try {
      const pass = passfile(path.join(ws, 'minimal'), minimal, BACKUP_ROLE, BACKUP_PASSWORD);
      const { text } = failingBackup('minimal', { host: '127.0.0.1', port: minimal.port, user: BACKUP_ROLE, passfile: pass });
      expect(text).toMatch(/number of requested standby connections exceeds max_wal_senders \(currently 0\)/);
      expect(text).toMatch(/the server allows no replication connections: set wal_level = replica \(or logical\) and max_wal_senders = 10 in postgresql\.conf and restart the server/);
    } finally {
      minimal.stop();
    }
  }, 120_000);

  it('max_wal_senders exhausted: says how many and what to raise', async () => {
    const one = await PgCluster.create({ settings: { max_wal_senders: '1' } });
    started.push(one);
    const pass = passfile(path.join(ws, 'one'), one, BACKUP_ROLE, BACKUP_PASSWORD);
    // pg_receivewal holds the only walsender.
    const receiver: ChildProcess = spawn(path.join(PG_BIN, 'pg_receivewal'), ['-h', '127.0.0.1', '-p', String(one.port), '-U', BACKUP_ROLE, '-D', tempDir('pg-receivewal'), '--no-loop'], {
      env: { ...process.env, PGPASSFILE: pass },
      stdio: 'ignore',
    });
    try {
      let senders = '0';
      for (let i = 0; i < 100 && senders !== '1'; i++) {
        senders = one.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'");
        if (senders !== '1') await new Promise((r) => setTimeout(r, 100));
      }
      expect(senders, 'pg_receivewal holds the walsender').toBe('1');
      const { text } = failingBackup('senders', { host: '127.0.0.1', port: one.port, user: BACKUP_ROLE, passfile: pass });
      expect(text).toMatch(/all 1 replication connections the server allows are in use \(max_wal_senders = 1\): raise max_wal_senders in postgresql\.conf/);
    } finally {
      receiver.kill('SIGTERM');
      one.stop();
    }
  }, 120_000);
});
