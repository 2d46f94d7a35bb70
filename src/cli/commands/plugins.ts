/** `agentfd plugins list` and `agentfd plugins info NAME`. */
import path from 'node:path';
import type { Command } from 'commander';
import { HOST_MAX_ABI, HOST_MIN_ABI } from '../../agents/types.js';
import type { AgentDescriptor } from '../../agents/descriptor.js';
import { configFromOptions, registryFor, type ConfigOptions } from '../context.js';
import { printJson, reportFailure, table, type CommandIo } from '../output.js';

interface PluginOptions extends ConfigOptions {
  json?: boolean;
}

/** An agent as `plugins list --json` and `plugins info --json` describe it. */
export function describeAgent(agent: AgentDescriptor) {
  return {
    name: agent.name,
    file: agent.file,
    kind: agent.kind,
    abi: agent.abi,
    agentAbiRange: agent.agentAbiRange,
    version: agent.info.version ?? null,
    vendor: agent.info.vendor ?? null,
    description: agent.info.description ?? null,
    author: agent.info.author ?? null,
    capabilities: agent.capabilities,
    info: agent.info,
    warnings: agent.warnings,
  };
}

export async function pluginsList(io: CommandIo, options: PluginOptions): Promise<number> {
  try {
    const config = configFromOptions(options);
    const registry = await registryFor(config);
    const agents = [...registry.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (options.json) {
      printJson(io, {
        status: 'ok',
        pluginDir: registry.dir,
        hostAbiRange: [HOST_MIN_ABI, HOST_MAX_ABI],
        agents: agents.map(describeAgent),
        refused: registry.refused,
        ignored: registry.ignored,
      });
      return 0;
    }
    io.out(`Plugin directory: ${registry.dir} (this agentfd speaks ABI generations ${HOST_MIN_ABI}..${HOST_MAX_ABI})`);
    if (agents.length === 0) io.out('No agents loaded.');
    else {
      const rows = [['NAME', 'ABI', 'VERSION', 'FILE', 'CAPABILITIES']];
      for (const a of agents) {
        const abi = a.kind === 'bacula' ? `Bacula ${a.abi}` : `${a.abi} (${a.agentAbiRange[0]}..${a.agentAbiRange[1]})`;
        rows.push([a.name, abi, a.info.version ?? '-', path.basename(a.file), a.capabilities.join(', ')]);
      }
      io.out(table(rows));
      // Bacula plugins say who wrote them and what they are; jobs use them with plugin = "NAME:...".
      for (const a of agents.filter((x) => x.kind === 'bacula')) {
        io.out(`${a.name}: Bacula File Daemon plugin (interface ${a.abi}): ${a.info.description || '(no description)'}, by ${a.info.author || '(no author)'}, licence ${a.info.license}; use it with plugin = "${a.name}:..."`);
      }
    }
    const warned = agents.filter((a) => a.warnings.length > 0);
    for (const a of warned) for (const w of a.warnings) io.out(`warning: ${a.name}: ${w}`);
    if (registry.refused.length > 0) {
      io.out(`\nRefused (${registry.refused.length}):`);
      for (const r of registry.refused) io.out(`  [${r.code}] ${r.reason}`);
    }
    return 0;
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export async function pluginsInfo(io: CommandIo, name: string, options: PluginOptions): Promise<number> {
  try {
    const config = configFromOptions(options);
    const registry = await registryFor(config);
    const agent = registry.get(name);
    if (options.json) {
      printJson(io, { status: 'ok', agent: describeAgent(agent) });
      return 0;
    }
    const rows = [
      ['Name', agent.name],
      ['File', agent.file],
      agent.kind === 'bacula'
        ? ['ABI', `Bacula File Daemon plugin interface ${agent.abi} (Bacula 9.6); preloaded: ${agent.preload?.join(', ') || '(nothing)'}`]
        : ['ABI', `generation ${agent.abi} negotiated (agent speaks ${agent.agentAbiRange[0]}..${agent.agentAbiRange[1]}, agentfd ${HOST_MIN_ABI}..${HOST_MAX_ABI})`],
      ['Capabilities', agent.capabilities.join(', ')],
      ...Object.entries(agent.info).map(([k, v]) => [k[0]!.toUpperCase() + k.slice(1), v]),
    ];
    io.out(table(rows.map(([k, v]) => [`${k}:`, v!])));
    for (const w of agent.warnings) io.out(`warning: ${w}`);
    return 0;
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export function registerPluginCommands(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  const plugins = program.command('plugins').description('list and inspect the agents of the plugin directory');
  plugins
    .command('list')
    .description('load every library in the plugin directory and show the agents, and the libraries refused with their reasons')
    .option('--plugin-dir <dir>', 'the directory of agent libraries (default: plugin_dir of the configuration)')
    .option('--bacula-plugin-dir <dir>', "also load the Bacula plugins (*-fd.so) of this directory (default: [bacula] plugin_dir; Debian's is /usr/lib/bacula)")
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--json', 'print one JSON object')
    .action(async (options: PluginOptions) => setExit(await pluginsList(io, options)));
  plugins
    .command('info')
    .description('show everything an agent declares')
    .argument('<name>', "the agent's Name()")
    .option('--plugin-dir <dir>', 'the directory of agent libraries (default: plugin_dir of the configuration)')
    .option('-c, --config <file>', 'configuration file (default: $AGENTFD_CONFIG, else ./agentfd.toml)')
    .option('--json', 'print one JSON object')
    .action(async (name: string, options: PluginOptions) => setExit(await pluginsInfo(io, name, options)));
}
