/**
 * The bench's Bacula lab: a real Bacula 9.6 Director and Storage Daemon on loopback, with two
 * clients in the same run: the real Bacula 9.6 File Daemon (Debian's bacula-fd), the baseline, and
 * `agentfd serve`, which replaces it (bench/serve-daemon.mjs). The pipeline suite times bacula-fd
 * backing up one large file (without and with GZIP6) against agentfd's own CLI; the serve suite
 * (bench/serve.mjs) times both clients on the same jobs, alternated.
 *
 * The daemons come from the project's lab script, scripts/bacula/lab.sh, run with LAB under
 * `scratch` on four ports of their own: BENCH_BACULA_PORTS (default 9191) is the Director's,
 * the next three bacula-fd's, the SD's and agentfd serve's, apart from Bacula's own 9101-9103 and
 * the lab tests' (9111-9243), and movable when the bench runs beside another lab. As root the lab
 * installs the Debian packages it needs on first use (bacula-sd, bacula-console, and bacula-fd
 * for start-real-fd) and fetches the Director without installing it. The bench's Client (for
 * serve), Pool, FileSets and Jobs go in through the lab's EXTRA_DIR_CONF, on the lab's JobDefs
 * "LabJobDefs"; a job runs on either client with bconsole's `client=`.
 *
 * What is measured: the FD's part of each job, from its I/O counters (bench/fd-io.mjs says why
 * and how), the same way for both clients. Beside it:
 * - `reportElapsed` is the report's "Elapsed time:" in whole seconds, and `wallSeconds` the time
 *   from bconsole's `run` to the job's end, as cross-checks; `cpuSeconds` the FD's CPU time over
 *   the job, steadier than any clock when the machine is loaded;
 * - `storedBytes` is the report's "SD Bytes Written:" (what the SD received for the job: data
 *   after compression plus attributes and MD5, without block headers), comparable with agentfd's
 *   stored bytes. `volumeBytes` is the size of the volume file on disk, block headers and labels
 *   included;
 * - `bytes` is the input's size; MB/s figures are of input, as for every other case.
 *
 * The FDs run with the lab's configuration: MD5 signatures, and CommCompression = no (no LZ4 on
 * the wire, as agentfd sends none either). Each client runs one untimed backup and restore of a
 * small file before its first timed job, so neither pays for its first job's warm-up in a figure.
 *
 * Volumes: the benchmark jobs write to their own pool with `Maximum Volume Jobs = 1`, so every job
 * gets a fresh volume that Bacula marks Used and never appends to again; its file is deleted right
 * after the job (or after the restore that reads it), so repeated jobs do not fill the disk.
 *
 * Page cache: bacula-fd calls posix_fadvise(DONTNEED) on every file it closes, and this VM also
 * evicts idle page cache slowly, so every input is read through before each job (so both FDs read
 * from memory, like the other cases), and the large file once after it (so the next case does too).
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SAMPLE_MS, alive, fdCpuSeconds, fdTransferSeconds, startIoSampler } from '../fd-io.mjs';
import { isServe, startServe, stopServe, tail } from '../serve-daemon.mjs';
import { writeRandom } from '../inputs.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const LAB_SCRIPT = path.join(ROOT, 'scripts', 'bacula', 'lab.sh');
const PORTS_VARIABLE = 'BENCH_BACULA_PORTS';
const FIRST_PORT = 9191;
/** The two clients: the Director's Client resource of each (the lab's own FD_NAME is bacula-fd's). */
export const CLIENTS = {
  'bacula-fd': { name: 'bench-bacula-fd', label: 'bacula-fd' },
  serve: { name: 'bench-agentfd-serve', label: 'agentfd serve' },
};
const DIRECTOR = { name: 'lab-dir', password: 'lab-fd-pass' }; // the lab's defaults
/** The Debian packages the lab installs (as root) when they are missing. */
const PACKAGES = ['bacula-common', 'bacula-common-sqlite3', 'bacula-sd', 'bacula-console', 'bacula-fd', 'sqlite3'];
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const DAEMONS = ['dir', 'fd', 'sd'];
const WARM_BYTES = 1024 * 1024;

/**
 * The lab's ports: BENCH_BACULA_PORTS (default 9191) and the three after it. Throws with what to
 * do when the variable is not a port number.
 */
