/** The catalog's tables. Bump SCHEMA_VERSION with every change, and migrate in catalog.ts. */
export const SCHEMA_VERSION = 5;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- The storage directory whose volumes this catalog indexes, with its repository id (repository.ts).
CREATE TABLE IF NOT EXISTS storages (
  dir TEXT PRIMARY KEY,
  repository TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS volumes (
  id INTEGER PRIMARY KEY,
  label TEXT NOT NULL UNIQUE,
  path TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  agent TEXT NOT NULL,
  agent_version TEXT,
  agent_abi INTEGER NOT NULL,
  level TEXT NOT NULL,
  requested_level TEXT NOT NULL,
  reference_job INTEGER,
  status TEXT NOT NULL CHECK (status IN ('running', 'committed', 'failed', 'aborted')),
  started_ns TEXT NOT NULL,
  ended_ns TEXT,
  files INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  stored_bytes INTEGER NOT NULL DEFAULT 0,
  compression TEXT NOT NULL,
  cipher TEXT NOT NULL,
  signer TEXT,
  signer_trusted INTEGER NOT NULL DEFAULT 1,
  error TEXT,
  state BLOB
);

CREATE TABLE IF NOT EXISTS job_volumes (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  volume_id INTEGER NOT NULL REFERENCES volumes(id),
  first_offset INTEGER NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (job_id, volume_id)
);

CREATE TABLE IF NOT EXISTS files (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  file_index INTEGER NOT NULL,
  path TEXT NOT NULL,
  kind TEXT NOT NULL,
  mode INTEGER NOT NULL,
  mtime_ns TEXT NOT NULL,
  size INTEGER,
  seen INTEGER NOT NULL DEFAULT 0,
  link_target TEXT,
  agent TEXT NOT NULL,
  agent_version TEXT,
  agent_abi INTEGER NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  renamed_from TEXT,
  win_attributes INTEGER NOT NULL DEFAULT 0,
  UNIQUE (job_id, file_index)
);
CREATE INDEX IF NOT EXISTS files_by_path ON files(path);

CREATE TABLE IF NOT EXISTS streams (
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  stream_index INTEGER NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  raw_restorable INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  sha256 TEXT,
  PRIMARY KEY (file_id, stream_index)
);
`;

/** Changes from one schema version to the next, applied in order to an older catalog. */
export const MIGRATIONS: Record<number, string> = {
  // 1 -> 2: accurate mode records deletions (status 'deleted') and renames.
  2: 'ALTER TABLE files ADD COLUMN renamed_from TEXT;',
  // 2 -> 3: Windows file attributes (hidden, system, ...), which have no POSIX twin.
  3: 'ALTER TABLE files ADD COLUMN win_attributes INTEGER NOT NULL DEFAULT 0;',
  // 3 -> 4: whether the signer of a job is trusted (0: scan found it signed by a key not trusted).
  // Older rows keep 1: a backup's own signer, or a scan made before trust was asked for.
  4: 'ALTER TABLE jobs ADD COLUMN signer_trusted INTEGER NOT NULL DEFAULT 1;',
  // 4 -> 5: storage directories have an identity; a catalog indexes one (SCHEMA makes the table).
  5: 'CREATE TABLE IF NOT EXISTS storages (dir TEXT PRIMARY KEY, repository TEXT NOT NULL);',
};
