/** `agentfd restore --job-id ID --to DIR`: restore a job through the agents that saved it, or raw. */
import type { Command } from 'commander';
import { Catalog } from '../../catalog/catalog.js';
import { AgentfdError } from '../../errors.js';
import { jobAt, planRestore } from '../../jobs/chain.js';
import { runRestore } from '../../jobs/restore.js';
import { configFromOptions, registryFor, type ConfigOptions } from '../context.js';
import { humanBytes, startProgress } from '../progress.js';
import { printJson, reportFailure, table, type CommandIo } from '../output.js';
import { collect, secretsFrom, withSecretOptions, type SecretOptions } from '../secrets.js';

interface RestoreOptions extends ConfigOptions, SecretOptions {
  jobId?: string;
  job?: string;
  at?: string;
  dryRun?: boolean;
  to: string;
  agent?: string;
  raw?: boolean;
  include?: string[];
  option?: string[];
  allowUntrustedSigner?: boolean;
  json?: boolean;
}

/** --option KEY=VALUE pairs (repeatable) as an options object. */
export function parseOptionPairs(pairs: string[] | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new AgentfdError('E_USAGE', `--option ${pair} is not KEY=VALUE (e.g. --option "command=bpipe:/@bpipe@/dump.sql:cat:cat >/tmp/dump.sql")`);
    result[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return result;
}

export function parseJobId(text: string): number {
  const id = Number(text);
  if (!Number.isInteger(id) || id <= 0) throw new AgentfdError('E_USAGE', `--job-id ${text} is not a job id (a positive whole number; agentfd jobs lists them)`);
  return id;
}

/** --job-id ID, or --job NAME with --at TIME (the newest committed job at or before it; now by default). */
function pickJob(catalog: Catalog, options: RestoreOptions): number {
  if (options.jobId !== undefined) {
    if (options.job !== undefined || options.at !== undefined) throw new AgentfdError('E_USAGE', '--job-id excludes --job and --at');
    return parseJobId(options.jobId);
  }
  if (options.job === undefined) throw new AgentfdError('E_USAGE', 'say what to restore: --job-id ID, or --job NAME [--at TIME]');
  const at = options.at === undefined ? new Date() : new Date(options.at);
  if (Number.isNaN(at.getTime())) throw new AgentfdError('E_USAGE', `--at ${options.at} is not a time (use ISO 8601, e.g. 2026-11-26T12:00:00Z)`);
  return jobAt(catalog, options.job, at).id;
}

/** --dry-run: the chain a restore would use, without restoring anything. */
function dryRun(io: CommandIo, catalog: Catalog, jobId: number, json: boolean): number {
  const plan = planRestore(catalog, jobId);
  const chain = plan.chain.map((j) => ({ jobId: j.id, name: j.name, level: j.level, started: new Date(Number(BigInt(j.started_ns) / 1_000_000n)).toISOString(), files: plan.select.get(j.id)!.size }));
  if (json) printJson(io, { status: 'ok', jobId, dryRun: true, chain, paths: plan.paths, deleted: plan.deleted.length, missing: plan.missing });
  else {
    io.out(`restoring job ${jobId} would use ${chain.length} job(s), full first, for ${plan.paths} paths${plan.deleted.length ? ` (${plan.deleted.length} deleted on the way stay deleted)` : ''}:`);
    io.out(table([['JOB', 'LEVEL', 'STARTED', 'FILES FROM IT'], ...chain.map((c) => [String(c.jobId), c.level, c.started, String(c.files)])]));
    for (const m of plan.missing) io.err(`warning: ${m} is marked unchanged but no job of the chain saved it`);
  }
  return 0;
}

export async function restoreCommand(io: CommandIo, options: RestoreOptions): Promise<number> {
  const json = Boolean(options.json);
  try {
    const config = configFromOptions(options);
    const catalog = Catalog.open(config.dataDir);
    let jobId: number;
    try {
      jobId = pickJob(catalog, options);
    } catch (error) {
      catalog.close();
      throw error;
    }
    if (options.dryRun) {
      try {
        return dryRun(io, catalog, jobId, Boolean(json));
      } finally {
        catalog.close();
      }
    }
    const secrets = secretsFrom(options);
    const registry = await registryFor(config);
    const total = catalog.job(jobId)?.bytes ?? null;
    const progress = startProgress(!json, `restore ${jobId}`, total);
    try {
      const report = await runRestore({
        config, catalog, registry, jobId, to: options.to, agent: options.agent, raw: options.raw, include: options.include, optionOverrides: parseOptionPairs(options.option), secrets,
        allowUntrustedSigner: Boolean(options.allowUntrustedSigner),
        onProgress: (p) => progress.update(p.bytes, p.files),
        onLog: (level, message) => {
          if (!json && (level === 'warning' || level === 'error')) io.err(`${level}: ${message}`);
        },
      });
      progress.stop();
      const ok = report.status === 'restored';
      if (json) printJson(io, { ...report, status: ok ? 'ok' : 'failed' });
      else {
        io.out(`job ${jobId}: ${report.files} files (${humanBytes(report.bytes)}) restored to ${report.to}${report.mode === 'raw' ? ' as plain files' : ` through ${report.agents.join(', ')}`}; signature ${report.signature}`);
        for (const e of report.errors) io.err(`error: ${e}`);
      }
      return ok ? 0 : 1;
    } finally {
      progress.stop();
      catalog.close();
    }
  } catch (error) {
    return reportFailure(io, json, error);
  }
}

export function registerRestoreCommand(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  withSecretOptions(program.command('restore'))
    .description('restore a job: each file through the agent recorded on the volume, another agent, or raw')
    .option('--job-id <id>', 'the job to restore, with the jobs it builds on (agentfd jobs lists them)')
    .option('--job <name>', 'restore the named job as it was at --at (default: its latest backup)')
    .option('--at <time>', 'with --job: the point in time (ISO 8601); the newest backup at or before it is used')
    .option('--dry-run', 'show the chain of jobs the restore would use, and restore nothing')
    .requiredOption('--to <dir>', 'the directory to restore into (nothing is written outside it)')
    .option('--agent <name>', 'route every file to this agent instead of the one that saved it')
    .option('--raw', 'write every stream as a plain file under --to (an MSSQL stream becomes a .bak)')
    .option('--include <glob>', 'restore only files whose path matches (repeatable)', collect)
    .option('--option <key=value>', "replace an agent option recorded with the job (repeatable); for a Bacula plugin, command=... replaces the command saved on the volume, as the restore's plugin string", collect)
    .option('--allow-untrusted-signer', 'restore a job that scan found signed by a key not trusted (reported as signature untrusted)')
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--plugin-dir <dir>', 'override plugin_dir of the configuration')
    .option('--json', 'print one JSON object')
    .action(async (options: RestoreOptions) => setExit(await restoreCommand(io, options)));
}