export function benchPorts(env = process.env) {
  const text = env[PORTS_VARIABLE];
  const first = text === undefined || text === '' ? FIRST_PORT : Number(text);
  if (!Number.isInteger(first) || first < 1024 || first > 65532) {
    throw new Error(`${PORTS_VARIABLE}=${text} is not a port number: give the first of four free ports from 1024 (the Director, bacula-fd, the SD and agentfd serve take it and the next three)`);
  }
  return { dir: first, fd: first + 1, sd: first + 2, serve: first + 3 };
}

/**
 * Sets up and starts a lab (SD, Director and the real FD on 127.0.0.1) under `scratch`;
 * agentfd serve starts at the first use of that client.
 * @param {{ scratch: string }} options
 * @returns {Promise<{ skipped: string } | {
 *   dir: string, paths: { input: string, small: string, sparse: string },
 *   version: string,
 *   client(kind: 'bacula-fd' | 'serve'): Promise<{ kind, name, label, pid, version }>,
 *   backup(file: string, options?: { gzip?: boolean }): Promise<object>,
 *   place(file: string): void,
 *   runBackup(options: { client, job: string, keepVolumes?: boolean }): Promise<object>,
 *   runRestore(options: { client, jobId: number, where: string }): Promise<object>,
 *   deleteVolumes(volumes: string[]): number,
 *   stop(): Promise<void>,
 * }>}
 */
