#!/usr/bin/env node
/**
 * agentfd benchmarks: `npm run bench` (quick) or `npm run bench -- --full`. Never part of
 * `npm test`. One invocation measures everything the performance goals talk about, with every
 * baseline on the same bytes in the same run:
 *
 * - bridge (bench/bridge.mjs): a native agent streaming to a discarding sink, vs the C harness;
 * - backup (bench/pipeline.mjs): whole CLI jobs per setting on random and text input, beside
 *   `zstd`/`gzip` on the command line, `restic backup --stdin` and the real bacula-fd;
 * - restore (bench/restore.mjs): each of those backups restored, ratio restore / backup;
 * - small files (bench/small-files.mjs): files per second and peak RSS;
 * - memory (bench/memory.mjs): peak RSS for a stream and one four times as long;
 * - serve (bench/serve.mjs): `agentfd serve` and the real bacula-fd as clients of the same Bacula
 *   Director and Storage Daemon, job by job on the same inputs, against the issue's goals.
 *
 * Cases are interleaved run by run (a noisy moment on this shared machine hurts all of them
 * alike) and the table reports medians. A final "Goals" table turns medians into met / NOT met.
 * The markdown goes to stdout and bench/results/<iso>-<mode>.md; progress goes to stderr.
 *
 * Development flags: --runs N, --size MiB (the random and text inputs; the large stream is 4x,
 * the serve suite's sparse file 2x), --files N (small files), --serve-files N (the serve suite's
 * small files), --only a,b (only cases whose id contains one of these; a restore needs its backup,
 * a ratio its baseline).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bridgeCases } from './bridge.mjs';
import { prepareInputs } from './inputs.mjs';
import { memoryCases } from './memory.mjs';
import { CODECS, agentfdWorkspace, backupId, baselineAnnouncer, pipelineCases, settingName } from './pipeline.mjs';
import { SERVE_PAIRS, baculaFdId, serveCases, serveId } from './serve.mjs';
import { smallFilesCases } from './small-files.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 ** 2;
/**
 * In full mode, a case whose runs take longer than this (median) stops after 3 runs: the gzip
 * cases, bacula's GZIP6, the million files and the 4 GiB stream would otherwise take most of the
 * hour, and runs that long are steadier than short ones anyway.
 */
const SLOW_SECONDS = 20;

const USAGE = `npm run bench [-- OPTIONS]   (or: node bench/run.mjs [OPTIONS])
  --full        1 GiB inputs, a 4 GiB stream, 1,000,000 small files, 5 runs (default: quick)
  --runs N      runs of each case
  --size MiB    the random and text inputs (the large stream is 4x)
  --files N     small files
  --serve-files N  the serve suite's small files (default 10,000; --full 20,000)
  --only a,b    only cases whose id contains one of these (e.g. --only bacula, --only serve; a
                restore needs its backup, a ratio its baseline)
  --help        this text
Environment: BENCH_BACULA_PORTS=P puts the Bacula lab on ports P..P+3 (Director, bacula-fd, SD,
agentfd serve; default 9191), e.g. beside the lab tests. BENCH_SERVE_SETTINGS="k = v; ..." adds
lines to the serve daemon's [serve] table (e.g. "gzip_like_bacula_fd = true"). BENCH_SERVE_NODE_FLAGS:
Node flags for the serve daemon (e.g. "--cpu-prof --cpu-prof-dir=DIR" to profile it).`;

