/**
 * Backup pipeline benchmark: whole agentfd backup jobs run as a user runs them, `node
 * bin/agentfd.js backup --json` in a child process, so a figure includes process start, loading
 * the agent, the isolated agent host, SHA-256, compression, encryption, the volume on disk with its
 * fdatasync, and the catalog. Throughput is input bytes over the wall time the bench measures
 * around the child; peak RSS is sampled over the child and all its descendants (the agent host).
 *
 * Settings: none, gzip:6, zstd:1 and zstd:3, each without and with encryption (X25519 keys, so
 * that no job pays for scrypt), on a random and a text input, through the Exchange sample agent.
 *
 * The baselines run on the same input files in the same invocation, interleaved with these cases:
 * the `zstd` and `gzip` command-line tools (single-threaded, their default), `restic backup
 * --stdin` and the real bacula-fd (bench/baselines/). A baseline that cannot run here is a row
 * that says why, never a missing row.
 *
 * This module also holds what the other agentfd suites share: the workspace (plugin directory,
 * keys, configuration files) and runAgentfd(), the child process with its RSS sampler.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { descendants } from './fd-io.mjs';
import { restoreCase } from './restore.mjs';

export const CODECS = ['none', 'gzip:6', 'zstd:1', 'zstd:3'];
const LIB_EXT = process.platform === 'darwin' ? '.dylib' : '.so';

// ---------------------------------------------------------------------------------------------
// Peak RSS of a process tree

/**
 * The resident memory of a process in bytes, or null once it is gone: its Pss (proportional set
 * size: a page shared by n processes counts 1/n in each), so that the shared-memory region the
 * daemon and the agent host both map counts once in the sum; VmRSS where smaps_rollup is missing.
 */
function vmRss(pid) {
  try {
    const pss = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    if (pss) return Number(pss[1]) * 1024;
  } catch {
    // no smaps_rollup (or the process is gone): try status
  }
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return match ? Number(match[1]) * 1024 : 0; // no VmRSS line: a zombie, nothing resident
  } catch {
    return null;
  }
}

/**
 * Samples the summed VmRSS of `rootPid` and all its descendants every `intervalMs` and keeps the
 * maximum. Threads (compression workers) are in their process's VmRSS. New descendants are looked
 * for every fifth sample: the agent host lives for the whole job, and scanning all of /proc every
 * 20 ms would take CPU from the job on a 2-core machine. Memory is counted as Pss (see vmRss), so
 * the shared-memory region both the daemon and the host map counts once.
 */
