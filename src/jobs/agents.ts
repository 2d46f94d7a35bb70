/** Which Agent serves a name: the built-in filesystem agent, or a native library of the registry. */
import path from 'node:path';
import type { Agent } from '../agents/agent.js';
import { createFilesystemAgent } from '../agents/filesystem/index.js';
import type { AgentRegistry } from '../agents/registry.js';
import { NativeAgent } from '../bridge/native-agent.js';
import type { AgentfdConfig } from '../config/load.js';
import type { JobConfig } from '../config/schema.js';

export const FILESYSTEM_AGENT = 'filesystem';

export function resolveAgent(name: string, registry: AgentRegistry): Agent {
  if (name === FILESYSTEM_AGENT) return createFilesystemAgent();
  return new NativeAgent(registry.get(name));
}

/** Is an agent of this name available (without loading anything new)? */
export function hasAgent(name: string, registry: AgentRegistry): boolean {
  return name === FILESYSTEM_AGENT || registry.agents.has(name);
}

/** The options an agent gets for a job: its [agents.NAME.options], then the job's own. */
export function agentOptions(config: AgentfdConfig, job: JobConfig): Record<string, string> {
  const options = { ...(config.agentOptions[job.agent] ?? {}), ...job.options };
  if (job.paths && job.paths.length > 0) options.paths = job.paths.join(path.delimiter);
  return options;
}