function parseArgs(argv) {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const known = new Set(['--full', '--runs', '--size', '--files', '--serve-files', '--only']);
  const unknown = argv.filter((arg, i) => arg.startsWith('-') && !known.has(arg) && !known.has(argv[i - 1]));
  if (unknown.length) {
    process.stderr.write(`bench: unknown option ${unknown.join(', ')}\n${USAGE}\n`);
    process.exit(2);
  }
  const value = (flag) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const full = argv.includes('--full');
  const settings = full
    ? { mode: 'full', runs: 5, bytes: 1024 * MiB, smallFiles: 1_000_000, serveFiles: 20_000 }
    : { mode: 'quick', runs: 3, bytes: 256 * MiB, smallFiles: 200_000, serveFiles: 10_000 };
  if (value('--runs')) settings.runs = Number(value('--runs'));
  if (value('--size')) settings.bytes = Number(value('--size')) * MiB;
  if (value('--files')) settings.smallFiles = Number(value('--files'));
  if (value('--serve-files')) settings.serveFiles = Number(value('--serve-files'));
  settings.bigBytes = 4 * settings.bytes;
  settings.sparseBytes = 2 * settings.bytes;
  settings.only = value('--only')?.split(',') ?? null;
  return settings;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const size = (bytes) => (bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : `${(bytes / MiB).toFixed(bytes % MiB ? 1 : 0)} MiB`);
const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;
const count = (n) => Math.round(n).toLocaleString('en-US');
const throughput = (value, unit) => (unit === 'files/s' ? `${count(value)} files/s` : `${value.toFixed(0)} MB/s`);

/** The medians of a case's samples: throughput (MB/s, or files/s), stored bytes, peak RSS. */
function medians(state) {
  const { samples, testCase } = state;
  if (!samples.length) return null;
  const perSecond = (s) => (testCase.unit === 'files/s' ? s.files / s.seconds : s.bytes / s.seconds / 1e6);
  const of = (key) => (samples.every((s) => s[key] > 0) ? median(samples.map((s) => s[key])) : null);
  // The job's own clock (from its start to its commit, without process start and module loading):
  // what the bacula-fd figures, timed from the data transfer alone, are compared with.
  const perJobSecond = (s) => (testCase.unit === 'files/s' ? s.files : s.bytes / 1e6) / s.jobSeconds;
  const jobThroughput = samples.every((s) => s.jobSeconds > 0) ? median(samples.map(perJobSecond)) : null;
  return { throughput: median(samples.map(perSecond)), jobThroughput, storedBytes: of('storedBytes'), peakRss: of('peakRss'), seconds: median(samples.map((s) => s.seconds)) };
}

/** Why a case has no figure: skipped, failed, or not run (filtered out, or its backup failed). */
function absence(state, name = state?.testCase.name) {
  if (!state) return `${name}: not run (filtered out with --only)`;
  if (state.skipped) return `${name}: skipped: ${state.skipped}`;
  if (state.failed) return `${name}: FAILED: ${state.failed}`;
  return `${name}: not run`;
}

function ratioCell(states, testCase, m) {
  if (testCase.baselineOf) return 'baseline';
  if (!testCase.baseline || !m) return '—';
  const base = states.get(testCase.baseline);
  const bm = base && medians(base);
  const label = testCase.baselineLabel ?? base?.testCase.name ?? testCase.baseline;
  if (!bm) return `n/a (${absence(base, label)})`;
  const key = testCase.ratioOf ?? 'throughput';
  if (!m[key] || !bm[key]) return '—';
  return `${(m[key] / bm[key]).toFixed(2)}x ${key === 'peakRss' ? 'peak RSS of ' : ''}${label}`;
}

function row(states, state, runs) {
  const { testCase: c, samples } = state;
  const m = medians(state);
  const input = c.input.label.includes('×') ? c.input.label : `${c.input.label}, ${size(c.input.bytes)}`;
  const notes = [c.note];
  if (state.skipped) notes.unshift(`skipped: ${state.skipped}`);
  if (state.failed) notes.unshift(`FAILED: ${state.failed}`);
  if (!m && !state.skipped && !state.failed) notes.unshift(c.follows ? 'not run: its backup failed' : 'not run (interrupted)');
  if (m && samples.length < runs) notes.push(`${samples.length} of ${runs} runs`);
  if (samples.some((s) => s.verified)) notes.push('restored bytes verified (SHA-256)');
  if (m?.jobThroughput) notes.push(`job's own clock: ${throughput(m.jobThroughput, c.unit)}`);
  if (samples[0]?.reportElapsed !== undefined) {
    // A Bacula job (bacula-fd or agentfd serve): the throughput is of the FD's part alone, from its
    // I/O counters (bench/fd-io.mjs); its job's other clocks, for comparison.
    const wall = samples[0].wallSeconds === undefined ? '' : `job wall time ${median(samples.map((s) => s.wallSeconds)).toFixed(1)} s, `;
    const cpu = samples[0].cpuSeconds === undefined ? '' : `FD CPU time ${median(samples.map((s) => s.cpuSeconds)).toFixed(2)} s, `;
    notes.push(`time of the FD's part only (first byte in to last byte out); ${cpu}${wall}report's Elapsed ${median(samples.map((s) => s.reportElapsed))} s`);
  }
  if (samples[0]?.version) notes.push(samples[0].version);
  return [
    c.suite, c.name, input,
    m ? throughput(m.throughput, c.unit) : '—',
    m?.storedBytes ? `${mib(m.storedBytes)} (${((m.storedBytes / c.input.bytes) * 100).toFixed(1)}%)` : '—',
    m?.peakRss ? mib(m.peakRss) : '—',
    ratioCell(states, c, m),
    notes.filter(Boolean).join('; '),
  ];
}

const table = (header, rows) =>
  [header, header.map((h) => (/throughput|bytes|RSS|measured|baseline value|ratio|median/.test(h) ? '---:' : '---')), ...rows]
    .map((r) => `| ${r.map((cell) => String(cell).replaceAll('|', '\\|')).join(' | ')} |`)
    .join('\n');

// ---------------------------------------------------------------------------------------------
// Goals

/**
 * The goals of the issue, each a ratio of two medians (or of a median and a limit) with the
 * bound it must meet. `at` names a case and the figure of it that counts.
 */
function goalList() {
  const at = (id, metric = 'throughput') => ({ id, metric });
  const limit = (value, metric, unit) => ({ value, metric, unit });
  // Against bacula-fd, whose figure is its data transfer alone (no daemon start, no Director
  // scheduling), agentfd's figure is its job's own clock (no process start), which still includes
  // starting the agent host, the catalog and the commit's fdatasync.
  const job = (id) => at(id, 'jobThroughput');
  const goals = [
    { goal: 'zstd:3 + encryption, text: throughput >= 5x bacula-fd GZIP6 (job clock)', measured: job(backupId('zstd:3', true, 'text')), baseline: at('bacula/gzip6/text'), min: 5 },
    { goal: 'zstd:3 + encryption, text: stored bytes <= bacula-fd GZIP6', measured: at(backupId('zstd:3', true, 'text'), 'storedBytes'), baseline: at('bacula/gzip6/text', 'storedBytes'), max: 1 },
    { goal: 'none + SHA-256, isolated, random: throughput >= 3x bacula-fd uncompressed (job clock)', measured: job(backupId('none', false, 'random')), baseline: at('bacula/none/random'), min: 3 },
    { goal: 'gzip:6, text: throughput >= 1.7x bacula-fd GZIP6 (job clock)', measured: job(backupId('gzip:6', false, 'text')), baseline: at('bacula/gzip6/text'), min: 1.7 },
    { goal: 'gzip:6, random: throughput >= 1.7x bacula-fd GZIP6 (job clock)', measured: job(backupId('gzip:6', false, 'random')), baseline: at('bacula/gzip6/random'), min: 1.7 },
  ];
  for (const input of ['text', 'random']) {
    goals.push(
      { goal: `zstd:3 + encryption, ${input}: throughput >= restic --compression auto`, measured: at(backupId('zstd:3', true, input)), baseline: at(`restic/auto/${input}`), min: 1 },
      { goal: `none + encryption, ${input}: throughput >= restic --compression off`, measured: at(backupId('none', true, input)), baseline: at(`restic/off/${input}`), min: 1 },
    );
  }
  goals.push(
    { goal: 'small files: >= 50,000 files/s', measured: at('small-files'), baseline: limit(50_000, 'throughput', 'files/s'), min: 1 },
    { goal: 'small files: peak RSS <= 500 MiB', measured: at('small-files', 'peakRss'), baseline: limit(500 * MiB, 'peakRss'), max: 1 },
    { goal: 'memory, large stream: peak RSS <= 200 MiB', measured: at('memory/big', 'peakRss'), baseline: limit(200 * MiB, 'peakRss'), max: 1 },
    { goal: 'memory, large stream: peak RSS <= 1.10x the small stream', measured: at('memory/big', 'peakRss'), baseline: at('memory/small', 'peakRss'), max: 1.1 },
    { goal: 'bridge, isolated: >= 0.85x in-process (discarding sink)', measured: at('bridge/isolated'), baseline: at('bridge/in-process'), min: 0.85 },
    { goal: 'backup none, random, isolated: >= 0.85x in-process', measured: at(backupId('none', false, 'random')), baseline: at(`${backupId('none', false, 'random')}/in-process`), min: 0.85 },
  );
  for (const pair of SERVE_PAIRS) {
    goals.push({ goal: `agentfd serve, ${pair.name}: >= ${pair.goal.toFixed(1)}x bacula-fd (same lab)`, measured: at(serveId(pair.key)), baseline: at(baculaFdId(pair.key)), min: pair.goal });
  }
  for (const input of ['random', 'text']) {
    for (const codec of CODECS) {
      for (const encrypted of [false, true]) {
        const id = backupId(codec, encrypted, input);
        goals.push({ goal: `restore >= backup: ${settingName(codec, encrypted)}, ${input}`, measured: at(id.replace(/^backup/, 'restore')), baseline: at(id), min: 1 });
      }
    }
  }
  return goals;
}

function goalRow(states, g) {
  const figure = (ref) => {
    if (ref.value !== undefined) return { value: ref.value, unit: ref.unit };
    const state = states.get(ref.id);
    const m = state && medians(state);
    // A case that failed in any run is a fault to fix, not a figure to judge by.
    if (!m || !m[ref.metric] || state.failed) return { missing: absence(state, state ? `${state.testCase.name} (${state.testCase.input.label})` : ref.id) };
    return { value: m[ref.metric], unit: state.testCase.unit };
  };
  const show = (f, metric) => (metric === 'throughput' || metric === 'jobThroughput' ? throughput(f.value, f.unit) : metric === 'storedBytes' ? `${count(f.value)} B` : mib(f.value));
  const measured = figure(g.measured);
  const baseline = figure(g.baseline);
  const cells = [g.goal, measured.missing ? '—' : show(measured, g.measured.metric), baseline.missing ? '—' : show(baseline, g.baseline.metric)];
  if (measured.missing || baseline.missing) return [...cells, '—', `not measured: ${measured.missing ?? baseline.missing}`];
  const ratio = measured.value / baseline.value;
  const met = g.min !== undefined ? ratio >= g.min : ratio <= g.max;
  return [...cells, `${ratio.toFixed(2)}x`, met ? 'met' : 'NOT met'];
}

/**
 * agentfd serve against bacula-fd, pair by pair: both medians, the ratio serve / bacula-fd of
 * their throughputs (>1: serve is faster), the issue's goal and whether it is met (goalRow's rule:
 * a case that failed in any run is not judged). Empty when the suite was filtered out.
 */
function serveSection(states, settings) {
  const rows = [];
  for (const pair of SERVE_PAIRS) {
    const serve = states.get(serveId(pair.key));
    const bacula = states.get(baculaFdId(pair.key));
    const c = (serve ?? bacula)?.testCase;
    if (!c) continue;
    const [, measured, base, ratio, result] = goalRow(states, { measured: { id: serveId(pair.key), metric: 'throughput' }, baseline: { id: baculaFdId(pair.key), metric: 'throughput' }, min: pair.goal });
    const seconds = (state, key) => (state?.samples.length ? `${median(state.samples.map((s) => s[key])).toFixed(key === 'cpuSeconds' ? 2 : 1)} s` : '—');
    const pairs = Math.min(serve?.samples.length ?? 0, bacula?.samples.length ?? 0);
    // CPU per file (small files) or per MiB of input: the cost of the FD's work, steadier than its clock.
    const perUnit = (state) => {
      if (!state?.samples.length) return '—';
      const cpu = median(state.samples.map((s) => s.cpuSeconds));
      return c.unit === 'files/s' ? `${((cpu / state.samples[0].files) * 1e6).toFixed(0)} us/file` : `${((cpu / (state.samples[0].bytes / MiB)) * 1e3).toFixed(2)} ms/MiB`;
    };
    const notes = [
      `FD CPU time: serve ${seconds(serve, 'cpuSeconds')} (${perUnit(serve)}), bacula-fd ${seconds(bacula, 'cpuSeconds')} (${perUnit(bacula)})`,
      `job wall time (run to end): serve ${seconds(serve, 'wallSeconds')}, bacula-fd ${seconds(bacula, 'wallSeconds')}`,
      `${pairs} of ${settings.runs} pair${settings.runs === 1 ? '' : 's'}`,
    ];
    for (const state of [serve, bacula]) {
      if (state?.skipped || state?.failed || !state) notes.push(absence(state, state?.testCase.name ?? 'its pair'));
    }
    const input = c.input.label.includes('×') ? c.input.label : `${c.input.label}, ${size(c.input.bytes)}`;
    // goalRow's "not measured: why" is in the note already (the absence of each case).
    rows.push([pair.name, input, measured, base, ratio, `>= ${pair.goal.toFixed(1)}x`, result.startsWith('not measured') ? 'not measured' : result, notes.join('; ')]);
  }
  if (!rows.length) return [];
  const issueSizes = settings.bytes === 1024 * MiB && settings.serveFiles === 20_000;
  return [
    '## agentfd serve against bacula-fd (same Director and Storage Daemon)',
    '',
    `Each job ran with \`agentfd serve\` as the client, then with the real bacula-fd, in every run (medians of ${settings.runs} pair${settings.runs === 1 ? '' : 's'}). ` +
      "Time: the FD's part of the job, from its first input byte to its last output byte, read from its /proc/<pid>/io counters the same way for both (bench/fd-io.mjs); " +
      'ratio: serve\'s throughput over bacula-fd\'s (>1: serve is faster). ' +
      (issueSizes ? "Inputs as the issue's." : `Inputs smaller than the issue's (1 GiB, 20,000 files, 2 GiB sparse) in this ${settings.mode} run.`) +
      ' On a shared or loaded machine the figures are noisy from run to run, and an FD that waits on its peers (bacula-fd with small files) loses more to the scheduler than one that computes:' +
      ' the note gives each FD\'s CPU time over the job (user + system, its process tree), which load changes less.',
    '',
    table(['case', 'input', 'agentfd serve (median)', 'bacula-fd (median)', 'ratio serve / bacula-fd', 'goal', 'result', 'note'], rows),
    '',
  ];
}

// ---------------------------------------------------------------------------------------------
// Running

function describeSample(testCase, sample) {
  const parts = [testCase.unit === 'files/s' ? `${count(sample.files / sample.seconds)} files/s` : `${(sample.bytes / sample.seconds / 1e6).toFixed(0)} MB/s`];
  if (sample.storedBytes) parts.push(`stored ${mib(sample.storedBytes)}`);
  if (sample.peakRss) parts.push(`peak RSS ${mib(sample.peakRss)}`);
  parts.push(`${sample.seconds.toFixed(1)} s`);
  return parts.join(', ');
}

/**
 * Runs every case `runs` times, interleaved: run 1 of all cases, then run 2 of all, and so on. A
 * case that is skipped or fails is not run again; a case that `follows` another (a restore, its
 * backup) runs only in a run where that one did.
 */
async function runAll(cases, settings, log, interrupted) {
  const states = new Map(cases.map((testCase) => [testCase.id, { testCase, samples: [], skipped: null, failed: null }]));
  for (let run = 1; run <= settings.runs && !interrupted(); run++) {
    const ranNow = new Set();
    for (const state of states.values()) {
      const c = state.testCase;
      if (interrupted()) break;
      if (state.skipped || state.failed) continue;
      if (c.follows && !ranNow.has(c.follows)) continue;
      const m = medians(state);
      if (settings.mode === 'full' && state.samples.length >= 3 && m.seconds > SLOW_SECONDS) continue;
      const label = `[run ${run}/${settings.runs}] ${c.suite} / ${c.name} / ${c.input.label}`;
      try {
        const sample = await c.run();
        if (sample.skipped) {
          state.skipped = sample.skipped;
          log(`${label}: skipped: ${sample.skipped}`);
          continue;
        }
        state.samples.push(sample);
        ranNow.add(c.id);
        log(`${label}: ${describeSample(c, sample)}`);
      } catch (error) {
        state.failed = error.message.split('\n')[0];
        // A baseline's failure is one line (its own line says why: see bench/pipeline.mjs); agentfd's
        // keep their detail: the stack, or for a case whose errors say all (messageOnly) the
        // message's own lines (the daemons' logs), never a stack.
        log(`${label}: FAILED: ${c.baselineOf ? state.failed : c.messageOnly ? error.message.split('\n').slice(0, 60).join('\n') : error.stack ?? error.message}`);
      }
    }
  }
  return states;
}

function machine() {
  const cpus = os.cpus();
  return `Node ${process.version}, ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}`;
}

function baculaVersion() {
  for (const bin of ['bacula-fd', '/usr/sbin/bacula-fd']) {
    const probe = spawnSync(bin, ['-?'], { encoding: 'utf8' });
    if (probe.error) continue;
    return /Version:\s*(\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1] ?? 'installed';
  }
  return 'not installed';
}

function report({ settings, states, versions, started }) {
  const rows = [...states.values()].map((state) => row(states, state, settings.runs));
  const goals = goalList().map((g) => goalRow(states, g));
  const minutes = (Date.now() - started) / 60_000;
  const header = [
    `# agentfd benchmarks: ${settings.mode} (medians of ${settings.runs} run${settings.runs === 1 ? '' : 's'})`,
    '',
    `- ${new Date(started).toISOString()}; ${machine()}`,
    `- Inputs: random and text (log lines; see the \`gzip -6\` rows for their ratio) of ${size(settings.bytes)} each; large stream ${size(settings.bigBytes)} random; small files ${count(settings.smallFiles)} × 1 KiB`,
    `- serve suite (agentfd serve beside bacula-fd in the Bacula lab): random ${size(settings.bytes)} (uncompressed, GZIP6, LZO); ${count(settings.serveFiles)} small files × 1-8 KiB (backup, restore); sparse ${size(settings.sparseBytes)}, \`sparse = yes\``,
    `- Tools: ${versions.zstd ?? 'zstd not installed'}, ${versions.gzip ?? 'gzip not installed'}, bacula-fd ${versions.bacula} (restic: see its rows)`,
    '- agentfd cases: `node bin/agentfd.js backup|restore --json` in a child process, fresh data directory per run, volume on the local disk (fdatasync), agent isolated unless stated, encryption with an X25519 key, SHA-256 always',
    "- Throughput: input (plaintext) bytes / wall time around the whole child process (the note gives the job's own clock, without process start); MB = 10^6 bytes. Peak RSS: the largest sum of Pss (shared pages counted once) over the child and its descendants, sampled every 20 ms. Goals against bacula-fd use agentfd's job clock, since bacula-fd's figure is its data transfer alone",
    ...(settings.mode === 'full' ? [`- Cases whose runs take over ${SLOW_SECONDS} s (median) stop after 3 runs; their note says so`] : []),
    `- Took ${minutes.toFixed(1)} minutes`,
    '',
  ].join('\n');
  return [
    header,
    table(['suite', 'case', 'input', 'throughput (median)', 'stored bytes (median)', 'peak RSS', 'ratio vs baseline', 'note'], rows),
    '',
    ...serveSection(states, settings),
    '## Goals',
    '',
    table(['goal', 'measured', 'baseline value', 'ratio', 'result'], goals),
    '',
  ].join('\n');
}

async function main() {
  const settings = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const log = (line) => process.stderr.write(`${line}\n`);
  // Ctrl-C: finish the current case, then clean up and report what was measured.
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    log('interrupted: stopping after the current case (Ctrl-C again to abort)');
    process.once('SIGINT', () => process.exit(130));
  });

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'agentfd-bench-'));
  const closers = [];
  let text;
  let failed = false;
  try {
    log(`${settings.mode}: ${settings.runs} runs, inputs ${size(settings.bytes)} (large stream ${size(settings.bigBytes)}), scratch ${scratch}`);
    const inputs = prepareInputs({ scratch, bytes: settings.bytes, bigBytes: settings.bigBytes, log });
    const ws = await agentfdWorkspace({ root: ROOT, scratch });
    const pipeline = await pipelineCases({ root: ROOT, scratch, ws, inputs, log });
    closers.push(pipeline.close);
    let cases = [
      ...(await bridgeCases({ input: inputs.big, scratch, root: ROOT })),
      ...pipeline.cases,
      ...smallFilesCases({ ws, files: settings.smallFiles }),
      ...memoryCases({ ws, small: inputs.random, big: inputs.big }),
      ...serveCases({ lab: pipeline.lab, inputs, files: settings.serveFiles, sparseBytes: settings.sparseBytes, announce: baselineAnnouncer(log), log }),
    ];
    if (settings.only) cases = cases.filter((c) => settings.only.some((part) => c.id.includes(part)));
    const states = await runAll(cases, settings, log, () => interrupted);
    failed = [...states.values()].some((s) => s.failed);
    text = report({ settings, states, versions: { ...pipeline.versions, bacula: baculaVersion() }, started });
  } finally {
    for (const close of closers) {
      await close().catch((error) => log(`cleanup: ${error.message}`));
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  process.stdout.write(text);
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  const file = path.join(ROOT, 'bench', 'results', `${new Date(started).toISOString().replace(/[:.]/g, '-')}-${settings.mode}.md`);
  writeFileSync(file, text);
  log(`written to ${path.relative(ROOT, file)}`);
  if (failed) process.exitCode = 1;
}

await main();