export async function startBaculaLab({ scratch }) {
  const missing = missingPrerequisite();
  if (missing) return { skipped: missing };
  const ports = benchPorts();
  const busy = [ports.dir, ports.fd, ports.sd].find((port) => listeningPorts().has(port));
  if (busy) return { skipped: `port ${busy} is in use (another Bacula? ${PORTS_VARIABLE} moves the bench's four ports)` };

  const dir = mkdtempSync(path.join(scratch, 'bacula-'));
  // The lab script writes $LAB unquoted into Bacula's configs.
  if (/[\s"'\\#;{}=]/.test(dir)) throw new Error(`bacula lab: the lab directory ${dir} contains characters Bacula configs cannot hold unquoted; use a scratch path without spaces or quotes`);
  const data = path.join(dir, 'data', 'bench');
  const paths = { input: path.join(data, 'input'), small: path.join(data, 'small'), sparse: path.join(data, 'sparse.img'), warm: path.join(data, 'warm') };
  const extraConf = path.join(dir, 'bench-dir.conf');
  writeFileSync(extraConf, benchResources(paths, ports));
  // DEBUG=0: a DEBUG left in the environment for Node's `debug` package would become bacula's -d level.
  const labPorts = { DIR_PORT: String(ports.dir), FD_PORT: String(ports.fd), SD_PORT: String(ports.sd) };
  const env = { ...process.env, ...labPorts, FD_NAME: CLIENTS['bacula-fd'].name, LAB: dir, EXTRA_DIR_CONF: extraConf, DEBUG: '0', PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` };
  const lab = { dir, env, paths, ports, pids: {}, clients: {}, consoleGroup: null, linkedFrom: null, busy: false, broken: null, stopped: false };
  const uninstall = installLastResort(lab);
  try {
    await labScript(lab, ['setup']);
    await labScript(lab, ['start']);
    await labScript(lab, ['start-real-fd']);
    lab.pids = readPids(dir);
    await waitForListening(lab);
  } catch (error) {
    await stopLab(lab);
    uninstall();
    throw error;
  }
  return {
    dir, // logs in dir/logs, configs in dir/etc
    paths,
    version: baculaFdVersion(),
    client: (kind) => client(lab, kind),
    backup: (file, options) => backupFile(lab, file, options),
    place: (file) => placeInput(lab, file),
    runBackup: (options) => runBackup(lab, options),
    runRestore: (options) => runRestore(lab, options),
    deleteVolumes: (volumes) => deleteVolumes(lab, volumes),
    stop: async () => {
      await stopLab(lab);
      uninstall();
    },
  };
}

function baculaFdVersion() {
  const probe = spawnSync('/usr/sbin/bacula-fd', ['-?'], { encoding: 'utf8' });
  return `bacula-fd ${/Version:\s*(\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1] ?? '(version unknown)'}`;
}

function agentfdVersion() {
  try {
    return `agentfd ${JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version} serve (this tree)`;
  } catch {
    return 'agentfd serve (this tree)';
  }
}

/** The reason the lab cannot run here, or null. */
function missingPrerequisite() {
  if (process.platform !== 'linux') return 'the Bacula lab needs Linux (/proc/<pid>/io)';
  if (!existsSync(LAB_SCRIPT)) return `the Bacula lab script ${LAB_SCRIPT} is missing`;
  if (!onPath('dpkg-query')) return "the Bacula lab runs Debian's Bacula 9.6 packages, and this is not Debian (no dpkg-query)";
  const missing = PACKAGES.filter((pkg) => spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout !== 'install ok installed');
  if (missing.length === 0) return null;
  if (process.getuid?.() !== 0) return `${missing.join(', ')} not installed, and only root may install them: apt-get install ${missing.join(' ')} (or run the bench as root once)`;
  if (!onPath('apt-get')) return `${missing.join(', ')} not installed, and there is no apt-get to install them`;
  return null; // the lab installs them (scripts/debian-install.sh: services not started)
}

function onPath(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } }).status === 0;
}

/** Ports in LISTEN state on any address (IPv4 or IPv6), from /proc/net/tcp{,6}. */
function listeningPorts() {
  const ports = new Set();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state === '0A') ports.add(Number.parseInt(local.split(':')[1], 16));
    }
  }
  return ports;
}

/**
 * Director resources appended by the lab's setup (EXTRA_DIR_CONF): agentfd serve's Client, a
 * pool, the FileSets and the Jobs (on the lab's bacula-fd Client unless `run ... client=`).
 */
function benchResources(paths, ports) {
  const fileSet = (name, options, file) => `FileSet {\n  Name = "${name}"\n  Include {\n    Options { signature = MD5${options} }\n    File = "${file}"\n  }\n}`;
  const job = (name, set) => `Job { Name = "${name}"; JobDefs = "LabJobDefs"; FileSet = "${set}"; Pool = BenchPool }`;
  return [
    '',
    '# agentfd benchmark: agentfd serve, the second client, beside the lab\'s bacula-fd.',
    `Client {\n  Name = ${CLIENTS.serve.name}\n  Address = 127.0.0.1\n  FDPort = ${ports.serve}\n  Catalog = LabCatalog\n  Password = "${DIRECTOR.password}"\n  AutoPrune = no\n  Maximum Concurrent Jobs = 10\n}`,
    '# One volume per job, so each can be deleted as soon as its job (or its restore) has ended.',
    'Pool {\n  Name = BenchPool\n  Pool Type = Backup\n  Recycle = no\n  AutoPrune = no\n  Maximum Volume Jobs = 1\n  Label Format = "Bench-"\n}',
    fileSet('BenchSet', '', paths.input),
    fileSet('BenchSetGzip', '; compression = GZIP6', paths.input),
    fileSet('BenchSetLzo', '; compression = LZO', paths.input),
    fileSet('BenchSetSparse', '; sparse = yes', paths.sparse),
    fileSet('BenchSetSmall', '', paths.small),
    fileSet('BenchSetWarm', '; compression = GZIP6', paths.warm),
    job('BenchPlain', 'BenchSet'),
    job('BenchGzip', 'BenchSetGzip'),
    job('BenchLzo', 'BenchSetLzo'),
    job('BenchSparse', 'BenchSetSparse'),
    job('BenchSmall', 'BenchSetSmall'),
    job('BenchWarm', 'BenchSetWarm'),
    '',
  ].join('\n');
}

function labScript(lab, args) {
  return run('bash', [LAB_SCRIPT, ...args], { env: lab.env, timeoutMs: 900_000 }, `lab.sh ${args[0]} failed (logs in ${path.join(lab.dir, 'logs')})`);
}

/**
 * Runs a command to completion; rejects with `what`, the command and its output when it fails or
 * outlives `timeoutMs`, or with the abort reason when `signal` fires. With `ownGroup` the command
 * gets its own process group, so ending it ends its children (bash, printf and bconsole) and
 * nothing else; the daemon-starting commands stay in ours, so the daemons they leave behind share
 * our terminal's signals.
 */
function run(command, args, { cwd, env, timeoutMs = 300_000, ownGroup = false, signal, onSpawn }, what) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: ownGroup });
    onSpawn?.(child);
    const out = [];
    let ended = null;
    const end = (reason) => {
      ended ??= reason;
      try {
        if (ownGroup) process.kill(-child.pid, 'SIGTERM');
        else child.kill('SIGTERM');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => end(new Error(`bacula lab: ${what}: "${command} ${args.join(' ')}" did not finish within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    const onAbort = () => end(signal.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => out.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(new Error(`bacula lab: ${what}: ${command}: ${error.message}`));
    });
    child.on('close', (code, exitSignal) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const output = Buffer.concat(out).toString('utf8');
      if (ended) return reject(ended);
      if (code === 0) return resolve(output);
      // The first line says why (the lab's own error line when it printed one); the output follows.
      const why = output.split('\n').reverse().find((line) => /\berror:|^E: /.test(line))?.trim();
      reject(new Error(`bacula lab: ${what}: ${why ?? `"${command} ${args.join(' ')}" ended with ${exitSignal ?? `exit ${code}`}`}\n${output.trim()}`));
    });
  });
}

