/**
 * The catalog: an SQLite database (better-sqlite3) in the data directory that indexes what the
 * volumes hold: jobs, the files of each job with the agent that saved each one, their streams'
 * sizes and digests, and where each job's records start in which volume. Everything here can be
 * rebuilt from the volumes (agentfd scan), so the catalog is an index, never the only copy.
 *
 * Writes are batched in transactions (one per batch of files), which is what keeps a million
 * small files fast.
 */
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openDatabase, type SqlDatabase, type SqlStatement } from './sqlite.js';
import { AgentfdError } from '../errors.js';
import { MIGRATIONS, SCHEMA, SCHEMA_VERSION } from './schema.js';
import { REPOSITORY_FILE } from '../volume/repository.js';
import { decodeStoredText, mayHaveLostBytes } from './stored-names.js';

export type JobStatus = 'running' | 'committed' | 'failed' | 'aborted';

export interface JobRow {
  id: number;
  uuid: string;
  name: string;
  agent: string;
  agent_version: string | null;
  agent_abi: number;
  level: string;
  requested_level: string;
  reference_job: number | null;
  status: JobStatus;
  started_ns: string;
  ended_ns: string | null;
  files: number;
  bytes: number;
  stored_bytes: number;
  compression: string;
  cipher: string;
  /** The fingerprint of the Ed25519 key that signed the job, or null. */
  signer: string | null;
  /** 0 when scan found the job signed by a key the operator does not trust: restore refuses it. */
  signer_trusted: number;
  error: string | null;
  state: Buffer | null;
}

export interface FileRow {
  id: number;
  job_id: number;
  file_index: number;
  path: string;
  kind: string;
  mode: number;
  mtime_ns: string;
  size: number | null;
  seen: number;
  link_target: string | null;
  agent: string;
  agent_version: string | null;
  agent_abi: number;
  status: string;
  error: string | null;
  renamed_from: string | null;
  win_attributes: number;
}

export interface StreamRow {
  file_id: number;
  stream_index: number;
  name: string;
  type: string;
  raw_restorable: number;
  bytes: number;
  sha256: string | null;
}

export interface NewJob {
  id?: number;
  uuid: string;
  name: string;
  agent: string;
  agentVersion: string | null;
  agentAbi: number;
  level: string;
  requestedLevel: string;
  referenceJob: number | null;
  startedNs: bigint;
  compression: string;
  cipher: string;
  signer: string | null;
  /** False when the signer is not a trusted key (scan); true by default. */
  signerTrusted?: boolean;
}

export interface NewFile {
  fileIndex: number;
  path: string;
  kind: string;
  mode: number;
  mtimeNs: bigint;
  size: number | null;
  seen: boolean;
  linkTarget: string | null;
  agent: string;
  agentVersion: string | null;
  agentAbi: number;
  status: 'ok' | 'failed' | 'deleted';
  error: string | null;
  renamedFrom?: string | null;
  /** Windows FILE_ATTRIBUTE_* bits, 0 elsewhere. */
  winAttributes?: number;
  streams: { index: number; name: string; type: string; rawRestorable: boolean; bytes: number; sha256: string | null }[];
}

export interface JobEnd {
  status: JobStatus;
  endedNs: bigint;
  files: number;
  bytes: number;
  storedBytes: number;
  error: string | null;
  state: Uint8Array | null;
  level?: string;
}

/** Rows per multi-row INSERT (files have 17 columns: 1,700 parameters, far below SQLite's limit). */
const ROWS_PER_INSERT = 100;
const FILE_COLUMN_NAMES = [
  'id', 'job_id', 'file_index', 'path', 'kind', 'mode', 'mtime_ns', 'size', 'seen', 'link_target', 'agent', 'agent_version', 'agent_abi', 'status', 'error', 'renamed_from', 'win_attributes',
] as const;
const FILE_COLUMNS = FILE_COLUMN_NAMES.length;
const STREAM_COLUMN_NAMES = ['file_id', 'stream_index', 'name', 'type', 'raw_restorable', 'bytes', 'sha256'] as const;
const STREAM_COLUMNS = STREAM_COLUMN_NAMES.length;