export function sampleTreeRss(rootPid, intervalMs = 20) {
  const tree = new Set([rootPid]);
  let peak = 0;
  let tick = 0;
  const discover = () => {
    for (const pid of descendants(rootPid)) tree.add(pid);
  };
  const sample = () => {
    if (tick++ % 5 === 0) discover();
    let sum = 0;
    for (const pid of tree) {
      const rss = vmRss(pid);
      if (rss === null && pid !== rootPid) tree.delete(pid);
      sum += rss ?? 0;
    }
    peak = Math.max(peak, sum);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    /** Stops sampling; the peak in bytes. */
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/**
 * Runs `command args` with its stdout going to `stdout` ('pipe' or a file descriptor), timing it
 * from spawn to exit and sampling its tree's RSS. Resolves { status, stdout, stderr, seconds, peakRss }.
 */
export function timedChild(command, args, { stdout = 'pipe', env = process.env, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['ignore', stdout, 'pipe'], env, cwd });
    const sampler = child.pid ? sampleTreeRss(child.pid) : null;
    const out = [];
    const err = [];
    child.stdout?.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    child.on('error', (error) => {
      sampler?.stop();
      reject(error);
    });
    child.on('close', (status, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      resolve({ status, signal, seconds, peakRss: sampler?.stop() ?? 0, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// agentfd through its CLI

/**
 * `node bin/agentfd.js <args> --json` in a child process. Resolves the parsed JSON with the
 * timing; rejects (with agentfd's message) unless the command reports status "ok".
 */
export async function runAgentfd(root, args) {
  // AGENTFD_CONFIG from the user's shell must not pick the configuration.
  const env = { ...process.env, AGENTFD_CONFIG: '' };
  const result = await timedChild(process.execPath, [path.join(root, 'bin', 'agentfd.js'), ...args, '--json'], { env });
  let json;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    throw new Error(`agentfd ${args[0]} printed no JSON (${result.signal ?? `exit ${result.status}`}): ${result.stderr.trim() || result.stdout.trim()}`);
  }
  if (json.status !== 'ok' || result.status !== 0) {
    const why = json.message ?? (json.errors?.length ? json.errors.join('; ') : JSON.stringify(json));
    throw new Error(`agentfd ${args[0]}: ${json.jobStatus ?? json.status}: ${why}`);
  }
  return { json, seconds: result.seconds, peakRss: result.peakRss };
}

/**
 * What every agentfd suite shares: a plugin directory holding copies of the agents the bench uses
 * (not the whole build: every library in plugin_dir is loaded at each start), an X25519 key pair,
 * and job configurations, each with a data directory of its own.
 */
export async function agentfdWorkspace({ root, scratch }) {
  const release = path.join(root, 'binding', 'build', 'Release', 'agents');
  const dir = path.join(scratch, 'agentfd');
  const pluginDir = path.join(dir, 'plugins');
  mkdirSync(pluginDir, { recursive: true });
  chmodSync(pluginDir, 0o755);
  const agents = {};
  for (const [name, lib] of [['MicrosoftExchange', 'exchange'], ['SyntheticFiles', 'synthetic']]) {
    const built = path.join(release, lib + LIB_EXT);
    agents[name] = existsSync(built) ? { built } : { missing: `${path.relative(root, built)} is not built (npm run build:native)` };
    if (existsSync(built)) {
      copyFileSync(built, path.join(pluginDir, lib + LIB_EXT));
      chmodSync(path.join(pluginDir, lib + LIB_EXT), 0o755);
    }
  }
  if (agents.MicrosoftExchange.missing) throw new Error(agents.MicrosoftExchange.missing);
  const { json: keys } = await runAgentfd(root, ['keys', 'generate', '--out', path.join(dir, 'keys'), '--name', 'bench']);

  return {
    root,
    agents,
    /** The arguments a restore needs to open a job of this workspace. */
    keyArgs: (encrypted) => (encrypted ? ['--key', keys.privateFile] : []),
    /**
     * Writes the configuration of one job, named "bench", in its own directory; its data lives in
     * <dir>/state (wiped by reset()). Returns { config, dir, reset }.
     */
    job(slug, { agent, compression, encrypted = false, isolation = 'process', options }) {
      const jobDir = path.join(dir, 'jobs', slug);
      mkdirSync(jobDir, { recursive: true });
      const state = path.join(jobDir, 'state');
      const config = path.join(jobDir, 'agentfd.toml');
      const toml = (value) => JSON.stringify(value);
      const inline = Object.entries(options).map(([k, v]) => `${k} = ${toml(v)}`).join(', ');
      writeFileSync(config, [
        `plugin_dir = ${toml(pluginDir)}`,
        `data_dir = ${toml(state)}`,
        `isolation = "${isolation}"`,
        '',
        '[jobs.bench]',
        `agent = "${agent}"`,
        `compression = "${compression}"`,
        ...(encrypted ? [`encrypt_to = [${toml(keys.publicFile)}]`] : []),
        `options = { ${inline} }`,
        '',
      ].join('\n'));
      return { config, dir: jobDir, reset: () => rmSync(state, { recursive: true, force: true }) };
    },
  };
}

/**
 * One full backup of job "bench" of `job` (a fresh data directory each time, so no run reads a
 * catalog or volumes another left). Checks that every input byte was read.
 */
export async function backupOnce(ws, job, expectedBytes) {
  job.reset();
  const { json, seconds, peakRss } = await runAgentfd(ws.root, ['backup', '--config', job.config, '--job', 'bench']);
  if (expectedBytes !== undefined && json.bytes !== expectedBytes) {
    throw new Error(`backup read ${json.bytes} bytes, the input has ${expectedBytes}`);
  }
  // jobSeconds: the job's own clock (no process start, no module loading), shown beside the wall time.
  return { bytes: json.bytes, files: json.files, seconds, jobSeconds: json.seconds, storedBytes: json.storedBytes, peakRss, jobId: json.jobId };
}

export const settingName = (codec, encrypted) => `${codec}${encrypted ? ' + encryption' : ''}`;
export const backupId = (codec, encrypted, input) => `backup/${codec}/${encrypted ? 'enc' : 'plain'}/${input}`;

// ---------------------------------------------------------------------------------------------
// Baselines

/** "<tool> <version>" from `<tool> --version`, or null when the tool is not installed. */
function toolVersion(tool) {
  const probe = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  if (probe.error) return null;
  const text = `${probe.stdout}${probe.stderr}`;
  return `${tool} ${/v?(\d+\.\d+(\.\d+)?)/.exec(text)?.[1] ?? text.split('\n')[0].trim()}`;
}

/**
 * `<tool> -<level> -c file > out`: the compressor alone, single-threaded as both tools are by
 * default, writing to a file (not fsynced: its time is compression, not the disk). Variables
 * that would change the tools' defaults (ZSTD_NBTHREADS, ZSTD_CLEVEL, GZIP) are removed.
 */
function toolCase({ tool, level, input, scratch, version }) {
  const command = `${tool} -${level}`;
  return {
    id: `tool/${tool}-${level}/${input.name}`,
    suite: 'baseline',
    name: `\`${command} -c\``,
    input,
    baselineOf: true,
    run: async () => {
      if (!version) return { skipped: `${tool} is not installed (apt-get install ${tool})` };
      const out = path.join(scratch, `${tool}-${level}.out`);
      const fd = openSync(out, 'w');
      try {
        const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['ZSTD_NBTHREADS', 'ZSTD_CLEVEL', 'GZIP'].includes(k)));
        const result = await timedChild(tool, [`-${level}`, '-c', input.file], { stdout: fd, env });
        if (result.status !== 0) throw new Error(`${command} failed (${result.signal ?? `exit ${result.status}`}): ${result.stderr.trim()}`);
        return { bytes: input.bytes, seconds: result.seconds, storedBytes: fstatSync(fd).size, peakRss: result.peakRss };
      } finally {
        closeSync(fd);
        rmSync(out, { force: true });
      }
    },
  };
}

/** Imports a baseline module, or returns the reason it cannot (a row says "skipped: ..."). */
async function baselineModule(root, file) {
  const full = path.join(root, 'bench', 'baselines', file);
  if (!existsSync(full)) return { skipped: `baseline module missing (bench/baselines/${file})` };
  return { module: await import(pathToFileURL(full).href) };
}

/** `restic backup --stdin` of the input into a fresh local repository (always encrypted). */
function resticCase({ resticModule, compression, input, scratch }) {
  return {
    id: `restic/${compression}/${input.name}`,
    suite: 'baseline',
    name: `restic backup --stdin, --compression ${compression}`,
    input,
    baselineOf: true,
    run: async () => {
      if (resticModule.skipped) return { skipped: resticModule.skipped };
      const result = await resticModule.module.resticBaseline({ file: input.file, scratch, compression });
      if (result.skipped) return result;
      return { bytes: result.bytes, seconds: result.seconds, storedBytes: result.storedBytes, version: `restic ${result.version}` };
    },
  };
}

/** The real bacula-fd backing up the input file through a Director and Storage daemon of a lab. */
function baculaCase({ lab, gzip, input }) {
  return {
    id: `bacula/${gzip ? 'gzip6' : 'none'}/${input.name}`,
    suite: 'baseline',
    name: `bacula-fd, ${gzip ? 'GZIP6' : 'no compression'}`,
    input,
    baselineOf: true,
    run: async () => {
      const started = await lab.get();
      if (started.skipped) return { skipped: started.skipped };
      if (started.failed) throw new Error(started.failed);
      const result = await started.lab.backup(input.file, { gzip });
      // seconds: the data transfer (from the daemons' I/O counters), without the Director's
      // scheduling; the note shows the job's wall time and the report's own figure beside it.
      return { bytes: result.bytes, seconds: result.seconds, storedBytes: result.storedBytes, reportElapsed: result.reportElapsed, wallSeconds: result.wallSeconds, version: started.lab.version };
    },
  };
}

/**
 * Starts the bacula lab at its first use (not at all when every bacula case is filtered out), once
 * per invocation; close() stops it if it was started.
 */
function lazyBaculaLab({ root, scratch }) {
  let pending = null;
  return {
    get() {
      pending ??= (async () => {
        const imported = await baselineModule(root, 'bacula.mjs');
        if (imported.skipped) return imported;
        try {
          const lab = await imported.module.startBaculaLab({ scratch });
          return lab.skipped ? { skipped: lab.skipped } : { lab };
        } catch (error) {
          return { failed: `the bacula lab did not start: ${error.message}` };
        }
      })();
      return pending;
    },
    async close() {
      const started = await pending;
      if (started?.lab) await started.lab.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The suite

/**
 * Says once per baseline, in one line, whether it runs here: "installed (version)", "skipped
 * (why)" or "failed (why)". Wraps a baseline case's run to find out at its first run.
 */
export function baselineAnnouncer(log) {
  // "baseline restic", or a case's own words ("serve suite: agentfd serve").
  const label = (what, testCase) => (testCase.baselineOf && !what.includes(':') ? `baseline ${what}` : what);
  const said = new Set();
  const say = (name, status) => {
    if (said.has(name)) return;
    said.add(name);
    log(`${name}: ${status}`);
  };
  return (what, testCase, version) => ({
    ...testCase,
    run: async () => {
      try {
        const sample = await testCase.run();
        say(label(what, testCase), sample.skipped ? `skipped (${sample.skipped})` : `installed (${sample.version ?? version ?? 'version unknown'})`);
        return sample;
      } catch (error) {
        say(label(what, testCase), `failed (${error.message.split('\n')[0]})`);
        throw error;
      }
    },
  });
}

/**
 * The backup cases (each followed by the restore of what it made), and the baselines on the same
 * inputs. Returns { cases, versions, lab, close }.
 */
export async function pipelineCases({ root, scratch, ws, inputs, log = (line) => process.stderr.write(`${line}\n`) }) {
  const cases = [];
  const backupCase = ({ codec, encrypted, input, isolation = 'process' }) => {
    const inProcess = isolation === 'none';
    const id = backupId(codec, encrypted, input.name) + (inProcess ? '/in-process' : '');
    const job = ws.job(id.replaceAll('/', '-').replace(':', ''), {
      agent: 'MicrosoftExchange', compression: codec, encrypted, isolation, options: { store: input.store, truncate_logs: 'no' },
    });
    const made = { jobId: null };
    return {
      backup: {
        id,
        suite: 'backup',
        name: settingName(codec, encrypted) + (inProcess ? ', in-process (isolation = none)' : ''),
        input,
        // Its baseline: what does the same work, or the goal's yardstick where nothing else does.
        baseline: inProcess ? null
          : codec === 'none' ? (encrypted ? `restic/off/${input.name}` : `bacula/none/${input.name}`)
          : codec === 'gzip:6' ? `tool/gzip-6/${input.name}`
          : `tool/zstd-${codec.slice(5)}/${input.name}`,
        run: async () => {
          made.jobId = null;
          const sample = await backupOnce(ws, job, input.bytes);
          made.jobId = sample.jobId;
          return sample;
        },
      },
      job,
      made,
    };
  };

  for (const input of [inputs.random, inputs.text]) {
    for (const codec of CODECS) {
      for (const encrypted of [false, true]) {
        const { backup, job, made } = backupCase({ codec, encrypted, input });
        cases.push(backup, restoreCase({ ws, job, made, backup, encrypted, input, scratch }));
      }
    }
  }
  // The cost of isolation in a whole job (the bridge suite shows it on a discarding sink).
  const inProcess = backupCase({ codec: 'none', encrypted: false, input: inputs.random, isolation: 'none' });
  cases.push({ ...inProcess.backup, run: async () => { try { return await inProcess.backup.run(); } finally { inProcess.job.reset(); } } });

  const versions = { zstd: toolVersion('zstd'), gzip: toolVersion('gzip') };
  const resticModule = await baselineModule(root, 'restic.mjs');
  const lab = lazyBaculaLab({ root, scratch });
  const announced = baselineAnnouncer(log);
  for (const input of [inputs.random, inputs.text]) {
    cases.push(announced('zstd', toolCase({ tool: 'zstd', level: 1, input, scratch, version: versions.zstd }), versions.zstd));
    cases.push(announced('zstd', toolCase({ tool: 'zstd', level: 3, input, scratch, version: versions.zstd }), versions.zstd));
    cases.push(announced('gzip', toolCase({ tool: 'gzip', level: 6, input, scratch, version: versions.gzip }), versions.gzip));
    cases.push(announced('restic', resticCase({ resticModule, compression: 'auto', input, scratch })));
    cases.push(announced('restic', resticCase({ resticModule, compression: 'off', input, scratch })));
    cases.push(announced('bacula-fd', baculaCase({ lab, gzip: false, input })));
    cases.push(announced('bacula-fd', baculaCase({ lab, gzip: true, input })));
  }
  // The lab is shared with the serve suite (bench/serve.mjs): one Director and SD per invocation.
  return { cases, versions, lab, close: () => lab.close() };
}
