/**
 * Bacula baseline: the real Bacula 9.6 File Daemon (Debian's bacula-fd) backing up one large file
 * to a real Storage Daemon on loopback, driven by a real Director, in the same run as agentfd.
 * agentfd replaces the FD, so this is the figure to match: how fast the C FD turns a file into a
 * Bacula volume on this machine, without and with GZIP6 compression.
 *
 * The daemons come from the project's lab script, scripts/bacula/lab.sh, run with LAB under
 * `scratch` on ports of their own (BENCH_PORTS); as root it installs the Debian packages it needs
 * on first use (bacula-sd, bacula-console, and bacula-fd for start-real-fd) and fetches the
 * Director without installing it. The bench's Pool, FileSets and Jobs go in through the lab's
 * EXTRA_DIR_CONF, on the lab's JobDefs "LabJobDefs".
 *
 * What is measured, and why not with Bacula's own clock:
 * - Bacula's job report has 1-second resolution (a 4 s job reads as 268 or 537 MB/s), and a job
 *   launched from bconsole also spends ~2 s in the Director (scheduling, catalog, volume setup).
 *   So `seconds` is the data transfer only, taken from the kernel's I/O counters: /proc/<pid>/io of
 *   bacula-fd (`rchar`, bytes it has read) and of bacula-sd (`wchar`, bytes it has written),
 *   sampled every ~5 ms during the job. The transfer starts at the first sample where the FD has
 *   read more than 64 KiB beyond its count before the job (the Director's commands are far
 *   smaller, one 64 KiB file block is not), and ends at the last sample where the SD's write count
 *   was still growing by at least 4 KiB: after the data (the volume's last block included) the SD
 *   goes on writing a few hundred bytes at a time for another 150-300 ms (job messages and the
 *   attribute despool to the Director), which is end-of-job protocol, not transfer. Both ends lag
 *   the true instant by half an interval on average, so the difference is unbiased to within one
 *   interval (5 ms typical; on a loaded machine Node may sample less often).
 * - `reportElapsed` is the report's "Elapsed time:" in whole seconds, as a cross-check.
 * - `storedBytes` is the report's "SD Bytes Written:" (what the SD received for the job: data
 *   after compression plus attributes and MD5, without block headers), comparable with agentfd's
 *   stored bytes. `volumeBytes` is the size of the volume file on disk, block headers and labels
 *   included.
 * - `bytes` is the input file's size; MB/s figures are of input, as for every other case.
 *
 * The FD runs with the lab's configuration: MD5 signatures, and CommCompression = no (no LZ4 on
 * the wire, as agentfd sends none either).
 *
 * Volumes: the benchmark jobs write to their own pool with `Maximum Volume Jobs = 1`, so every job
 * gets a fresh volume that Bacula marks Used and never appends to again; its file is deleted right
 * after the job, so repeated jobs do not fill the disk.
 *
 * Page cache: bacula-fd calls posix_fadvise(DONTNEED) on every file it closes, and this VM also
 * evicts idle page cache slowly, so backup() reads the input through once before the job (so the
 * FD reads from memory, like the other cases) and once after it (so the next case does too).
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const LAB_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'bacula', 'lab.sh');
/** Director, FD, SD: apart from Bacula's own 9101-9103 and from the lab tests' ports (9111-9183). */
const BENCH_PORTS = { DIR_PORT: 9191, FD_PORT: 9192, SD_PORT: 9193 };
const PORTS = Object.values(BENCH_PORTS);
/** The Debian packages the lab installs (as root) when they are missing. */
const PACKAGES = ['bacula-common', 'bacula-common-sqlite3', 'bacula-sd', 'bacula-console', 'bacula-fd', 'sqlite3'];
const SAMPLE_MS = 5;
const START_THRESHOLD = 64 * 1024; // FD bytes read: more than the Director's commands, one file block
const END_THRESHOLD = 4 * 1024; // SD bytes written per sample: a volume block, not a job message
const STALL_MS = 60_000; // no FD or SD I/O for this long during a job: the job is stuck
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const DAEMONS = ['dir', 'fd', 'sd'];