/**
 * A batch of files as flat rows: FILE_ROW values per file (every column but the id), and
 * STREAM_COLUMNS values per stream whose first is the file's position in the batch. Flat arrays of
 * plain values are what crosses to the catalog writer thread cheaply.
 */
export interface FileRows {
  files: unknown[];
  streams: unknown[];
}
const FILE_ROW = FILE_COLUMNS - 1;

export function fileRows(jobId: number, batch: readonly NewFile[]): FileRows {
  const files: unknown[] = [];
  const streams: unknown[] = [];
  batch.forEach((f, ordinal) => {
    files.push(jobId, f.fileIndex, f.path, f.kind, f.mode, f.mtimeNs.toString(), f.size, f.seen ? 1 : 0, f.linkTarget, f.agent, f.agentVersion, f.agentAbi, f.status, f.error, f.renamedFrom ?? null, f.winAttributes ?? 0);
    for (const st of f.streams) streams.push(ordinal, st.index, st.name, st.type, st.rawRestorable ? 1 : 0, st.bytes, st.sha256);
  });
  return { files, streams };
}

/**
 * A file of zeros kept beside the catalog while there is room for it. When a full disk stops a
 * job, marking the job failed needs a few pages of SQLite's log, which a full disk does not have:
 * the reserve is deleted to make them (releaseSpaceReserve), and made again by the next backup.
 */
const RESERVE_FILE = 'catalog.reserve';
const RESERVE_BYTES = 1024 * 1024;

export class Catalog {
  readonly file: string;
  private readonly db: SqlDatabase;
  private readonly statements = new Map<string, SqlStatement>();

  private constructor(file: string, db: SqlDatabase) {
    this.file = file;
    this.db = db;
  }