/** PIDs the lab script recorded for the daemons it started ($LAB/run/lab-<name>.pid). */
function readPids(dir) {
  const pids = {};
  for (const name of DAEMONS) {
    const file = path.join(dir, 'run', `lab-${name}.pid`);
    if (existsSync(file)) pids[name] = Number(readFileSync(file, 'utf8').trim());
  }
  return pids;
}

/** Waits until the three daemons listen; a daemon that died at startup fails with its log. */
async function waitForListening(lab) {
  const ports = [lab.ports.dir, lab.ports.fd, lab.ports.sd];
  const deadline = Date.now() + 15_000;
  for (;;) {
    for (const name of DAEMONS) {
      if (!lab.pids[name] || !alive(lab.pids[name])) throw new Error(`bacula lab: bacula-${name} did not stay up:\n${logTail(lab, name)}`);
    }
    const listening = listeningPorts();
    if (ports.every((port) => listening.has(port))) return;
    if (Date.now() > deadline) {
      throw new Error(`bacula lab: the daemons did not listen on ports ${ports.join(', ')} within 15 s:\n${DAEMONS.map((name) => logTail(lab, name)).join('\n')}`);
    }
    await sleep(100);
  }
}

/** The last lines of $LAB/logs/<name>.log (bacula.log holds the Director's job messages). */
function logTail(lab, name) {
  const file = path.join(lab.dir, 'logs', `${name}.log`);
  return `--- ${file}\n${tail(file)}`;
}

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * The client `kind` ('bacula-fd' or 'serve'), ready: serve started at its first use, and each
 * warmed up once by an untimed backup and restore. Rejects with the reason when it cannot be.
 */
function client(lab, kind) {
  lab.clients[kind] ??= (async () => {
    const base = { kind, ...CLIENTS[kind] };
    let ready;
    if (kind === 'serve') {
      if (listeningPorts().has(lab.ports.serve)) throw new Error(`port ${lab.ports.serve} (agentfd serve) is in use; ${PORTS_VARIABLE} moves the bench's four ports`);
      const logs = path.join(lab.dir, 'logs');
      const started = await startServe({ root: ROOT, dir: path.join(lab.dir, 'serve'), logs, name: base.name, port: lab.ports.serve, director: DIRECTOR });
      lab.pids.serve = started.pid;
      ready = { ...base, pid: started.pid, version: agentfdVersion() };
    } else {
      ready = { ...base, pid: lab.pids.fd, version: baculaFdVersion() };
    }
    await warmUp(lab, ready);
    return ready;
  })();
  return lab.clients[kind];
}

