/** `agentfd backup --job NAME`: run a configured job. */
import type { Command } from 'commander';
import { isLevel } from '../../agents/types.js';
import { AgentfdError } from '../../errors.js';
import { runBackup } from '../../jobs/backup.js';
import { configFromOptions, registryFor, type ConfigOptions } from '../context.js';
import { humanBytes, startProgress } from '../progress.js';
import { printJson, reportFailure, type CommandIo } from '../output.js';

interface BackupOptions extends ConfigOptions {
  job: string;
  level?: string;
  json?: boolean;
}

export async function backupCommand(io: CommandIo, options: BackupOptions): Promise<number> {
  const json = Boolean(options.json);
  const controller = new AbortController();
  // Ctrl-C or a service stop: the agent is asked to stop (is_cancelled), then ended after the
  // grace period; a second Ctrl-C kills agentfd as usual.
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const level = options.level ?? 'full';
    if (!isLevel(level)) {
      throw new AgentfdError('E_USAGE', `--level ${options.level} is not one of full, incremental, differential`);
    }
    const config = configFromOptions(options);
    const registry = await registryFor(config);
    const progress = startProgress(!json, `backup ${options.job}`, null);
    try {
      const report = await runBackup({
        config, registry, jobName: options.job, level, signal: controller.signal,
        onProgress: (p) => progress.update(p.bytes, p.files),
        onLog: (lvl, message) => {
          if (!json && (lvl === 'warning' || lvl === 'error')) io.err(`${lvl}: ${message}`);
        },
      });
      progress.stop();
      const ok = report.status === 'committed';
      if (json) printJson(io, { ...report, status: ok ? 'ok' : 'failed', jobStatus: report.status });
      else {
        io.out(`job ${report.jobId} (${report.job}, agent ${report.agent}, ${report.level}): ${report.status}`);
        io.out(`  ${report.files} files, ${humanBytes(report.bytes)} read, ${humanBytes(report.storedBytes)} stored (${report.compression}${report.encrypted ? ', encrypted' : ''}${report.signed ? ', signed' : ''}) in ${report.seconds.toFixed(1)} s`);
        for (const e of report.errors) io.err(`error: ${e}`);
      }
      return ok ? 0 : 1;
    } finally {
      progress.stop();
    }
  } catch (error) {
    return reportFailure(io, json, error);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The options of a command that runs one job of the configuration at a level (backup, estimate). */
export function withJobOptions(command: Command): Command {
  return command
    .requiredOption('-j, --job <name>', 'the job (a [jobs.NAME] table of the configuration)')
    .option('-l, --level <level>', 'full, incremental or differential', 'full')
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--plugin-dir <dir>', 'override plugin_dir of the configuration')
    .option('--json', 'print one JSON object');
}

export function registerBackupCommand(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  withJobOptions(program.command('backup').description('run a backup job of the configuration'))
    .action(async (options: BackupOptions) => setExit(await backupCommand(io, options)));
}
