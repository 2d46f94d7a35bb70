/**
 * The catalog on its own, on real SQLite files in temp directories: a batch of files is written
 * whole or not at all; a job's files are listed in order with their streams; a catalog made by an
 * older agentfd is migrated in place, its rows kept; one made by a newer agentfd, or a damaged
 * file, is refused with what to do; and one catalog indexes one storage directory.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog, type NewFile } from '../../src/catalog/catalog.js';
import { SCHEMA_VERSION } from '../../src/catalog/schema.js';
import { openDatabase } from '../../src/catalog/sqlite.js';
import { tempDir } from '../helpers/native.js';

function newJob(catalog: Catalog, name = 'job'): number {
  return catalog.createJob({
    uuid: randomUUID(), name, agent: 'filesystem', agentVersion: '1', agentAbi: 0, level: 'full', requestedLevel: 'full', referenceJob: null,
    startedNs: 1_700_000_000_000_000_000n, compression: 'none', cipher: 'none', signer: null,
  });
}

function file(fileIndex: number, streams = 1, path_ = `/f${fileIndex}`): NewFile {
  return {
    fileIndex, path: path_, kind: 'regular', mode: 0o644, mtimeNs: 1_600_000_000_123_456_789n, size: 10 * streams, seen: false, linkTarget: null,
    agent: 'filesystem', agentVersion: '1', agentAbi: 0, status: 'ok', error: null, winAttributes: fileIndex % 2 ? 0x2 : 0,
    streams: Array.from({ length: streams }, (_, i) => ({ index: i, name: i === 0 ? 'data' : `s${i}`, type: 'data', rawRestorable: false, bytes: 10, sha256: String(fileIndex).padStart(64, '0') })),
  };
}

const dataDir = () => path.join(tempDir('catalog'), 'data');

describe('catalog', () => {
  it('keeps names that are not UTF-8 byte for byte: path, link target and renamed-from read back as written, found by path', () => {
    const catalog = Catalog.open(dataDir());
    try {
      const jobId = newJob(catalog);
      const raw = '/d/latin1-\uDCE9.txt'; // the byte 0xE9, as platform/byte-names.ts holds it
      const legit = '/d/replacement-\uFFFD.txt'; // a real U+FFFD stays one
      catalog.insertFiles(jobId, [file(0, 1, raw), { ...file(1, 1, '/d/link'), kind: 'symlink', linkTarget: 'latin1-\uDCE9.txt' }, file(2, 1, legit)]);
      catalog.setRenamedFrom(jobId, raw, '/d/old-\uDCFF');
      const rows = catalog.files(jobId);
      expect(rows.map((r) => r.path)).toEqual([raw, '/d/link', legit]);
      expect(rows[0]!.renamed_from).toBe('/d/old-\uDCFF');
      expect(rows[1]!.link_target).toBe('latin1-\uDCE9.txt');
      expect(catalog.latestSaved(raw, [jobId])?.path).toBe(raw);
      expect(catalog.latestSaved('/d/latin1-\uDCE8.txt', [jobId])).toBeUndefined(); // another byte: another name
    } finally {
      catalog.close();
    }
  });

  it('writes a batch of files in one transaction: a batch that breaks a rule leaves none of its rows, not even its first statements\'', () => {
    const catalog = Catalog.open(dataDir());
    try {
      const jobId = newJob(catalog);
      catalog.insertFiles(jobId, [file(0)]);
      // 250 files (three multi-row INSERTs of files, three of streams); the last repeats file 0's index.
      const batch = Array.from({ length: 249 }, (_, i) => file(i + 1, 2));
      batch.push(file(0, 1, '/again'));
      expect(() => catalog.insertFiles(jobId, batch)).toThrow(/UNIQUE/);
      expect(catalog.files(jobId).map((f) => f.path)).toEqual(['/f0']);
      expect(catalog.streams(catalog.files(jobId)[0]!.id)).toHaveLength(1);
      // And the ids a failed batch would have used are free: the next batch is whole.
      catalog.insertFiles(jobId, batch.slice(0, 249));
      expect(catalog.files(jobId)).toHaveLength(250);
    } finally {
      catalog.close();
    }
  });

  it("lists a job's files by file index with their streams, apart from other jobs' files", () => {
    const catalog = Catalog.open(dataDir());
    try {
      const first = newJob(catalog, 'a');
      const second = newJob(catalog, 'b');
      catalog.insertFiles(second, [file(1, 1, '/b1'), file(0, 1, '/b0')]);
      catalog.insertFiles(first, [file(2, 3), file(0), file(1)]);
      catalog.setRenamedFrom(first, '/f1', '/old-name');
      const files = catalog.files(first);
      expect(files.map((f) => [f.file_index, f.path, f.renamed_from])).toEqual([[0, '/f0', null], [1, '/f1', '/old-name'], [2, '/f2', null]]);
      expect(files[1]).toMatchObject({ job_id: first, kind: 'regular', mode: 0o644, mtime_ns: '1600000000123456789', size: 10, seen: 0, win_attributes: 2, status: 'ok' });
      expect(catalog.streams(files[2]!.id).map((s) => [s.stream_index, s.name, s.bytes])).toEqual([[0, 'data', 10], [1, 's1', 10], [2, 's2', 10]]);
      expect(catalog.files(second).map((f) => f.path)).toEqual(['/b0', '/b1']);
      // The newest saved version of a path among jobs: the later job's.
      catalog.insertFiles(second, [file(2, 1, '/f0')]);
      expect(catalog.latestSaved('/f0', [first, second])!.job_id).toBe(second);
      expect(catalog.latestSaved('/f0', [first])!.job_id).toBe(first);
    } finally {
      catalog.close();
    }
  });

  it('migrates a catalog of schema 1 in place: its jobs and files are kept, and the new columns and tables work', () => {
    const dir = dataDir();
    mkdirSync(dir, { recursive: true });
    const db = openDatabase(path.join(dir, 'catalog.sqlite'));
    // The tables as agentfd wrote them at schema 1 (before renames, Windows attributes, signer trust and storages).
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta(key, value) VALUES ('schema', '1');
      CREATE TABLE volumes (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE, path TEXT NOT NULL);
      CREATE TABLE jobs (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL, agent TEXT NOT NULL, agent_version TEXT,
        agent_abi INTEGER NOT NULL, level TEXT NOT NULL, requested_level TEXT NOT NULL, reference_job INTEGER,
        status TEXT NOT NULL CHECK (status IN ('running', 'committed', 'failed', 'aborted')), started_ns TEXT NOT NULL, ended_ns TEXT,
        files INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, stored_bytes INTEGER NOT NULL DEFAULT 0,
        compression TEXT NOT NULL, cipher TEXT NOT NULL, signer TEXT, error TEXT, state BLOB);
      CREATE TABLE job_volumes (job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, volume_id INTEGER NOT NULL REFERENCES volumes(id),
        first_offset INTEGER NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (job_id, volume_id));
      CREATE TABLE files (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, file_index INTEGER NOT NULL,
        path TEXT NOT NULL, kind TEXT NOT NULL, mode INTEGER NOT NULL, mtime_ns TEXT NOT NULL, size INTEGER, seen INTEGER NOT NULL DEFAULT 0,
        link_target TEXT, agent TEXT NOT NULL, agent_version TEXT, agent_abi INTEGER NOT NULL, status TEXT NOT NULL, error TEXT,
        UNIQUE (job_id, file_index));
      CREATE TABLE streams (file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE, stream_index INTEGER NOT NULL, name TEXT NOT NULL,
        type TEXT NOT NULL, raw_restorable INTEGER NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT, PRIMARY KEY (file_id, stream_index));
      INSERT INTO jobs(id, uuid, name, agent, agent_abi, level, requested_level, status, started_ns, compression, cipher, signer)
        VALUES (1, '0b2f6e1c-8d7a-4c1e-9a51-3f0e2b7c9d10', 'old', 'filesystem', 0, 'full', 'full', 'committed', '1', 'none', 'none', 'abc');
      INSERT INTO files(id, job_id, file_index, path, kind, mode, mtime_ns, agent, agent_abi, status) VALUES (1, 1, 0, '/kept', 'regular', 420, '5', 'filesystem', 0, 'ok');
      INSERT INTO volumes(id, label, path) VALUES (1, 'agentfd-0001', '/elsewhere/agentfd-0001.afv');
      INSERT INTO job_volumes VALUES (1, 1, 4096, 0);
    `);
    db.close();
    const catalog = Catalog.open(dir);
    try {
      expect(catalog.job(1)).toMatchObject({ name: 'old', status: 'committed', signer: 'abc', signer_trusted: 1 });
      expect(catalog.files(1)).toMatchObject([{ path: '/kept', renamed_from: null, win_attributes: 0 }]);
      expect(catalog.jobVolumes(1)).toEqual([{ label: 'agentfd-0001', path: '/elsewhere/agentfd-0001.afv', first_offset: 4096 }]);
      const jobId = newJob(catalog);
      catalog.insertFiles(jobId, [file(1)]);
      catalog.setRenamedFrom(jobId, '/f1', '/kept');
      expect(catalog.files(jobId)).toMatchObject([{ renamed_from: '/kept', win_attributes: 2 }]);
      // The storages table came with the migration: the volumes it knew elsewhere are still its own.
      expect(() => catalog.claimStorage(path.join(dir, 'storage'), 'repo-1')).toThrow(expect.objectContaining({ code: 'E_STORAGE_MISMATCH' }));
    } finally {
      catalog.close();
    }
    const reopened = openDatabase(path.join(dir, 'catalog.sqlite'));
    try {
      expect(reopened.prepare("SELECT value FROM meta WHERE key = 'schema'").value()).toBe(String(SCHEMA_VERSION));
    } finally {
      reopened.close();
    }
  });

  it('refuses a catalog of a newer schema, and a file that is not a catalog, saying what to do, and leaves the damaged file as it is', () => {
    const newer = dataDir();
    Catalog.open(newer).close();
    const db = openDatabase(path.join(newer, 'catalog.sqlite'));
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schema'").run(String(SCHEMA_VERSION + 1));
    db.close();
    expect(() => Catalog.open(newer)).toThrow(expect.objectContaining({ code: 'E_CATALOG', message: expect.stringMatching(/has catalog schema \d+, newer than this agentfd \(\d+\); upgrade agentfd$/) }));

    const damaged = dataDir();
    Catalog.open(damaged).close();
    const file = path.join(damaged, 'catalog.sqlite');
    const garbage = Buffer.alloc(8192, 0x5a);
    writeFileSync(file, garbage);
    expect(() => Catalog.open(damaged)).toThrow(expect.objectContaining({ code: 'E_CATALOG', message: expect.stringContaining('If it is damaged, move it away and rebuild it with: agentfd scan <volumes>') }));
    expect(readFileSync(file).equals(garbage)).toBe(true);
  });

  it('indexes one storage directory: a second one, or the first one with other volumes, is refused before anything is written', () => {
    const dir = tempDir('catalog-storage');
    const catalog = Catalog.open(path.join(dir, 'data'));
    try {
      catalog.claimStorage(path.join(dir, 'a'), 'repo-a');
      catalog.claimStorage(path.join(dir, 'a'), 'repo-a'); // the same again: fine
      expect(() => catalog.claimStorage(path.join(dir, 'b'), 'repo-b')).toThrow(/already indexes the volumes of the storage directory .*\/a/);
      expect(() => catalog.claimStorage(path.join(dir, 'a'), 'repo-x')).toThrow(/its volumes were replaced/);
      expect(() => catalog.claimStorage(path.join(dir, 'copy-of-a'), 'repo-a')).toThrow(/it is a copy of that directory, or that directory was moved/);
      expect(catalog.repositories()).toEqual(['repo-a']);
    } finally {
      catalog.close();
    }
  });

  it('marks the jobs a stopped agentfd left running as aborted, keeping an error they had', () => {
    const catalog = Catalog.open(dataDir());
    try {
      const running = newJob(catalog);
      const done = newJob(catalog);
      catalog.finishJob(done, { status: 'committed', endedNs: 2n, files: 0, bytes: 0, storedBytes: 0, error: null, state: null });
      expect(catalog.abortStaleJobs()).toBe(1);
      expect(catalog.job(running)).toMatchObject({ status: 'aborted', error: 'agentfd stopped during the job' });
      expect(catalog.job(done)!.status).toBe('committed');
      expect(catalog.abortStaleJobs()).toBe(0);
    } finally {
      catalog.close();
    }
  });
});
