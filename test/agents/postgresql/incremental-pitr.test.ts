/**
 * The PostgreSQL agent's incrementals and point-in-time restores against a real PostgreSQL 15,
 * through the real CLI: a full; writes, pg_create_restore_point('before_drop'), a DROP TABLE,
 * more writes; an incremental (the WAL since the full, from the agent's replication slot); the
 * chain restored to recovery_target_name=before_drop (the dropped table back with its rows, the
 * later writes absent) and to the latest point (everything there), each started by PostgreSQL and
 * compared by per-table checksums, and to a recovery_target_time; full, incremental, differential
 * and incremental each restored; and an incremental or a differential that must be a full (the
 * slot was dropped, or let the WAL go) delivered as a full, saying why; a cancelled incremental
 * that leaves the slot where it was, so the next one saves that WAL.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from '../../helpers/cli.js';
import { ROOT, makePluginDir, tempDir } from '../../helpers/native.js';
import { BACKUP_PASSWORD, BACKUP_ROLE, PgCluster, passfile, postgresReady, tableChecksums } from '../../helpers/postgres.js';

const skip = postgresReady();
const lane = skip === null ? describe : describe.skip;

const DB = 'shop';
const SLOT = 'agentfd_pitr15';
let ws: string;
let config: string;
let pass: string;
let server: PgCluster;
const started: PgCluster[] = [];

const cli = (args: string[]) => runCliJson([...args, '--config', config]);

function backup(level: string, job = 'pg') {
  const result = cli(['backup', '--job', job, '--level', level]);
  expect(result.status, result.stdout + result.stderr).toBe(0);
  expect(result.json.status).toBe('ok');
  return result.json;
}

/** The chain full + incremental, with what the database held at the restore point and at the end. */
let chain: { full: number; incr: number; atRestorePoint: Record<string, string>; latest: Record<string, string>; slotAfterFull: string; beforeDropTime: string } | undefined;
function fullThenIncremental() {
  if (chain) return chain;
  const full = backup('full');
  const slotAfterFull = server.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${SLOT}'`);
  server.sql("INSERT INTO orders SELECT g, 'before-' || g FROM generate_series(101, 200) g", DB);
  const atRestorePoint = tableChecksums(server, DB);
  server.sql("SELECT pg_create_restore_point('before_drop')");
  const beforeDropTime = server.sql('SELECT clock_timestamp()');
  server.sql('DROP TABLE doomed', DB);
  server.sql("INSERT INTO orders SELECT g, 'after-' || g FROM generate_series(201, 300) g", DB);
  const latest = tableChecksums(server, DB);
  const incr = backup('incremental');
  expect(incr).toMatchObject({ level: 'incremental', referenceJob: full.jobId });
  chain = { full: full.jobId, incr: incr.jobId, atRestorePoint, latest, slotAfterFull, beforeDropTime };
  return chain;
}

/** Restore the chain ending at jobId with these restore options, start it, and return its checksums. */
async function restoreAndStart(jobId: number, options: string[]): Promise<Record<string, string>> {
  const to = tempDir('pg-pitr-restore');
  const restore = cli(['restore', '--job-id', String(jobId), '--to', to, ...options.flatMap((o) => ['--option', o])]);
  expect(restore.status, restore.stdout + restore.stderr).toBe(0);
  const restored = await PgCluster.open(to);
  started.push(restored);
  try {
    expect(await restored.recovered(), `recovery did not end:\n${restored.log()}`).toBe(true);
    return tableChecksums(restored, DB);
  } finally {
    restored.stop();
  }
}

