/**
 * A real PostgreSQL 15 server for the PostgreSQL agent's tests: Debian's postgresql-15 and
 * libpq-dev installed on first use (scripts/debian-install.sh: root, services not started; the
 * cluster "main" the package may create is never used or started), the agent rebuilt when libpq
 * arrived after the build, and clusters made with initdb in temporary directories under TMPDIR,
 * started with pg_ctl on a free port of 127.0.0.1 as a user other than root (PostgreSQL refuses
 * root: the `postgres` user the package creates, through runuser), and stopped after the tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ensureDebianPackage, fileNeed } from './debian.js';
import { LIB_EXT, ROOT, SAMPLE_DIR, tempDir } from './native.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
/** The role backups connect as: LOGIN REPLICATION, with a password (scram-sha-256 over TCP). */
export const BACKUP_ROLE = 'agentfd_backup';
export const BACKUP_PASSWORD = 'pw-7f3a9c1e-never-logged';
/** A role that may log in but has no REPLICATION privilege. */
export const PLAIN_ROLE = 'agentfd_plain';
export const PLAIN_PASSWORD = 'pw-plain-2b8d';

const POSTGRES_NEED = fileNeed(path.join(PG_BIN, 'initdb'), 'postgresql-15');
const LIBPQ_NEED = fileNeed('/usr/include/postgresql/libpq-fe.h', 'libpq-dev');
export const AGENT_FILE = path.join(SAMPLE_DIR, `postgresql${LIB_EXT}`);

let readiness: string | null | undefined;

/**
 * Null when a server can be started and the agent is built (installing and building first when
 * needed and allowed); otherwise why not, in one line, for the skipped tests' names.
 */
export function postgresReady(): string | null {
  if (readiness !== undefined) return readiness;
  readiness = prepare();
  if (readiness !== null) process.stderr.write(`agentfd tests: skipped: ${readiness}\n`);
  return readiness;
}

function prepare(): string | null {
  if (process.platform !== 'linux') return 'the PostgreSQL lane runs on Linux only';
  const missing = ensureDebianPackage(POSTGRES_NEED) ?? ensureDebianPackage(LIBPQ_NEED);
  if (missing !== null) return missing;
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) {
    return 'the tests run as root and there is no postgres user to run PostgreSQL as (PostgreSQL refuses root)';
  }
  if (!existsSync(AGENT_FILE)) {
    // libpq-dev was installed after the build: configure again (the target is conditional on its
    // header) and build; what was built already is not rebuilt (npm run build:native would
    // rebuild all, under the feet of other test files). Through npm, for its node-gyp settings.
    process.stderr.write('agentfd tests: building the PostgreSQL agent (libpq-dev is installed now)\n');
    const result = spawnSync('npm', ['exec', '--offline', '--', 'node-gyp', 'configure', 'build', '--directory=binding'], { cwd: ROOT, encoding: 'utf8', timeout: 10 * 60_000 });
    if (result.status !== 0) return `building the PostgreSQL agent failed (node-gyp configure build): ${(result.stderr || result.stdout).trim().split('\n').at(-1)}`;
    if (!existsSync(AGENT_FILE)) return `${AGENT_FILE} is still missing after the build`;
  }
  return null;
}

/** Run a PostgreSQL program as the user the server runs as. */
function asServerUser(program: string, args: string[], options: { timeout?: number } = {}) {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(PG_BIN, program), ...args]] : [path.join(PG_BIN, program), args];
  return spawnSync(cmd, argv, { encoding: 'utf8', timeout: options.timeout ?? 120_000, cwd: '/' });
}

/** A directory the server user owns (the data directory, a tablespace). */
export function serverDir(prefix: string): string {
  const dir = tempDir(prefix);
  giveToServerUser(dir);
  return dir;
}

