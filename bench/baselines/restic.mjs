/**
 * restic baseline: how fast does restic back up (and, optionally, restore) one large file, on this
 * machine, in the same run as agentfd? restic is a widely used backup tool with content-defined
 * chunking, SHA-256 and (repository format 2) zstd compression, so it is a fair yardstick for
 * agentfd's own pipeline.
 *
 * What is measured:
 * - backup: wall time of `restic backup --stdin` into a fresh local repository, the file fed as
 *   restic's stdin straight from a file descriptor (no Node stream in the way, so Node cannot be
 *   the bottleneck). `restic init` is not timed: it is a one-off cost, not throughput.
 * - storedBytes: the size of the repository's data/ directory (the pack files) after the backup,
 *   so compression ratios compare with agentfd's volume bytes. index/, snapshots/ and keys/ are
 *   left out: they are a few KiB.
 * - restore (optional): wall time of `restic dump latest <name>` written to /dev/null, i.e. reading,
 *   decrypting, decompressing and verifying every blob, without the cost of writing the output.
 *
 * The input is read through once before the timed backup, so restic reads it from the page cache
 * like the other cases do: this VM evicts idle page cache within minutes, and bacula-fd drops the
 * file from the cache after each of its jobs (posix_fadvise DONTNEED).
 *
 * Every call builds a repository under `scratch` and deletes it afterwards, so repeated runs do not
 * fill the disk. The local cache is disabled (`--no-cache`): for a repository on a local disk it
 * only duplicates metadata, and a cache shared between runs would blur the measurement.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const COMPRESSION_MODES = new Set(['auto', 'off', 'max']);
const NOT_INSTALLED = 'restic is not installed (apt-get install restic)';

/**
 * Backs up `file` once with restic and returns the timing.
 * @param {{ file: string, scratch: string, compression: 'auto' | 'off' | 'max' }} options
 * @returns {Promise<{ seconds: number, bytes: number, storedBytes: number, version: string } | { skipped: string }>}
 */
export async function resticBaseline({ file, scratch, compression }) {
  return withRepository({ scratch, compression }, (repo) => timedBackup(repo, file));
}

/**
 * Backs up `file` (timed as in resticBaseline), then times restoring it with `restic dump` to
 * /dev/null. One repository serves both, so a caller that wants both figures calls only this.
 * @param {{ file: string, scratch: string, compression: 'auto' | 'off' | 'max' }} options
 * @returns {Promise<{ seconds: number, bytes: number, backup: { seconds: number, bytes: number, storedBytes: number, version: string } } | { skipped: string }>}
 */
export async function resticRestore({ file, scratch, compression }) {
  return withRepository({ scratch, compression }, async (repo) => {
    const backup = await timedBackup(repo, file);
    const restore = await timedDump(repo, path.basename(file));
    return { ...restore, backup };
  });
}

/** Creates a fresh repository, hands it to `work`, and always deletes it afterwards. */
async function withRepository({ scratch, compression }, work) {
  if (!COMPRESSION_MODES.has(compression)) {
    throw new Error(`restic baseline: compression must be one of ${[...COMPRESSION_MODES].join(', ')}, not ${JSON.stringify(compression)}`);
  }
  const version = resticVersion();
  if (version === null) return { skipped: NOT_INSTALLED };
  const dir = mkdtempSync(path.join(scratch, 'restic-'));
  try {
    const passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, 'agentfd-bench\n', { mode: 0o600 });
    const repo = { dir, version, compression, env: resticEnv(path.join(dir, 'repo'), passwordFile) };
    // Format 2 is the one that supports compression; 0.14 still defaults to format 1.
    await runRestic(repo, ['init', '--repository-version', '2']);
    return await work(repo);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** restic's version number ("0.14.0"), or null when restic is not on PATH. */
function resticVersion() {
  const probe = spawnSync('restic', ['version'], { encoding: 'utf8' });
  if (probe.error?.code === 'ENOENT') return null;
  if (probe.error || probe.status !== 0) {
    throw new Error(`restic baseline: "restic version" failed (${probe.error?.message ?? `exit ${probe.status}`}): ${probe.stderr ?? ''}`.trim());
  }
  const line = probe.stdout.trim();
  return /^restic (\S+)/.exec(line)?.[1] ?? line;
}

/**
 * The parent's environment without any RESTIC_* variable (a user's RESTIC_PASSWORD_COMMAND,
 * RESTIC_COMPRESSION or RESTIC_PACK_SIZE would change what is measured), plus our repository.
 */
function resticEnv(repository, passwordFile) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('RESTIC_')));
  return { ...env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD_FILE: passwordFile };
}

async function timedBackup(repo, file) {
  const stat = statSync(file);
  if (!stat.isFile()) throw new Error(`restic baseline: ${file} is not a regular file`);
  const bytes = stat.size;
  const args = ['backup', '--stdin', '--stdin-filename', path.basename(file), '--compression', repo.compression, '--quiet'];
  const input = openSync(file, 'r');
  try {
    readThrough(input);
    const started = process.hrtime.bigint();
    await runRestic(repo, args, { stdin: input });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { seconds, bytes, storedBytes: directoryBytes(path.join(repo.env.RESTIC_REPOSITORY, 'data')), version: repo.version };
  } finally {
    closeSync(input);
  }
}

async function timedDump(repo, name) {
  const sink = openSync('/dev/null', 'w');
  try {
    const started = process.hrtime.bigint();
    await runRestic(repo, ['dump', 'latest', name], { stdout: sink });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // Snapshots of --stdin hold one file whose size is the input's; read it back rather than assume it.
    return { seconds, bytes: await snapshotFileSize(repo, name) };
  } finally {
    closeSync(sink);
  }
}

/** The size restic recorded for `name` in the latest snapshot (from `restic ls --json`). */
async function snapshotFileSize(repo, name) {
  const { stdout } = await runRestic(repo, ['ls', '--json', 'latest']);
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const node = JSON.parse(line);
    if (node.struct_type === 'node' && node.name === name) return node.size;
  }
  throw new Error(`restic baseline: the latest snapshot has no file named ${name}:\n${stdout}`);
}

/**
 * Runs restic with the repository's environment and `--no-cache`. stdin/stdout may be file
 * descriptors, handed to the child as they are. Rejects with restic's stderr when it fails.
 */
function runRestic(repo, args, { stdin = 'ignore', stdout = 'pipe' } = {}) {
  const argv = ['--no-cache', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn('restic', argv, { env: repo.env, stdio: [stdin, stdout, 'pipe'] });
    const out = [];
    const err = [];
    child.stdout?.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    child.on('error', (error) => reject(new Error(`restic baseline: could not run "restic ${argv.join(' ')}": ${error.message}`)));
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (code === 0) return resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr });
      reject(new Error(`restic baseline: "restic ${argv.join(' ')}" failed (${signal ?? `exit ${code}`}): ${stderr || '(no stderr)'}`));
    });
  });
}

/**
 * Reads an open file through (untimed) so its pages are in the page cache. The reads are
 * positioned, so the descriptor's offset stays at 0, where restic, which inherits it, starts.
 */
function readThrough(fd) {
  const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (let position = 0, n; (n = readSync(fd, buffer, 0, buffer.length, position)) > 0; position += n);
}

/** Sum of the sizes of every regular file under `dir` (own recursion: readdir's `recursive` varies across Node 20 releases). */
function directoryBytes(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += directoryBytes(full);
    else if (entry.isFile()) total += statSync(full).size;
  }
  return total;
}