/**
 * Sets up and starts a lab (SD, Director and the real FD on 127.0.0.1, BENCH_PORTS) under `scratch`.
 * @param {{ scratch: string }} options
 * @returns {Promise<{ skipped: string } | {
 *   dir: string,
 *   backup(file: string, options?: { gzip?: boolean }): Promise<{ seconds: number, bytes: number, storedBytes: number,
 *     reportElapsed: number, jobId: number, volumeBytes: number, wallSeconds: number }>,
 *   stop(): Promise<void>,
 * }>}
 */
export async function startBaculaLab({ scratch }) {
  const missing = missingPrerequisite();
  if (missing) return { skipped: missing };
  const busy = PORTS.find((port) => listeningPorts().has(port));
  if (busy) return { skipped: `port ${busy} is in use (another Bacula?)` };

  const dir = mkdtempSync(path.join(scratch, 'bacula-'));
  // The lab script writes $LAB unquoted into Bacula's configs.
  if (/[\s"'\\#;{}=]/.test(dir)) throw new Error(`bacula baseline: the lab directory ${dir} contains characters Bacula configs cannot hold unquoted; use a scratch path without spaces or quotes`);
  const input = path.join(dir, 'data', 'bench', 'input');
  const extraConf = path.join(dir, 'bench-dir.conf');
  writeFileSync(extraConf, benchResources(input));
  // DEBUG=0: a DEBUG left in the environment for Node's `debug` package would become bacula's -d level.
  const ports = Object.fromEntries(Object.entries(BENCH_PORTS).map(([name, port]) => [name, String(port)]));
  const env = { ...process.env, ...ports, LAB: dir, EXTRA_DIR_CONF: extraConf, DEBUG: '0', PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` };
  const lab = { dir, env, input, pids: {}, consoleGroup: null, linkedFrom: null, busy: false, broken: null, stopped: false };
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
  const probe = spawnSync('/usr/sbin/bacula-fd', ['-?'], { encoding: 'utf8' });
  return {
    dir, // logs in dir/logs, configs in dir/etc
    version: `bacula-fd ${/Version:\s*(\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1] ?? '(version unknown)'}`,
    backup: (file, options) => backup(lab, file, options),
    stop: async () => {
      await stopLab(lab);
      uninstall();
    },
  };
}

/** The reason the lab cannot run here, or null. */
function missingPrerequisite() {
  if (process.platform !== 'linux') return 'the Bacula baseline needs Linux (/proc/<pid>/io)';
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

/** Director resources appended by the lab's setup (EXTRA_DIR_CONF): a pool, two FileSets, two Jobs. */
function benchResources(input) {
  return `
# agentfd benchmark: one volume per job, so each can be deleted as soon as its job has ended.
Pool {
  Name = BenchPool
  Pool Type = Backup
  Recycle = no
  AutoPrune = no
  Maximum Volume Jobs = 1
  Label Format = "Bench-"
}
FileSet {
  Name = "BenchSet"
  Include {
    Options { signature = MD5 }
    File = "${input}"
  }
}
FileSet {
  Name = "BenchSetGzip"
  Include {
    Options { signature = MD5; compression = GZIP6 }
    File = "${input}"
  }
}
Job { Name = "BenchPlain"; JobDefs = "LabJobDefs"; FileSet = "BenchSet"; Pool = BenchPool }
Job { Name = "BenchGzip"; JobDefs = "LabJobDefs"; FileSet = "BenchSetGzip"; Pool = BenchPool }
`;
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
    const timer = setTimeout(() => end(new Error(`bacula baseline: ${what}: "${command} ${args.join(' ')}" did not finish within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    const onAbort = () => end(signal.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => out.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(new Error(`bacula baseline: ${what}: ${command}: ${error.message}`));
    });
    child.on('close', (code, exitSignal) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const output = Buffer.concat(out).toString('utf8');
      if (ended) return reject(ended);
      if (code === 0) return resolve(output);
      // The first line says why (the lab's own error line when it printed one); the output follows.
      const why = output.split('\n').reverse().find((line) => /\berror:|^E: /.test(line))?.trim();
      reject(new Error(`bacula baseline: ${what}: ${why ?? `"${command} ${args.join(' ')}" ended with ${exitSignal ?? `exit ${code}`}`}\n${output.trim()}`));
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

/** True while `pid` runs (a zombie, waiting for init to reap it, counts as gone). */
function alive(pid) {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Waits until the three daemons listen; a daemon that died at startup fails with its log. */
async function waitForListening(lab) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    for (const name of DAEMONS) {
      if (!lab.pids[name] || !alive(lab.pids[name])) throw new Error(`bacula baseline: bacula-${name} did not stay up:\n${logTail(lab, name)}`);
    }
    const listening = listeningPorts();
    if (PORTS.every((port) => listening.has(port))) return;
    if (Date.now() > deadline) {
      throw new Error(`bacula baseline: the daemons did not listen on ports ${PORTS.join(', ')} within 15 s:\n${DAEMONS.map((name) => logTail(lab, name)).join('\n')}`);
    }
    await sleep(100);
  }
}

/** The last lines of $LAB/logs/<name>.log (bacula.log holds the Director's job messages). */
function logTail(lab, name) {
  const file = path.join(lab.dir, 'logs', `${name}.log`);
  const text = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-20).join('\n') : '';
  return `--- ${file}\n${text || '(empty)'}`;
}

async function backup(lab, file, { gzip = false } = {}) {
  if (lab.stopped) throw new Error('bacula baseline: backup() after stop()');
  if (lab.broken) throw new Error(`bacula baseline: this lab is unusable after an abandoned job (${lab.broken}); stop() it and start another`);
  if (lab.busy) throw new Error('bacula baseline: one backup at a time (the I/O counters would mix two jobs)');
  lab.busy = true;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new Error(`bacula baseline: ${file} is not a regular file`);
    const bytes = stat.size;
    placeInput(lab, file);
    readThrough(file);
    const job = gzip ? 'BenchGzip' : 'BenchPlain';
    // bconsole's `wait` blocks for ever when a daemon dies or stalls mid-job, so the sampler,
    // which sees both, abandons the job then.
    const abandon = new AbortController();
    const sampler = startIoSampler(lab.pids.fd, lab.pids.sd, (cause) => {
      lab.broken = cause.message;
      abandon.abort(new Error(`bacula baseline: job ${job} abandoned: ${cause.message}\n${['bacula', ...DAEMONS].map((name) => logTail(lab, name)).join('\n')}`));
    });
    const started = process.hrtime.bigint();
    let output;
    try {
      output = await console_(lab, [`run job=${job} yes`, 'wait', 'messages'], { signal: abandon.signal, timeoutMs: 24 * 3600_000 });
    } finally {
      sampler.stop();
    }
    const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const report = await jobReport(lab, output);
    const volumeBytes = deleteVolumes(lab, report.volumes);
    readThrough(file);
    return { seconds: transferSeconds(sampler.samples, report), bytes, storedBytes: report.sdBytesWritten, reportElapsed: report.elapsed, jobId: report.jobId, volumeBytes, wallSeconds };
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
  const current = existsSync(lab.input) ? statSync(lab.input) : null;
  if (current && current.ino === source.ino && current.dev === source.dev) return;
  const identity = `${file}:${source.dev}:${source.ino}:${source.size}:${source.mtimeMs}`;
  if (current && lab.linkedFrom === identity) return; // the copy made earlier
  mkdirSync(path.dirname(lab.input), { recursive: true });
  if (current) unlinkSync(lab.input);
  try {
    linkSync(file, lab.input);
  } catch (error) {
    if (error.code !== 'EXDEV' && error.code !== 'EPERM') throw error;
    copyFileSync(file, lab.input);
  }
  lab.linkedFrom = identity;
}

/** Reads a file through once, so its pages are in the page cache (untimed). */
function readThrough(file) {
  const fd = openSync(file, 'r');
  const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
  try {
    while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

/**
 * Samples the FD's rchar and the SD's wchar every SAMPLE_MS until stop(). Calls onFailure once
 * (instead of throwing from a timer) when a daemon is gone or neither counter has moved for
 * STALL_MS, and samples no more.
 */
function startIoSampler(fdPid, sdPid, onFailure) {
  const samples = [];
  let failed = false;
  let progressAt = Date.now();
  const fail = (error) => {
    failed = true;
    clearInterval(timer);
    onFailure(error);
  };
  const read = () => ({ at: process.hrtime.bigint(), fdRead: ioCounter(fdPid, 'rchar', 'bacula-fd'), sdWritten: ioCounter(sdPid, 'wchar', 'bacula-sd') });
  const sample = () => {
    if (failed) return;
    let next;
    try {
      next = read();
    } catch (error) {
      return fail(error);
    }
    const previous = samples.at(-1);
    if (!previous || next.fdRead !== previous.fdRead || next.sdWritten !== previous.sdWritten) progressAt = Date.now();
    else if (Date.now() - progressAt > STALL_MS) return fail(new Error(`neither bacula-fd nor bacula-sd did any I/O for ${STALL_MS / 1000} s`));
    samples.push(next);
  };
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    samples,
    stop() {
      clearInterval(timer);
      if (!failed) {
        try {
          samples.push(read());
        } catch {
          // The job is over; a daemon that dies now shows up in the next job.
        }
      }
      failed = true;
    },
  };
}

function ioCounter(pid, field, name) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch (error) {
    throw new Error(`cannot read /proc/${pid}/io of ${name} (${error.code}): it died, or this user may not read its I/O counters`);
  }
  if (!alive(pid)) throw new Error(`${name} (pid ${pid}) died`);
  const match = new RegExp(`^${field}: (\\d+)$`, 'm').exec(text);
  if (!match) throw new Error(`bacula baseline: /proc/${pid}/io has no ${field} line:\n${text}`);
  return Number(match[1]);
}

/** Seconds from the FD's first file read to the SD's last block write (see the header comment). */
function transferSeconds(samples, report) {
  const before = samples[0].fdRead;
  const first = samples.findIndex((s) => s.fdRead - before > START_THRESHOLD);
  let last = -1;
  for (let i = samples.length - 1; i > 0; i--) {
    if (samples[i].sdWritten - samples[i - 1].sdWritten >= END_THRESHOLD) {
      last = i;
      break;
    }
  }
  if (first < 0 || last <= first) {
    throw new Error(`bacula baseline: job ${report.jobId} ended "Backup OK" but the FD's/SD's I/O counters show no transfer (${samples.length} samples); was the input empty?`);
  }
  return Number(samples[last].at - samples[first].at) / 1e9;
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
 * report had not arrived yet. Throws with the whole text unless the job ended "Backup OK".
 */
async function jobReport(lab, output) {
  const queued = /Job queued\. JobId=(\d+)/.exec(output);
  if (!queued) throw new Error(`bacula baseline: the Director did not queue the job:\n${output}`);
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
  const termination = field('Termination');
  if (!termination.startsWith('Backup OK')) {
    throw new Error(`bacula baseline: job ${jobId} did not end "Backup OK" (${termination || 'no report'}); Director log ${path.join(lab.dir, 'logs', 'bacula.log')}:\n${all}`);
  }
  return {
    jobId,
    elapsed: parseElapsed(field('Elapsed time')),
    // "1,073,741,959 (1.073 GB)"
    sdBytesWritten: Number(field('SD Bytes Written').split(' ')[0].replaceAll(',', '')),
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

/** Stops every daemon the lab started and waits until they are gone; removes the large files. */
async function stopLab(lab) {
  if (lab.stopped) return;
  lab.stopped = true;
  const pids = { ...readPids(lab.dir), ...lab.pids };
  try {
    await labScript(lab, ['stop']);
  } catch {
    // Fall through: the PIDs are signalled below anyway.
  }
  for (const [name, pid] of Object.entries(pids)) {
    // A Director whose job was abandoned hangs on SIGTERM, hence the SIGKILL after a while.
    if (!(await exited(pid, 5_000)) && isBacula(pid)) {
      signal(pid, 'SIGKILL');
      if (!(await exited(pid, 5_000))) throw new Error(`bacula baseline: bacula-${name} (pid ${pid}) survived SIGKILL`);
    }
  }
  rmSync(path.join(lab.dir, 'storage'), { recursive: true, force: true });
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

/** Guards against signalling a recycled PID. */
function isBacula(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bacula-');
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
  for (const pid of Object.values({ ...readPids(lab.dir), ...lab.pids })) if (isBacula(pid)) signal(pid, 'SIGKILL');
}

/** process.kill that ignores a process (or group) already gone. */
function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch (error) {
    if (error.code !== 'ESRCH') throw error;
  }
}