  static open(dataDir: string): Catalog {
    const file = path.join(dataDir, 'catalog.sqlite');
    let db: SqlDatabase;
    try {
      mkdirSync(dataDir, { recursive: true });
      db = openDatabase(file);
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec('PRAGMA foreign_keys = ON');
      db.exec(SCHEMA);
      const version = db.prepare("SELECT value FROM meta WHERE key = 'schema'").value() as string | undefined;
      if (version === undefined) db.prepare("INSERT INTO meta(key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
      else if (Number(version) > SCHEMA_VERSION) {
        throw new AgentfdError('E_CATALOG', `${file} has catalog schema ${version}, newer than this agentfd (${SCHEMA_VERSION}); upgrade agentfd`);
      } else if (Number(version) < SCHEMA_VERSION) {
        db.transaction(() => {
          for (let v = Number(version) + 1; v <= SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
          db.prepare("UPDATE meta SET value = ? WHERE key = 'schema'").run(String(SCHEMA_VERSION));
        });
      }
    } catch (error) {
      if (error instanceof AgentfdError) throw error;
      throw new AgentfdError(
        'E_CATALOG',
        `cannot open the catalog ${file}: ${(error as Error).message}. If it is damaged, move it away and rebuild it with: agentfd scan <volumes>`,
        { cause: error },
      );
    }
    return new Catalog(file, db);
  }

  close(): void {
    this.db.close();
  }

  /** Makes the space reserve if it is missing and fits; a disk without room for it is not an error here. */
  keepSpaceReserve(): void {
    const reserve = path.join(path.dirname(this.file), RESERVE_FILE);
    try {
      if (statSync(reserve, { throwIfNoEntry: false })?.size === RESERVE_BYTES) return;
      writeFileSync(reserve, Buffer.alloc(RESERVE_BYTES));
    } catch {
      rmSync(reserve, { force: true });
    }
  }

  /** Deletes the space reserve; true when there was one to free. */
  releaseSpaceReserve(): boolean {
    const reserve = path.join(path.dirname(this.file), RESERVE_FILE);
    if (statSync(reserve, { throwIfNoEntry: false }) === undefined) return false;
    rmSync(reserve, { force: true });
    return true;
  }

  // ---- volumes --------------------------------------------------------------------------------

  /**
   * Records that this catalog indexes the volumes of storage directory `dir`, whose repository id
   * is `repository`, or refuses (E_STORAGE_MISMATCH), before anything is written, when that would
   * mix two sets of volumes up: volumes are found by label (agentfd-0001...), and labels repeat
   * from one storage directory to the next. Refused: a second storage directory, a directory whose
   * volumes were replaced (another id where the catalog knows one), and a copy or move of a known
   * directory (its id elsewhere).
   */
  claimStorage(dir: string, repository: string): void {
    const here = path.resolve(dir);
    const known = this.db.prepare('SELECT dir, repository FROM storages').all() as { dir: string; repository: string }[];
    const fail = (what: string) => new AgentfdError('E_STORAGE_MISMATCH', `${what}. Nothing was written`);
    const same = known.find((k) => k.dir === here);
    if (same) {
      if (same.repository === repository) return;
      throw fail(
        `storage directory ${here} holds repository ${repository}, but the catalog ${this.file} indexed repository ${same.repository} there: ` +
          `its volumes were replaced (or its ${REPOSITORY_FILE} file was), so the jobs of the catalog no longer match its files. ` +
          'Put the original volumes back, or give this configuration a new data_dir (and run agentfd scan on the volumes there)',
      );
    }
    const twin = known.find((k) => k.repository === repository);
    if (twin) {
      throw fail(
        `storage directory ${here} holds repository ${repository}, which the catalog ${this.file} indexes in ${twin.dir}: it is a copy of that directory, or that directory was moved. ` +
          `Set storage_dir = ${JSON.stringify(twin.dir)}, or give this copy a data_dir of its own (and run agentfd scan on its volumes there)`,
      );
    }
    const elsewhere =
      known[0]?.dir ??
      (this.db.prepare('SELECT path FROM volumes').all() as { path: string }[]).map((v) => path.dirname(path.resolve(v.path))).find((d) => d !== here);
    if (elsewhere !== undefined) {
      throw fail(
        `the catalog ${this.file} already indexes the volumes of the storage directory ${elsewhere}, and this configuration writes to ${here}: ` +
          'volumes of different storage directories share labels (agentfd-0001...), so one catalog cannot index both. ' +
          `Give this configuration a data_dir of its own (one catalog per storage directory), or set storage_dir = ${JSON.stringify(elsewhere)}`,
      );
    }
    this.db.prepare('INSERT INTO storages(dir, repository) VALUES (?, ?)').run(here, repository);
  }

  /** The repository ids of the storage directories this catalog indexes (one, or none yet). */
  repositories(): string[] {
    return (this.db.prepare('SELECT repository FROM storages').all() as { repository: string }[]).map((r) => r.repository);
  }

  volumeId(label: string, volumePath: string): number {
    const existing = this.db.prepare('SELECT id FROM volumes WHERE label = ?').value(label) as number | undefined;
    if (existing !== undefined) {
      this.db.prepare('UPDATE volumes SET path = ? WHERE id = ?').run(volumePath, existing);
      return existing;
    }
    return Number(this.db.prepare('INSERT INTO volumes(label, path) VALUES (?, ?)').run(label, volumePath).lastInsertRowid);
  }

  addJobVolume(jobId: number, label: string, volumePath: string, firstOffset: number): void {
    const volume = this.volumeId(label, volumePath);
    this.db
      .prepare('INSERT OR IGNORE INTO job_volumes(job_id, volume_id, first_offset, position) VALUES (?, ?, ?, (SELECT COUNT(*) FROM job_volumes WHERE job_id = ?))')
      .run(jobId, volume, firstOffset, jobId);
  }

  /**
   * The jobs whose records the catalog places in a volume (found by its path, or by its label when
   * known): a writer never cuts their records off that volume. Every job with a placement is one
   * that finished (placements are written when a job ends, after its records were synced) or one
   * scan found there.
   */
  jobsInVolume(volume: { path: string; label: string | null }): number[] {
    const paths = [...new Set([volume.path, path.resolve(volume.path)])];
    const rows = this.db
      .prepare(`SELECT DISTINCT jv.job_id AS id FROM job_volumes jv JOIN volumes v ON v.id = jv.volume_id WHERE v.path IN (?, ?) OR v.label = ? ORDER BY jv.job_id`)
      .all(paths[0], paths[1] ?? paths[0], volume.label ?? '') as { id: number }[];
    return rows.map((r) => r.id);
  }

  /** The volumes of a job in order, with the offset of its first record in each. */
  jobVolumes(jobId: number): { label: string; path: string; first_offset: number }[] {
    return this.db
      .prepare('SELECT v.label, v.path, jv.first_offset FROM job_volumes jv JOIN volumes v ON v.id = jv.volume_id WHERE jv.job_id = ? ORDER BY jv.position')
      .all(jobId) as { label: string; path: string; first_offset: number }[];
  }

  // ---- jobs -----------------------------------------------------------------------------------

  createJob(job: NewJob): number {
    const result = this.db
      .prepare(
        `INSERT INTO jobs(id, uuid, name, agent, agent_version, agent_abi, level, requested_level, reference_job, status, started_ns, compression, cipher, signer, signer_trusted)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)`,
      )
      .run(job.id ?? null, job.uuid, job.name, job.agent, job.agentVersion, job.agentAbi, job.level, job.requestedLevel, job.referenceJob, job.startedNs.toString(), job.compression, job.cipher, job.signer, job.signerTrusted === false ? 0 : 1);
    return Number(result.lastInsertRowid);
  }

  /** The id the next job would get; volumes name jobs by it before the row exists. */
  nextJobId(): number {
    return ((this.db.prepare('SELECT MAX(id) FROM jobs').value() as number | null) ?? 0) + 1;
  }

  finishJob(jobId: number, end: JobEnd): void {
    this.db
      .prepare(
        `UPDATE jobs SET status = ?, ended_ns = ?, files = ?, bytes = ?, stored_bytes = ?, error = ?, state = ?, level = COALESCE(?, level) WHERE id = ?`,
      )
      .run(end.status, end.endedNs.toString(), end.files, end.bytes, end.storedBytes, end.error, end.state ? Buffer.from(end.state) : null, end.level ?? null, jobId);
  }

  job(jobId: number): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(jobId) as JobRow | undefined;
  }

  jobByUuid(uuid: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE uuid = ?').get(uuid) as JobRow | undefined;
  }

  jobs(): JobRow[] {
    return this.db.prepare('SELECT * FROM jobs ORDER BY id').all() as JobRow[];
  }

  /** Jobs left 'running' by a process that died are aborted: nothing may treat them as complete. */
  abortStaleJobs(): number {
    return this.db.prepare("UPDATE jobs SET status = 'aborted', error = COALESCE(error, 'agentfd stopped during the job') WHERE status = 'running'").run().changes;
  }

  // ---- files ----------------------------------------------------------------------------------

  /** Insert a batch of files (and their streams) in one transaction. */
  insertFiles(jobId: number, files: NewFile[]): void {
    this.insertRows(fileRows(jobId, files));
  }

  /**
   * Insert rows made by fileRows() in one transaction, by multi-row INSERTs of ROWS_PER_INSERT
   * rows with ids assigned here (the streams need them): a statement per row cost more than the
   * rest of a small file's backup.
   */
  insertRows(rows: FileRows): void {
    const { files, streams } = rows;
    if (files.length % FILE_ROW !== 0 || streams.length % STREAM_COLUMNS !== 0) {
      throw new AgentfdError('E_CATALOG', 'a batch of catalog rows is malformed (this is a bug in agentfd)');
    }
    this.db.transaction(() => {
      const firstId = ((this.db.prepare('SELECT MAX(id) FROM files').value() as number | null) ?? 0) + 1;
      const values: unknown[] = [];
      const put = (table: 'files' | 'streams', names: readonly string[], final: boolean) => {
        while (values.length >= names.length * ROWS_PER_INSERT || (final && values.length > 0)) {
          const count = Math.min(ROWS_PER_INSERT, values.length / names.length);
          this.insertStatement(table, names, count).run(values.splice(0, count * names.length));
        }
      };
      for (let at = 0, ordinal = 0; at < files.length; at += FILE_ROW, ordinal++) {
        values.push(firstId + ordinal);
        for (let i = 0; i < FILE_ROW; i++) values.push(files[at + i]);
        put('files', FILE_COLUMN_NAMES, false);
      }
      put('files', FILE_COLUMN_NAMES, true);
      for (let at = 0; at < streams.length; at += STREAM_COLUMNS) {
        values.push(firstId + (streams[at] as number));
        for (let i = 1; i < STREAM_COLUMNS; i++) values.push(streams[at + i]);
        put('streams', STREAM_COLUMN_NAMES, false);
      }
      put('streams', STREAM_COLUMN_NAMES, true);
    });
  }

  /** A cached `INSERT INTO table(columns) VALUES (...), (...)` of `rows` rows. */
  private insertStatement(table: string, columns: readonly string[], rows: number): SqlStatement {
    const key = `${table}/${rows}`;
    let statement = this.statements.get(key);
    if (!statement) {
      const row = `(${columns.map(() => '?').join(', ')})`;
      statement = this.db.prepare(`INSERT INTO ${table}(${columns.join(', ')}) VALUES ${Array.from({ length: rows }, () => row).join(', ')}`);
      this.statements.set(key, statement);
    }
    return statement;
  }

  /** The newest row of `path` among `jobIds` that carries data (not seen, not deleted), or undefined. */
  latestSaved(path: string, jobIds: number[]): FileRow | undefined {
    if (jobIds.length === 0) return undefined;
    const row = this.db
      .prepare(`SELECT * FROM files WHERE path = ? AND status = 'ok' AND seen = 0 AND job_id IN (${jobIds.map(() => '?').join(',')}) ORDER BY job_id DESC LIMIT 1`)
      .get(path, ...jobIds) as FileRow | undefined;
    return row && this.withNames([row])[0];
  }

  /**
   * `rows` with every name as it was stored: one that held a byte that is not UTF-8 is read again
   * as bytes (stored-names.ts). Rare, so checked per row and only read again where needed.
   */
  private withNames(rows: FileRow[]): FileRow[] {
    for (const row of rows) {
      if (!mayHaveLostBytes(row.path) && !mayHaveLostBytes(row.link_target) && !mayHaveLostBytes(row.renamed_from)) continue;
      const raw = this.db
        .prepare('SELECT CAST(path AS BLOB) AS path, CAST(link_target AS BLOB) AS link_target, CAST(renamed_from AS BLOB) AS renamed_from FROM files WHERE id = ?')
        .get(row.id) as { path: Buffer; link_target: Buffer | null; renamed_from: Buffer | null };
      row.path = decodeStoredText(raw.path);
      row.link_target = raw.link_target && decodeStoredText(raw.link_target);
      row.renamed_from = raw.renamed_from && decodeStoredText(raw.renamed_from);
    }
    return rows;
  }

  /** Mark the file `path` of job `jobId` as renamed from `from` (accurate mode). */
  setRenamedFrom(jobId: number, path: string, from: string): void {
    this.db.prepare('UPDATE files SET renamed_from = ? WHERE job_id = ? AND path = ?').run(from, jobId, path);
  }

  files(jobId: number): FileRow[] {
    return this.withNames(this.db.prepare('SELECT * FROM files WHERE job_id = ? ORDER BY file_index').all(jobId) as FileRow[]);
  }

  streams(fileId: number): StreamRow[] {
    return this.db.prepare('SELECT * FROM streams WHERE file_id = ? ORDER BY stream_index').all(fileId) as StreamRow[];
  }

  /** Run `body` in one transaction (scan imports a whole session at once). */
  transaction<T>(body: () => T): T {
    return this.db.transaction(body);
  }
}
