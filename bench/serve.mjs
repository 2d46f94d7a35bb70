/**
 * The serve suite: `agentfd serve` and the real bacula-fd as clients of the same Bacula 9.6
 * Director and Storage Daemon (the bench's lab, bench/baselines/bacula.mjs), on the same inputs,
 * job by job: serve, then bacula-fd, in every run (so N runs are N pairs), medians per case.
 *
 * The cases are the issue's (17): a random file uncompressed, with GZIP6 and with LZO (1 GiB in
 * full mode; quick: the bench's random input, 256 MiB); small files of 1-8 KiB in 100 directories,
 * backed up and restored (20,000 in full mode, 10,000 in quick); a sparse file, mostly holes,
 * with `sparse = yes` (2 GiB in full mode, 512 MiB in quick). Each FD restores its own backup of
 * the small files, of the random file uncompressed and of the random file with GZIP6, and the
 * first restore of each is compared with the original (names and bytes, SHA-256).
 *
 * Before each restore the machine's dirty pages are written out (`sync`): a restore writes into
 * the page cache, and one that starts with the GiBs of an earlier job still dirty is throttled by
 * the kernel's writeback for a time that depends on the job before, not on the FD.
 *
 * The figure of each job is the FD's own part, from its I/O counters (bench/fd-io.mjs), the same
 * for both clients; the ratio is serve's throughput over bacula-fd's (>1 means serve is faster),
 * held against the issue's goal for that case.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync, createHash } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { readThrough } from './baselines/bacula.mjs';

const KiB = 1024;
const MiB = 1024 ** 2;
const DIRS = 100;
/** Data in the sparse file: 1 MiB at its start, every 256 MiB, and at its end (the rest: holes). */
const SPARSE_CHUNK = MiB;
const SPARSE_EVERY = 256 * MiB;

/** The pairs, with the issue's goal for each: serve's throughput over bacula-fd's. */
export const SERVE_PAIRS = [
  { key: 'plain', name: 'backup, no compression', job: 'BenchPlain', goal: 1.0 },
  { key: 'gzip6', name: 'backup, GZIP6', job: 'BenchGzip', goal: 1.8 },
  { key: 'plain-restore', name: 'restore, no compression', restores: 'plain', goal: 1.0 },
  { key: 'gzip6-restore', name: 'restore, GZIP6', restores: 'gzip6', goal: 1.0 },
  { key: 'lzo', name: 'backup, LZO', job: 'BenchLzo', goal: 1.0 },
  { key: 'small-backup', name: 'small files, backup', job: 'BenchSmall', goal: 1.0 },
  { key: 'small-restore', name: 'small files, restore', restores: 'small-backup', goal: 1.0 },
  { key: 'sparse', name: 'sparse file, backup (sparse = yes)', job: 'BenchSparse', goal: 0.5 },
];
export const serveId = (key) => `serve/${key}`;
export const baculaFdId = (key) => `serve/${key}/bacula-fd`;

/**
 * `count` files of 1-8 KiB of random bytes in DIRS directories under `root` (made once per
 * invocation). Returns { files: [paths], bytes }.
 */
function makeSmallTree(root, count) {
  const block = Buffer.allocUnsafe(8 * KiB);
  const files = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const dir = path.join(root, `d${String(i % DIRS).padStart(3, '0')}`);
    if (i < DIRS) mkdirSync(dir, { recursive: true });
    const size = KiB + Math.floor(Math.random() * 7 * KiB);
    const file = path.join(dir, `f${String(i).padStart(6, '0')}.bin`);
    writeFileSync(file, randomFillSync(block, 0, size).subarray(0, size));
    files.push(file);
    bytes += size;
  }
  return { files, bytes };
}

/** Where the sparse file of `size` bytes has data: its start, every SPARSE_EVERY, its end. */
function sparseOffsets(size) {
  const offsets = new Set([size - SPARSE_CHUNK]);
  for (let at = 0; at < size - SPARSE_CHUNK; at += SPARSE_EVERY) offsets.add(at);
  return [...offsets];
}

/** A sparse file of `size` bytes: random data at sparseOffsets, holes elsewhere. */
function makeSparse(file, size) {
  const fd = openSync(file, 'w');
  let data = 0;
  try {
    ftruncateSync(fd, size);
    const chunk = randomFillSync(Buffer.allocUnsafe(SPARSE_CHUNK));
    for (const at of sparseOffsets(size)) data += writeSync(fd, chunk, 0, SPARSE_CHUNK, at);
  } finally {
    closeSync(fd);
  }
  return data;
}

