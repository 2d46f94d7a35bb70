/**
 * Agents behind Bacula plugin command strings, for `agentfd serve`: a FileSet's
 * `Plugin = "MicrosoftExchange:store=/srv/exchange"` runs the agent whose Name() is before the first
 * ':' (a native agent, or a Bacula plugin such as bpipe through the adapter), as bacula-fd runs the
 * plugin of that name. A native agent gets the `key=value` pairs that follow as its options; a
 * Bacula plugin gets the whole string, as it expects. Both also get it as the option `command`.
 */
import type { Agent, BackupRun, RestoreRun } from '../../agents/agent.js';
import { pluginNameOf } from '../../agents/bacula-plugin/command.js';
import type { AgentRegistry } from '../../agents/registry.js';
import type { Level } from '../../agents/types.js';
import type { AgentfdConfig } from '../../config/load.js';
import { hasAgent, resolveAgent } from '../../jobs/agents.js';

export interface PluginAgents {
  /** The agent a command names, or null when it is not installed. */
  agentFor(command: string): Agent | null;
  options(command: string, agent: Agent): Record<string, string>;
}

/** `store=/a:truncate_logs=no` after the plugin's name, as options. */
export function commandOptions(command: string): Record<string, string> {
  const options: Record<string, string> = {};
  const rest = command.slice(command.indexOf(':') + 1);
  if (command.indexOf(':') < 0) return options;
  for (const pair of rest.split(':')) {
    const eq = pair.indexOf('=');
    if (eq > 0) options[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return options;
}

export function pluginAgents(config: AgentfdConfig, registry: AgentRegistry): PluginAgents {
  return {
    agentFor(command) {
      const name = pluginNameOf(command);
      return hasAgent(name, registry) && name !== 'filesystem' ? resolveAgent(name, registry, config) : null;
    },
    options(command, agent) {
      const fromConfig = config.agentOptions[agent.name] ?? {};
      return agent.kind === 'bacula' ? { ...fromConfig, command } : { ...fromConfig, ...commandOptions(command), command };
    },
  };
}

export interface PluginJob {
  jobName: string;
  jobId: number;
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
  isCancelled: () => boolean;
}

/** Start `agent`'s backup for `command` at `level` (since: seconds, for incrementals). */
export function startPluginBackup(agents: PluginAgents, agent: Agent, command: string, level: Level, since: bigint | null, job: PluginJob): Promise<BackupRun> {
  return agent.backup({
    jobName: job.jobName, jobId: job.jobId, options: agents.options(command, agent), filesetCheck: () => true,
    log: (l, m) => job.log(l === 'debug' ? 'info' : l, `${agent.name}: ${m}`), isCancelled: job.isCancelled,
    level, sinceNs: since === null ? 0n : since * 1_000_000_000n, jobStartNs: BigInt(Date.now()) * 1_000_000n, referenceState: null,
  });
}

export function startPluginRestore(agents: PluginAgents, agent: Agent, command: string, where: string, job: PluginJob): Promise<RestoreRun> {
  return agent.restore({
    jobName: job.jobName, jobId: job.jobId, options: agents.options(command, agent), filesetCheck: () => true,
    log: (l, m) => job.log(l === 'debug' ? 'info' : l, `${agent.name}: ${m}`), isCancelled: job.isCancelled,
    target: where, sourceAbi: agent.abi, sourceAgentVersion: agent.version,
  });
}