lane(`PostgreSQL incrementals and point-in-time restores${skip ? ` [SKIPPED: ${skip}]` : ''}`, () => {
  beforeAll(async () => {
    ws = tempDir('pg-pitr');
    server = await PgCluster.create();
    started.push(server);
    server.sql(`CREATE DATABASE ${DB}`);
    server.sql(
      [
        'CREATE TABLE orders (id int PRIMARY KEY, label text)',
        "INSERT INTO orders SELECT g, 'first-' || g FROM generate_series(1, 100) g",
        'CREATE TABLE doomed (id int, note text)',
        "INSERT INTO doomed SELECT g, 'keep me ' || g FROM generate_series(1, 250) g",
      ].join('; '),
      DB,
    );
    const plugins = makePluginDir(['postgresql']);
    pass = passfile(path.join(ws, 'secrets'), server, BACKUP_ROLE, BACKUP_PASSWORD);
    config = path.join(ws, 'agentfd.toml');
    writeFileSync(
      config,
      [
        `plugin_dir = ${JSON.stringify(plugins)}`,
        'data_dir = "state"',
        `[jobs.pg]\nagent = "PostgreSQL"\noptions = { host = "127.0.0.1", port = "${server.port}", user = "${BACKUP_ROLE}", passfile = ${JSON.stringify(pass)}, cluster = "pitr15" }`,
        // zstd:19 compresses a few MB/s: an incremental of 100 MB of WAL lasts until it is cancelled.
        `[jobs.pg-slow]\nagent = "PostgreSQL"\ncompression = "zstd:19"\noptions = { host = "127.0.0.1", port = "${server.port}", user = "${BACKUP_ROLE}", passfile = ${JSON.stringify(pass)}, cluster = "slow15" }`,
        // The slot keeps the WAL since the last full, for differentials.
        `[jobs.pg-diff]\nagent = "PostgreSQL"\noptions = { host = "127.0.0.1", port = "${server.port}", user = "${BACKUP_ROLE}", passfile = ${JSON.stringify(pass)}, cluster = "diff15", keep_wal = "since_full" }`,
      ].join('\n\n'),
    );
  }, 300_000);

  afterAll(() => {
    for (const cluster of started) cluster.stop();
  });

  it('an incremental saves the WAL since the full, segment by segment, and the committed job advances the slot', () => {
    const { incr, slotAfterFull } = fullThenIncremental();
    expect(slotAfterFull, 'the full made the slot').toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const files = (cli(['files', String(incr)]).json.files as { path: string }[]).map((f) => f.path);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(file).toMatch(/^\/@postgresql\/pitr15\/wal\/[0-9A-F]{24}$/);
    // The slot exists, is not in use, and was advanced past where the full left it.
    const [restart, active] = server.sql(`SELECT restart_lsn, active FROM pg_replication_slots WHERE slot_name = '${SLOT}'`).split('|');
    expect(active).toBe('f');
    expect(server.sql(`SELECT '${restart}'::pg_lsn > '${slotAfterFull}'::pg_lsn`)).toBe('t');
  }, 300_000);

  it('estimates an incremental from the WAL since the reference job', () => {
    fullThenIncremental();
    server.sql("INSERT INTO orders SELECT g, 'more-' || g FROM generate_series(1001, 3000) g", DB);
    const estimate = cli(['estimate', '--job', 'pg', '--level', 'incremental']);
    expect(estimate.status, estimate.stdout + estimate.stderr).toBe(0);
    expect(estimate.json).toMatchObject({ method: 'agent', level: 'incremental' });
    expect(estimate.json.files).toBeGreaterThanOrEqual(1);
    expect(estimate.json.bytes).toBe(estimate.json.files * 16 * 1024 * 1024);
  }, 300_000);

  it('restores full + incremental to recovery_target_name=before_drop: the dropped table is back, later writes absent', async () => {
    const { incr, atRestorePoint, latest } = fullThenIncremental();
    const sums = await restoreAndStart(incr, ['recovery_target_name=before_drop']);
    expect(sums).toEqual(atRestorePoint);
    expect(sums.doomed).toMatch(/^250:/);
    expect(sums).not.toEqual(latest);
  }, 300_000);

  it('restores full + incremental to recovery_target_time: the state at that moment', async () => {
    const { incr, atRestorePoint, beforeDropTime } = fullThenIncremental();
    expect(await restoreAndStart(incr, [`recovery_target_time=${beforeDropTime}`])).toEqual(atRestorePoint);
  }, 300_000);

  it('restores full + incremental to the latest point: everything is there', async () => {
    const { incr, latest } = fullThenIncremental();
    const sums = await restoreAndStart(incr, []);
    expect(sums).toEqual(latest);
    expect(sums.doomed).toBeUndefined();
    expect(sums.orders).toMatch(/^300:/);
  }, 300_000);

  it('refuses two recovery targets at once', () => {
    const { incr } = fullThenIncremental();
    const restore = cli(['restore', '--job-id', String(incr), '--to', tempDir('pg-pitr-two'), '--option', 'recovery_target_name=before_drop', '--option', 'recovery_target_lsn=0/1']);
    expect(restore.status).not.toBe(0);
    expect(JSON.stringify(restore.json)).toMatch(/the restore options recovery_target_lsn and recovery_target_name are both given|the restore options recovery_target_name and recovery_target_lsn are both given/);
  }, 300_000);

  it('delivers a full, saying why, when the slot no longer holds the WAL', () => {
    fullThenIncremental();
    server.sql(`SELECT pg_drop_replication_slot('${SLOT}')`);
    const result = backup('incremental');
    expect(result.level).toBe('full');
    expect(JSON.stringify(result)).toMatch(/making a full backup instead of an incremental: the replication slot agentfd_pitr15 no longer exists/);
    // The full made the slot again, for the next incremental.
    expect(server.sql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${SLOT}'`)).toBe('1');
    expect(backup('incremental').level).toBe('incremental');
  }, 300_000);

  it('full, incremental, differential, incremental: each point restores (keep_wal = since_full)', async () => {
    server.sql('CREATE TABLE steps (n int, what text)', DB);
    const full = backup('full', 'pg-diff');
    server.sql("INSERT INTO steps VALUES (1, 'after the full')", DB);
    const incr1 = backup('incremental', 'pg-diff');
    const atIncr1 = tableChecksums(server, DB);
    server.sql("INSERT INTO steps VALUES (2, 'after the incremental')", DB);
    const diff = backup('differential', 'pg-diff');
    expect(diff).toMatchObject({ level: 'differential', referenceJob: full.jobId });
    const atDiff = tableChecksums(server, DB);
    server.sql("INSERT INTO steps VALUES (3, 'after the differential')", DB);
    const incr2 = backup('incremental', 'pg-diff');
    expect(incr2).toMatchObject({ level: 'incremental', referenceJob: diff.jobId });
    const atIncr2 = tableChecksums(server, DB);
    expect(await restoreAndStart(incr1.jobId, [])).toEqual(atIncr1);
    expect(await restoreAndStart(diff.jobId, [])).toEqual(atDiff);
    expect(await restoreAndStart(incr2.jobId, [])).toEqual(atIncr2);
    expect(atIncr2.steps).toMatch(/^3:/);
  }, 300_000);

  it('a differential after incrementals that let the WAL go is a full, and says how to keep it', () => {
    fullThenIncremental();
    const result = backup('differential');
    expect(result.level).toBe('full');
    expect(JSON.stringify(result)).toMatch(/making a full backup instead of a differential: the replication slot agentfd_pitr15 no longer holds the WAL since [0-9A-F]+\/[0-9A-F]+ \(incrementals let it go: set the job option keep_wal=since_full/);
  }, 300_000);

  it('a cancelled incremental leaves the slot where it was, and the next incremental takes its WAL', async () => {
    const full = backup('full', 'pg-slow');
    const slotBefore = server.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'agentfd_slow15'");
    server.sql("CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) AS filler FROM generate_series(1, 600000) g", DB);
    const result = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), 'backup', '--job', 'pg-slow', '--level', 'incremental', '--config', config], {
        env: { ...process.env, AGENTFD_CONFIG: '' },
      });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c));
      child.stderr.on('data', (c: Buffer) => (output += c));
      // Cancel once the agent streams from its slot and has had a few segments.
      const poll = setInterval(() => {
        const streamed = server.sql(
          "SELECT coalesce((SELECT sent_lsn - s.restart_lsn FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = 'agentfd_slow15'), 0)",
        );
        if (Number(streamed) > 48 * 1024 * 1024) {
          clearInterval(poll);
          child.kill('SIGTERM');
        }
      }, 100);
      const deadline = setTimeout(() => {
        clearInterval(poll);
        child.kill('SIGKILL');
        reject(new Error(`the incremental never streamed 48 MB:\n${output}`));
      }, 120_000);
      child.on('close', (code) => {
        clearTimeout(deadline);
        clearInterval(poll);
        resolve({ code, output });
      });
    });
    expect(result.code, result.output).toBe(1);
    expect(result.output).toMatch(/cancelled/);
    expect(server.sql("SELECT restart_lsn || ' ' || active FROM pg_replication_slots WHERE slot_name = 'agentfd_slow15'")).toBe(`${slotBefore} false`);
    // The same job, compressed fast this time (the same catalog: the full is its reference).
    const fastConfig = path.join(ws, 'fast.toml');
    writeFileSync(fastConfig, readFileSync(config, 'utf8').replace('compression = "zstd:19"', 'compression = "zstd:1"'));
    const next = runCliJson(['backup', '--job', 'pg-slow', '--level', 'incremental', '--config', fastConfig]);
    expect(next.status, next.stdout + next.stderr).toBe(0);
    expect(next.json).toMatchObject({ level: 'incremental', referenceJob: full.jobId });
    // It saved the WAL the cancelled job had read: from the full's end, the segment of the slot.
    const first = (runCliJson(['files', String(next.json.jobId), '--config', config]).json.files as { path: string }[]).map((f) => f.path).sort()[0];
    expect(first).toBe(`/@postgresql/slow15/wal/${server.sql(`SELECT pg_walfile_name('${slotBefore}'::pg_lsn + 1)`)}`);
  }, 300_000);

  // Last: it backs the job up from another server, which later tests of the job would notice.
  it('an incremental from a server on another timeline (a restored, promoted copy) is a full, saying why', async () => {
    const { incr } = fullThenIncremental();
    const to = tempDir('pg-pitr-timeline');
    const restore = cli(['restore', '--job-id', String(incr), '--to', to]);
    expect(restore.status, restore.stdout + restore.stderr).toBe(0);
    const copy = await PgCluster.open(to);
    started.push(copy);
    try {
      expect(await copy.recovered(), copy.log()).toBe(true);
      // The same job, now pointed at the copy: same system identifier, timeline 2.
      const copyPass = passfile(path.join(ws, 'copy-secrets'), copy, BACKUP_ROLE, BACKUP_PASSWORD);
      const copyConfig = path.join(ws, 'copy.toml');
      writeFileSync(copyConfig, readFileSync(config, 'utf8').replaceAll(`port = "${server.port}"`, `port = "${copy.port}"`).replaceAll(JSON.stringify(pass), JSON.stringify(copyPass)));
      const result = runCliJson(['backup', '--job', 'pg', '--level', 'incremental', '--config', copyConfig]);
      expect(result.status, result.stdout + result.stderr).toBe(0);
      expect(result.json.level).toBe('full');
      expect(JSON.stringify(result.json)).toMatch(/making a full backup instead of an incremental: the server is on timeline 2, the reference job ended on timeline 1 \(a promotion or a point-in-time recovery since\)/);
    } finally {
      copy.stop();
    }
  }, 300_000);
});