/** SHA-256 of one file's bytes. */
function fileDigest(file) {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(4 * MiB);
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buffer, 0, buffer.length, null)) > 0; ) hash.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Write every dirty page of the machine out, so that a restore does not start behind an earlier job's writeback. */
function writeDirtyPages() {
  const done = spawnSync('sync', { stdio: 'ignore' });
  if (done.status !== 0) throw new Error(`sync failed (${done.error?.message ?? `status ${done.status}`}) before a restore`);
}

/** SHA-256 over every file under `root`: its path from `root` and its bytes, in name order. */
function treeDigest(root) {
  const hash = createHash('sha256');
  let files = 0;
  const walk = (rel) => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const name = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(name);
      else {
        hash.update(`${name}\0`).update(readFileSync(path.join(root, name)));
        files++;
      }
    }
  };
  walk('.');
  return { digest: hash.digest('hex'), files };
}

/**
 * The inputs of the suite in the lab's fixed paths, made at their first use: the random input is
 * a hard link to the bench's, the small files and the sparse file are made there once.
 */
function labInputs({ random, files, sparseBytes, log }) {
  let small = null;
  let sparse = false;
  return {
    random: (lab) => lab.place(random.file),
    small(lab) {
      if (!small) {
        const started = Date.now();
        small = makeSmallTree(lab.paths.small, files);
        // Bacula counts the directories it saves as files too: the top one and DIRS below it.
        small.entries = files + DIRS + 1;
        log(`input small files: ${files.toLocaleString('en-US')} files (${(small.bytes / MiB).toFixed(0)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
      return small;
    },
    smallBytes: () => small?.bytes ?? null,
    sparse(lab) {
      if (!sparse) {
        const data = makeSparse(lab.paths.sparse, sparseBytes);
        log(`input sparse file: ${(sparseBytes / MiB).toFixed(0)} MiB, ${(data / MiB).toFixed(0)} MiB of data`);
        sparse = true;
      }
    },
  };
}

/** The started lab and the client `kind`, or { skipped }; throws with the reason it failed. */
async function ready(suite, kind) {
  const started = await suite.lab.get();
  if (started.skipped) return { skipped: started.skipped };
  if (started.failed) throw new Error(started.failed);
  return { lab: started.lab, fd: await started.lab.client(kind) };
}

/** A sample for runAll: the input's size, the FD's seconds, the job's other clocks. */
function sample(fd, result, what, extra = {}) {
  const { seconds, wallSeconds, cpuSeconds, reportElapsed } = result;
  return { bytes: what.bytes, files: what.files ?? 1, seconds, wallSeconds, cpuSeconds, reportElapsed, version: fd.version, ...extra };
}

/** The backups a restore pair reads: their volumes are kept for it. */
const RESTORED = new Set(SERVE_PAIRS.map((pair) => pair.restores).filter(Boolean));

/**
 * Keep this run's backup of `key` by `kind` for its restore; one an earlier run left unread
 * (its restore filtered out, or not run) has its volumes deleted now.
 */
function keepBackup(suite, lab, key, kind, result) {
  const left = suite.backups[`${key}:${kind}`];
  if (left) lab.deleteVolumes(left.volumes);
  suite.backups[`${key}:${kind}`] = { jobId: result.jobId, volumes: result.volumes, files: result.files };
}

/** One backup of `pair` by the client `kind`; the backups a restore pair reads are kept for it. */
async function backupOnce(suite, pair, kind) {
  const got = await ready(suite, kind);
  if (got.skipped) return got;
  const { lab, fd } = got;
  const keepVolumes = RESTORED.has(pair.key);
  if (pair.key === 'small-backup') {
    const tree = suite.made.small(lab);
    const buffer = Buffer.allocUnsafe(8 * KiB);
    const result = await lab.runBackup({ client: fd, job: pair.job, keepVolumes, before: () => tree.files.forEach((f) => readThrough(f, buffer)) });
    keepBackup(suite, lab, pair.key, kind, result);
    if (result.files !== tree.entries) throw new Error(`${fd.label} saved ${result.files} files and directories, the tree has ${tree.entries}`);
    return sample(fd, result, { bytes: tree.bytes, files: suite.files }, { storedBytes: result.storedBytes });
  }
  const sparse = pair.key === 'sparse';
  if (sparse) suite.made.sparse(lab);
  else suite.made.random(lab);
  const file = sparse ? lab.paths.sparse : lab.paths.input;
  const result = await lab.runBackup({ client: fd, job: pair.job, keepVolumes, before: () => readThrough(file) });
  if (keepVolumes) keepBackup(suite, lab, pair.key, kind, result);
  if (result.files !== 1) throw new Error(`${fd.label} saved ${result.files} files, not 1`);
  return sample(fd, result, { bytes: sparse ? suite.sparseBytes : suite.random.bytes }, { storedBytes: result.storedBytes });
}

/** The restored copy under `where` differs from the original: why, or null when equal (SHA-256). */
function restoredDiffers(suite, lab, pair, where) {
  if (pair.restores === 'small-backup') {
    const original = treeDigest(lab.paths.small);
    const restored = treeDigest(path.join(where, lab.paths.small));
    return restored.digest === original.digest ? null : `the restored tree differs from the original (${restored.files} files restored, ${original.files} in the tree; names or bytes differ)`;
  }
  suite.inputDigest ??= fileDigest(lab.paths.input);
  return fileDigest(path.join(where, lab.paths.input)) === suite.inputDigest ? null : 'the restored file\'s bytes differ from the input (SHA-256)';
}

/**
 * The restore of this run's backup of `pair.restores` by the client `kind` that made it, after
 * writing out the dirty pages. Its first restore is compared with the original; volumes and
 * restored files are deleted after.
 */
async function restoreOnce(suite, pair, kind) {
  const got = await ready(suite, kind);
  if (got.skipped) return got;
  const { lab, fd } = got;
  const backup = suite.backups[`${pair.restores}:${kind}`];
  suite.backups[`${pair.restores}:${kind}`] = null;
  if (!backup) throw new Error('nothing to restore: the backup of this run failed');
  const where = path.join(lab.dir, 'restore', `${pair.key}-${kind}`);
  rmSync(where, { recursive: true, force: true });
  try {
    writeDirtyPages();
    const result = await lab.runRestore({ client: fd, jobId: backup.jobId, where });
    if (result.files !== backup.files) throw new Error(`${fd.label} restored ${result.files} files and directories, the backup has ${backup.files}`);
    if (!suite.verified.has(`${pair.key}:${kind}`)) {
      const differs = restoredDiffers(suite, lab, pair, where);
      if (differs) throw new Error(`${fd.label}'s restore: ${differs}`);
      suite.verified.add(`${pair.key}:${kind}`);
    }
    const small = pair.restores === 'small-backup';
    return sample(fd, result, small ? { bytes: suite.made.small(lab).bytes, files: suite.files } : { bytes: suite.random.bytes }, { verified: true });
  } finally {
    lab.deleteVolumes(backup.volumes);
    rmSync(where, { recursive: true, force: true });
  }
}

/** The two cases of `pair`: agentfd serve's, then bacula-fd's (its baseline). */
function pairCases(suite, pair, input, announce) {
  const restore = pair.restores !== undefined;
  const common = { suite: 'serve', input, unit: pair.key.startsWith('small') ? 'files/s' : undefined, messageOnly: true };
  const run = (kind) => (restore ? () => restoreOnce(suite, pair, kind) : () => backupOnce(suite, pair, kind));
  return [
    announce('serve suite: agentfd serve', {
      ...common,
      id: serveId(pair.key),
      name: `agentfd serve: ${pair.name}`,
      baseline: baculaFdId(pair.key),
      baselineLabel: 'bacula-fd',
      follows: restore ? serveId(pair.restores) : undefined,
      note: `goal: >= ${pair.goal.toFixed(1)}x bacula-fd`,
      run: run('serve'),
    }),
    announce('serve suite: bacula-fd', {
      ...common,
      id: baculaFdId(pair.key),
      name: `bacula-fd: ${pair.name}`,
      baselineOf: true,
      follows: restore ? baculaFdId(pair.restores) : undefined,
      run: run('bacula-fd'),
    }),
  ];
}

/**
 * The suite's cases, in pairs (serve, then bacula-fd) so that runAll alternates them. `lab` is
 * the invocation's lazy lab (pipelineCases' `lab`); `announce` wraps a case so that it says once
 * whether it runs (installed / skipped / failed).
 */
export function serveCases({ lab, inputs, files, sparseBytes, announce, log }) {
  const made = labInputs({ random: inputs.random, files, sparseBytes, log });
  // The small files' total size is known once the tree is made; the table reads it after the runs.
  const small = { label: `${files.toLocaleString('en-US')} files × 1-8 KiB`, get bytes() { return made.smallBytes() ?? files * 4.5 * KiB; } };
  const sparse = { label: `sparse, ${((sparseOffsets(sparseBytes).length * SPARSE_CHUNK * 100) / sparseBytes).toFixed(1)}% data`, bytes: sparseBytes };
  // backups: this run's backups kept for a restore ("key:client"); verified: the restores compared
  // ("key:client"); inputDigest: the random input's SHA-256, once.
  const suite = { lab, made, random: inputs.random, files, sparseBytes, backups: {}, verified: new Set(), inputDigest: null };
  return SERVE_PAIRS.flatMap((pair) => {
    const input = pair.key.startsWith('small') ? small : pair.key === 'sparse' ? sparse : inputs.random;
    return pairCases(suite, pair, input, announce);
  });
}
