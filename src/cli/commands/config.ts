/** `agentfd config check`: the configuration parses, validates, and every job names a loadable agent. */
import type { Command } from 'commander';
import { hasAgent } from '../../jobs/agents.js';
import { ConfigError } from '../../errors.js';
import { configFromOptions, registryFor, type ConfigOptions } from '../context.js';
import { printJson, reportFailure, type CommandIo } from '../output.js';

interface CheckOptions extends ConfigOptions {
  json?: boolean;
}

export async function configCheck(io: CommandIo, options: CheckOptions): Promise<number> {
  try {
    const config = configFromOptions(options);
    const registry = await registryFor(config);
    const problems: string[] = [];
    const warnings: string[] = [];
    for (const [job, settings] of Object.entries(config.jobs)) {
      if (!hasAgent(settings.agent, registry)) {
        const known = [...registry.agents.keys()].sort().join(', ') || '(none)';
        problems.push(`jobs.${job}.agent: no agent named "${settings.agent}" in ${registry.dir} (agents there: ${known})`);
      }
    }
    for (const name of Object.keys(config.agentOptions)) {
      if (!registry.agents.has(name)) warnings.push(`agents.${name}: no agent of that name is loaded; its settings are unused`);
    }
    for (const r of registry.refused) warnings.push(`plugin refused: ${r.reason}`);
    const where = config.file ?? '(built-in defaults: no configuration file found)';
    if (problems.length > 0) {
      throw new ConfigError(`${where}: invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    }
    if (options.json) {
      printJson(io, { status: 'ok', file: config.file, pluginDir: config.pluginDir, dataDir: config.dataDir, jobs: Object.keys(config.jobs), warnings });
    } else {
      io.out(`${where}: OK`);
      io.out(`  plugin directory: ${config.pluginDir}`);
      io.out(`  data directory:   ${config.dataDir}`);
      io.out(`  jobs:             ${Object.keys(config.jobs).join(', ') || '(none)'}`);
      for (const w of warnings) io.out(`warning: ${w}`);
    }
    return 0;
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export function registerConfigCommands(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  const config = program.command('config').description('check the configuration');
  config
    .command('check')
    .description('parse and validate the configuration, and check that every job names an agent that loads')
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--plugin-dir <dir>', 'override plugin_dir of the configuration')
    .option('--json', 'print one JSON object')
    .action(async (options: CheckOptions) => setExit(await configCheck(io, options)));
}
