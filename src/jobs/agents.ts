/** Which Agent serves a name: the built-in filesystem agent, or a native library of the registry. */
import path from 'node:path';
import type { Agent } from '../agents/agent.js';
import type { AgentDescriptor } from '../agents/descriptor.js';
import { loadAgentLibrary } from '../agents/load.js';
import type { LoadedAgent } from '../agents/session.js';
import { AgentfdError } from '../errors.js';
import { createFilesystemAgent } from '../agents/filesystem/index.js';
import type { AgentRegistry } from '../agents/registry.js';
import { NativeAgent } from '../bridge/native-agent.js';
import type { AgentfdConfig, IsolationDefaults } from '../config/load.js';
import { IsolatedAgent } from '../host/isolated-agent.js';
import type { JobConfig } from '../config/schema.js';

export const FILESYSTEM_AGENT = 'filesystem';

/** Libraries loaded into this process for isolation = "none", kept for the life of the process. */
const inProcess = new Map<string, LoadedAgent>();

function loadInProcess(descriptor: AgentDescriptor): LoadedAgent {
  let library = inProcess.get(descriptor.file);
  if (!library) {
    library = loadAgentLibrary(descriptor);
    if (library.name !== descriptor.name) {
      library.unload();
      throw new AgentfdError('E_AGENT_CHANGED', `${descriptor.file} now answers Name() "${library.name}", not "${descriptor.name}"; it changed while agentfd ran`);
    }
    inProcess.set(descriptor.file, library);
  }
  return library;
}

/** How `name` runs: the configuration's isolation settings, with the agent's own overrides. */
export function isolationFor(config: AgentfdConfig | undefined, name: string): IsolationDefaults {
  const defaults: IsolationDefaults = config?.isolation ?? { mode: 'process', callTimeoutMs: 600_000, cancelGraceMs: 10_000 };
  return { ...defaults, ...(config?.agentIsolation[name] ?? {}) };
}

/** The agent named `name`: built in, or a native library, isolated in a host process unless the configuration says "none". */
export function resolveAgent(name: string, registry: AgentRegistry, config?: AgentfdConfig): Agent {
  if (name === FILESYSTEM_AGENT) return createFilesystemAgent();
  const descriptor = registry.get(name);
  const isolation = isolationFor(config, name);
  return isolation.mode === 'none' ? new NativeAgent(loadInProcess(descriptor)) : new IsolatedAgent(descriptor, isolation);
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

/** The job `jobName` of the configuration, or an error that lists the jobs there are. */
export function configuredJob(config: AgentfdConfig, jobName: string): JobConfig {
  const job = config.jobs[jobName];
  if (job) return job;
  const known = Object.keys(config.jobs).join(', ') || '(none)';
  throw new AgentfdError('E_UNKNOWN_JOB', `no job named "${jobName}" in ${config.file ?? 'the configuration'}; the jobs are: ${known}`);
}
