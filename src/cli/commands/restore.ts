/** `agentfd restore --job-id ID --to DIR`: restore a job through the agents that saved it, or raw. */
import type { Command } from 'commander';
import { Catalog } from '../../catalog/catalog.js';
import { AgentfdError } from '../../errors.js';
import { runRestore } from '../../jobs/restore.js';
import { configFromOptions, registryFor, type ConfigOptions } from '../context.js';
import { humanBytes, startProgress } from '../progress.js';
import { printJson, reportFailure, type CommandIo } from '../output.js';
import { collect, secretsFrom, withSecretOptions, type SecretOptions } from '../secrets.js';

interface RestoreOptions extends ConfigOptions, SecretOptions {
  jobId: string;
  to: string;
  agent?: string;
  raw?: boolean;
  include?: string[];
  json?: boolean;
}

export function parseJobId(text: string): number {
  const id = Number(text);
  if (!Number.isInteger(id) || id <= 0) throw new AgentfdError('E_USAGE', `--job-id ${text} is not a job id (a positive whole number; agentfd jobs lists them)`);
  return id;
}

export async function restoreCommand(io: CommandIo, options: RestoreOptions): Promise<number> {
  const json = Boolean(options.json);
  try {
    const jobId = parseJobId(options.jobId);
    const config = configFromOptions(options);
    const secrets = secretsFrom(options);
    const registry = await registryFor(config);
    const catalog = Catalog.open(config.dataDir);
    const total = catalog.job(jobId)?.bytes ?? null;
    const progress = startProgress(!json, `restore ${jobId}`, total);
    try {
      const report = await runRestore({
        config, catalog, registry, jobId, to: options.to, agent: options.agent, raw: options.raw, include: options.include, secrets,
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
    .requiredOption('--job-id <id>', 'the job to restore (agentfd jobs lists them)')
    .requiredOption('--to <dir>', 'the directory to restore into (nothing is written outside it)')
    .option('--agent <name>', 'route every file to this agent instead of the one that saved it')
    .option('--raw', 'write every stream as a plain file under --to (an MSSQL stream becomes a .bak)')
    .option('--include <glob>', 'restore only files whose path matches (repeatable)', collect)
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--plugin-dir <dir>', 'override plugin_dir of the configuration')
    .option('--json', 'print one JSON object')
    .action(async (options: RestoreOptions) => setExit(await restoreCommand(io, options)));
}
