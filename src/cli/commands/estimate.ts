/**
 * `agentfd estimate --job NAME`: how much a backup of the job would save, without saving anything.
 * A command of its own rather than `backup --estimate`: it writes nothing and takes no storage
 * lock, so it can run beside a backup, and its answer is not a backup report.
 */
import type { Command } from 'commander';
import { withJobOptions } from './backup.js';
import { isLevel } from '../../agents/types.js';
import { AgentfdError } from '../../errors.js';
import { runEstimate } from '../../jobs/estimate.js';
import { configFromOptions, registryFor, type ConfigOptions } from '../context.js';
import { humanBytes } from '../progress.js';
import { printJson, reportFailure, type CommandIo } from '../output.js';

interface EstimateOptions extends ConfigOptions {
  job: string;
  level?: string;
  json?: boolean;
}

export async function estimateCommand(io: CommandIo, options: EstimateOptions): Promise<number> {
  const json = Boolean(options.json);
  try {
    const level = options.level ?? 'full';
    if (!isLevel(level)) {
      throw new AgentfdError('E_USAGE', `--level ${options.level} is not one of full, incremental, differential`);
    }
    const config = configFromOptions(options);
    const report = await runEstimate({ config, registry: await registryFor(config), jobName: options.job, level });
    if (json) printJson(io, { status: 'ok', ...report });
    else {
      const files = report.files === null ? 'an unknown number of files' : `${report.files} files`;
      const bytes = report.bytes === null ? 'an unknown size' : humanBytes(report.bytes);
      io.out(`job ${report.job} (agent ${report.agent}, ${report.level}): about ${files}, ${bytes} (${report.method === 'agent' ? "the agent's estimate" : 'counted by walking'})`);
      for (const w of report.warnings) io.err(`warning: ${w}`);
    }
    return 0;
  } catch (error) {
    return reportFailure(io, json, error);
  }
}

export function registerEstimateCommand(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  withJobOptions(program.command('estimate').description('how much a backup of a job would save (nothing is written)'))
    .action(async (options: EstimateOptions) => setExit(await estimateCommand(io, options)));
}