/** An untimed backup of a small file and its restore (code paths loaded, caches filled). */
async function warmUp(lab, fd) {
  if (!existsSync(lab.paths.warm)) {
    mkdirSync(lab.paths.warm, { recursive: true });
    writeRandom(path.join(lab.paths.warm, 'warm.bin'), WARM_BYTES);
  }
  try {
    // Untimed: a 1 MiB job may pass between two samples of the I/O counters.
    const backup = await runBackup(lab, { client: fd, job: 'BenchWarm', keepVolumes: true, untimed: true });
    const where = path.join(lab.dir, 'restore', `warm-${fd.kind}`);
    await runRestore(lab, { client: fd, jobId: backup.jobId, where, untimed: true });
    deleteVolumes(lab, backup.volumes);
    rmSync(where, { recursive: true, force: true });
  } catch (error) {
    throw new Error(`${fd.label} failed its warm-up job: ${error.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs

/** The pipeline suite's baseline: bacula-fd backs up one file, without or with GZIP6. */
async function backupFile(lab, file, { gzip = false } = {}) {
  const stat = statSync(file);
  if (!stat.isFile()) throw new Error(`bacula lab: ${file} is not a regular file`);
  placeInput(lab, file);
  const fd = await client(lab, 'bacula-fd');
  const result = await runBackup(lab, { client: fd, job: gzip ? 'BenchGzip' : 'BenchPlain', before: () => readThrough(file) });
  readThrough(file);
  return { ...result, bytes: stat.size };
}

/**
 * Runs backup job `job` on `client` and times the FD's part (`seconds` null if `untimed` and too
 * short to time). The volume is deleted after the job unless `keepVolumes` (a restore reads it;
 * the caller deletes it then). `before` runs untimed just before the job (reading the input into
 * the page cache).
 */
async function runBackup(lab, { client: fd, job, keepVolumes = false, before, untimed = false }) {
  const { report, seconds, wallSeconds, cpuSeconds } = await timedJob(lab, fd, [`run job=${job} client=${fd.name} yes`], { termination: 'Backup OK', before, untimed });
  const volumeBytes = keepVolumes ? null : deleteVolumes(lab, report.volumes);
  return { seconds, wallSeconds, cpuSeconds, jobId: report.jobId, files: report.files, storedBytes: report.sdBytesWritten, reportElapsed: report.elapsed, volumes: report.volumes, volumeBytes };
}

/** Restores every file of backup `jobId` through `client` to `where`, timing the FD's part. */
async function runRestore(lab, { client: fd, jobId, where, untimed = false }) {
  if (/["\n]/.test(where)) throw new Error(`bacula lab: a restore target cannot hold quotes or newlines: ${where}`);
  const command = `restore jobid=${jobId} client=${fd.name} restoreclient=${fd.name} where="${where}" all done yes`;
  const { report, seconds, wallSeconds, cpuSeconds } = await timedJob(lab, fd, [command], { termination: 'Restore OK', untimed });
  return { seconds, wallSeconds, cpuSeconds, jobId: report.jobId, files: report.files, bytes: report.bytesRestored, reportElapsed: report.elapsed };
}

/**
 * Runs one job (bconsole `commands`, then `wait` and `messages`) while sampling the FD's I/O
 * counters; its report, the FD's transfer seconds, the FD's CPU seconds over the whole job, and
 * the wall time of the whole command.
 */
async function timedJob(lab, fd, commands, { termination, before, untimed }) {
  if (lab.stopped) throw new Error('bacula lab: a job after stop()');
  if (lab.broken) throw new Error(`bacula lab: unusable after an abandoned job (${lab.broken})`);
  if (lab.busy) throw new Error('bacula lab: one job at a time (the I/O counters would mix two jobs)');
  lab.busy = true;
  try {
    before?.();
    // bconsole's `wait` blocks for ever when a daemon dies or stalls mid-job, so the sampler,
    // which sees both, abandons the job then.
    const abandon = new AbortController();
    const sampler = startIoSampler({ fd: { pid: fd.pid, name: fd.label }, sd: { pid: lab.pids.sd, name: 'bacula-sd' } }, (cause) => {
      lab.broken = cause.message;
      const logs = ['bacula', ...DAEMONS].map((name) => logTail(lab, name));
      if (fd.kind === 'serve') logs.push(logTail(lab, 'serve'));
      abandon.abort(new Error(`bacula lab: ${fd.label}'s job abandoned: ${cause.message}\n${logs.join('\n')}`));
    });
    const started = process.hrtime.bigint();
    const cpuBefore = fdCpuSeconds(fd.pid);
    let output;
    try {
      output = await console_(lab, [...commands, 'wait', 'messages'], { signal: abandon.signal, timeoutMs: 24 * 3600_000 });
    } finally {
      sampler.stop();
    }
    const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpuSeconds = fdCpuSeconds(fd.pid) - cpuBefore;
    const report = await jobReport(lab, output, termination, fd);
    const seconds = fdTransferSeconds(sampler.samples);
    if (seconds === null && !untimed) {
      throw new Error(`bacula lab: job ${report.jobId} ended "${termination}" but ${fd.label}'s I/O counters show no transfer over two samples or more (${sampler.samples.length} samples of ${SAMPLE_MS} ms); was the input empty, or too small to time?`);
    }
    return { report, seconds, wallSeconds, cpuSeconds };
  } finally {
    lab.busy = false;
  }
}