/** chown -R to the server user (after a restore made by root), and the mode PostgreSQL wants. */
export function giveToServerUser(dir: string): void {
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  chmodSync(dir, 0o700);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface ClusterOptions {
  /** postgresql.conf settings beyond the defaults below. */
  settings?: Record<string, string>;
}

/** One running cluster. */
export class PgCluster {
  private running = false;
  private constructor(
    readonly dataDir: string,
    readonly port: number,
  ) {}

  /** initdb a new cluster and start it. */
  static async create(options: ClusterOptions = {}): Promise<PgCluster> {
    const dataDir = serverDir('pgdata');
    const init = asServerUser('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
    const cluster = new PgCluster(dataDir, await freePort());
    const settings: Record<string, string> = {
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${dataDir}'`,
      wal_level: 'replica',
      max_wal_senders: '5',
      fsync: 'off',
      password_encryption: "'scram-sha-256'",
      ...options.settings,
    };
    const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
    writeFileSync(path.join(dataDir, 'postgresql.conf'), `${readFileSync(path.join(dataDir, 'postgresql.conf'), 'utf8')}\n${conf.join('\n')}\n`);
    // The superuser over the socket and TCP without a password; the agent's roles with one.
    writeFileSync(
      path.join(dataDir, 'pg_hba.conf'),
      [
        'local all all trust',
        'host all postgres 127.0.0.1/32 trust',
        'host replication all 127.0.0.1/32 scram-sha-256',
        'host all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    );
    await cluster.start();
    cluster.sql(`CREATE ROLE ${BACKUP_ROLE} LOGIN REPLICATION PASSWORD '${BACKUP_PASSWORD}'`);
    cluster.sql(`CREATE ROLE ${PLAIN_ROLE} LOGIN PASSWORD '${PLAIN_PASSWORD}'`);
    return cluster;
  }

  /** A cluster on an existing data directory (a restored one), started on a free port. */
  static async open(dataDir: string): Promise<PgCluster> {
    giveToServerUser(dataDir);
    const cluster = new PgCluster(dataDir, await freePort());
    await cluster.start();
    return cluster;
  }

  async start(): Promise<void> {
    const log = path.join(this.dataDir, 'server.log');
    const result = asServerUser('pg_ctl', ['-D', this.dataDir, '-l', log, '-w', '-t', '120', '-o', `-p ${this.port} -k ${this.dataDir} -c listen_addresses=127.0.0.1`, 'start'], {
      timeout: 150_000,
    });
    if (result.status !== 0) {
      const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '';
      throw new Error(`pg_ctl start failed: ${result.stdout}${result.stderr}\n${tail}`);
    }
    this.running = true;
  }

  /**
   * Wait for the end of recovery: pg_ctl -w returns once a restored server accepts connections,
   * which a hot standby does as soon as it is consistent, while it may still replay WAL.
   */
  async recovered(timeoutMs = 60_000): Promise<boolean> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
      if (this.sql('SELECT pg_is_in_recovery()') === 'f') return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  /** Stop the server (fast shutdown); safe to call twice. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    asServerUser('pg_ctl', ['-D', this.dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
  }

  /** The server's log, to show when a test fails. */
  log(): string {
    const file = path.join(this.dataDir, 'server.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Run SQL as the superuser; the rows as text, one line each, fields split by '|'. */
  sql(query: string, db = 'postgres'): string {
    const result = spawnSync(path.join(PG_BIN, 'psql'), ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', db, '-c', query], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (result.status !== 0) throw new Error(`psql failed on ${query}: ${result.stderr}`);
    return result.stdout.trim();
  }

  /** Run a PostgreSQL client program (pgbench, pg_receivewal...) against this server. */
  run(program: string, args: string[]) {
    return spawnSync(path.join(PG_BIN, program), ['-h', '127.0.0.1', '-p', String(this.port), ...args], { encoding: 'utf8', timeout: 300_000 });
  }
}

/** A passfile (mode 0600) holding `password` for `user` on this server. */
export function passfile(dir: string, cluster: PgCluster, user: string, password: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `pgpass-${user}`);
  writeFileSync(file, `127.0.0.1:${cluster.port}:*:${user}:${password}\n`, { mode: 0o600 });
  return file;
}

/**
 * A checksum of every table of `db` (schema public), computed by the server: the table's rows as
 * text, sorted, hashed. Two clusters with the same content give the same map.
 */
export function tableChecksums(cluster: PgCluster, db: string): Record<string, string> {
  const tables = cluster.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", db).split('\n').filter(Boolean);
  const sums: Record<string, string> = {};
  for (const table of tables) {
    sums[table] = cluster.sql(`SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM ${table} t`, db);
  }
  return sums;
}