/**
 * Makes the FileSets' fixed path ($LAB/data/bench/input) name `file`: a hard link (same inode, so
 * the same page cache), or a copy made once per source file when a link is impossible (another
 * filesystem, or protected_hardlinks).
 */
function placeInput(lab, file) {
  const source = statSync(file);
  const current = existsSync(lab.paths.input) ? statSync(lab.paths.input) : null;
  if (current && current.ino === source.ino && current.dev === source.dev) return;
  const identity = `${file}:${source.dev}:${source.ino}:${source.size}:${source.mtimeMs}`;
  if (current && lab.linkedFrom === identity) return; // the copy made earlier
  mkdirSync(path.dirname(lab.paths.input), { recursive: true });
  if (current) unlinkSync(lab.paths.input);
  try {
    linkSync(file, lab.paths.input);
  } catch (error) {
    if (error.code !== 'EXDEV' && error.code !== 'EPERM') throw error;
    copyFileSync(file, lab.paths.input);
  }
  lab.linkedFrom = identity;
}

/** Reads a file through once, so its pages are in the page cache (untimed). */
export function readThrough(file, buffer = Buffer.allocUnsafe(8 * 1024 * 1024)) {
  const fd = openSync(file, 'r');
  try {
    while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

/** Runs bconsole commands through the lab script, in a process group of its own (see run). */
async function console_(lab, commands, { signal, timeoutMs = 60_000 } = {}) {
  try {
    const onSpawn = (child) => {
      lab.consoleGroup = child.pid; // for killDaemonsNow
    };
    return await run('bash', [LAB_SCRIPT, 'console', ...commands], { env: lab.env, timeoutMs, signal, ownGroup: true, onSpawn }, 'bconsole failed');
  } finally {
    lab.consoleGroup = null;
  }
}

/**
 * Parses this job's report out of bconsole's output; asks for `messages` again briefly if the
 * report had not arrived yet. Throws with the whole text unless the job ended `termination` on
 * the client `fd`.
 */
async function jobReport(lab, output, termination, fd) {
  const queued = /Job queued\. JobId=(\d+)/.exec(output);
  if (!queued) throw new Error(`bacula lab: the Director did not queue ${fd.label}'s job: ${output.trim().split('\n').at(-1)}\n${output}`);
  const jobId = Number(queued[1]);
  // From this job's "JobId: N" line on: older messages may precede it.
  const reportOf = (text) => {
    const at = text.search(new RegExp(`^\\s*JobId:\\s*${jobId}\\s*$`, 'm'));
    const report = at < 0 ? '' : text.slice(at);
    return /^\s*Termination:/m.test(report) ? report : null;
  };
  let all = output;
  for (let tries = 0; !reportOf(all) && tries < 10; tries++) {
    await sleep(300);
    all += await console_(lab, ['messages']);
  }
  const report = reportOf(all) ?? '';
  const field = (name) => (new RegExp(`^\\s*${name}:(.*)$`, 'm').exec(report)?.[1] ?? '').trim();
  // "1,073,741,959 (1.073 GB)"
  const number = (name) => Number(field(name).split(' ')[0].replaceAll(',', ''));
  const ended = field('Termination');
  if (!ended.startsWith(termination)) {
    const logs = fd.kind === 'serve' ? `; agentfd serve's log ${path.join(lab.dir, 'logs', 'serve.log')}` : '';
    throw new Error(`bacula lab: ${fd.label}'s job ${jobId} did not end "${termination}" (${ended || 'no report'}); Director log ${path.join(lab.dir, 'logs', 'bacula.log')}${logs}:\n${all}`);
  }
  // A backup's report says `Client: "name" version...`, a restore's `Restore Client: name`.
  const ranOn = field(termination === 'Backup OK' ? 'Client' : 'Restore Client');
  if (!new RegExp(`(^|[\\s"])${fd.name}([\\s"]|$)`).test(ranOn)) throw new Error(`bacula lab: job ${jobId} ran on client "${ranOn}", not ${fd.name}:\n${report}`);
  return {
    jobId,
    elapsed: parseElapsed(field('Elapsed time')),
    files: termination === 'Backup OK' ? number('FD Files Written') : number('Files Restored'),
    sdBytesWritten: number('SD Bytes Written'),
    bytesRestored: number('Bytes Restored'),
    volumes: field('Volume name\\(s\\)').split(/[|,\s]+/).filter(Boolean),
  };
}

/** "1 hour 2 mins 3 secs" -> 3723 */
function parseElapsed(text) {
  const unit = { day: 86400, hour: 3600, min: 60, sec: 1 };
  let seconds = 0;
  for (const [, n, u] of text.matchAll(/(\d+)\s*(day|hour|min|sec)/g)) seconds += Number(n) * unit[u];
  return seconds;
}

/**
 * Deletes the job's volume files and returns their total size. The volumes are Used (one job per
 * volume, Recycle = no), so Bacula never opens them again; their catalog records stay, harmless.
 */
function deleteVolumes(lab, volumes) {
  let total = 0;
  for (const name of volumes) {
    const file = path.join(lab.dir, 'storage', name);
    if (!existsSync(file)) continue;
    total += statSync(file).size;
    rmSync(file, { force: true });
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Stopping

/** Stops every daemon the lab started and waits until they are gone; removes the large files. */
async function stopLab(lab) {
  if (lab.stopped) return;
  lab.stopped = true;
  const pids = { ...readPids(lab.dir), ...lab.pids };
  stopServe(pids.serve);
  try {
    await labScript(lab, ['stop']);
  } catch {
    // Fall through: the PIDs are signalled below anyway.
  }
  for (const [name, pid] of Object.entries(pids)) {
    // A Director whose job was abandoned hangs on SIGTERM, hence the SIGKILL after a while.
    if (!(await exited(pid, 5_000)) && isOurs(pid)) {
      signal(pid, 'SIGKILL');
      if (!(await exited(pid, 5_000))) throw new Error(`bacula lab: ${name} (pid ${pid}) survived SIGKILL`);
    }
  }
  rmSync(path.join(lab.dir, 'storage'), { recursive: true, force: true });
  rmSync(path.join(lab.dir, 'restore'), { recursive: true, force: true });
  rmSync(path.join(lab.dir, 'data', 'bench'), { recursive: true, force: true });
}

async function exited(pid, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Guards against signalling a recycled PID: one of the lab's daemons, or the serve. */
function isOurs(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bacula-') || isServe(pid);
  } catch {
    return false;
  }
}

/**
 * Last resort when the process exits or is signalled without stop() having run: SIGKILL the
 * daemons and any running bconsole (synchronously; there is no time to wait). A signal is then
 * re-raised so its default action still happens, unless another handler has taken charge of it.
 * Returns the uninstaller.
 */
function installLastResort(lab) {
  const onExit = () => killDaemonsNow(lab);
  const onSignal = (name) => {
    killDaemonsNow(lab);
    uninstall();
    if (process.listenerCount(name) === 0) process.kill(process.pid, name);
  };
  process.on('exit', onExit);
  for (const name of SIGNALS) process.on(name, onSignal);
  function uninstall() {
    process.off('exit', onExit);
    for (const name of SIGNALS) process.off(name, onSignal);
  }
  return uninstall;
}

/** SIGKILL, not SIGTERM: a Director with a job in progress hangs in its SIGTERM handler. */
function killDaemonsNow(lab) {
  if (lab.stopped) return;
  if (lab.consoleGroup) signal(-lab.consoleGroup, 'SIGKILL');
  for (const pid of Object.values({ ...readPids(lab.dir), ...lab.pids })) if (isOurs(pid)) signal(pid, 'SIGKILL');
}

/** process.kill that ignores a process (or group) already gone. */
function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch (error) {
    if (error.code !== 'ESRCH') throw error;
  }
}
