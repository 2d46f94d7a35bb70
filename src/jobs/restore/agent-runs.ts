/**
 * The agents a restore writes through: checked to be installed before anything is written, then
 * started once each, lazily, when the first file routed to it arrives, with what the volume says
 * of the job that saved it (its options, its agent's ABI and version).
 */
import type { Agent, RestoreRun } from '../../agents/agent.js';
import { createFilesystemAgent } from '../../agents/filesystem/index.js';
import type { AgentRegistry } from '../../agents/registry.js';
import type { LogLevel } from '../../agents/types.js';
import type { AgentfdConfig } from '../../config/load.js';
import { AgentfdError } from '../../errors.js';
import { hasAgent, resolveAgent } from '../agents.js';

/** The name under which raw streams are written (plain files, by the filesystem agent). */
export const RAW_RUN = '\0raw';

/**
 * Refuse before anything is written when an agent the restore needs is not installed: each
 * recorded agent of the chain, or the one --agent names.
 */
export function checkAgentsInstalled(needed: readonly string[], registry: AgentRegistry, jobId: number, override: string | undefined): void {
  for (const name of needed) {
    if (hasAgent(name, registry)) continue;
    throw new AgentfdError(
      'E_AGENT_MISSING',
      override
        ? `agent "${name}" (--agent) is not installed in ${registry.dir}`
        : `the files of job ${jobId} were saved by agent "${name}", which is not installed in ${registry.dir}. Install it, restore with --raw to get every stream as a plain file, or route them to another agent with --agent NAME`,
    );
  }
}

/** What the volume says of the job being read (its SESSION_INFO), for the runs it starts. */
export interface RecordedSource {
  options: Record<string, string>;
  /** Signed by a trusted key: a Bacula plugin's recorded command may run. */
  trusted: boolean;
  abi: number;
  version: string | null;
}

export interface AgentRunsOptions {
  registry: AgentRegistry;
  config?: AgentfdConfig;
  jobName: string;
  jobId: number;
  target: string;
  /** Agent options that replace the recorded ones. */
  overrides: Record<string, string>;
  log: (level: LogLevel, message: string) => void;
}

export class AgentRuns {
  private readonly runs = new Map<string, RestoreRun>();
  private readonly agents = new Map<string, Agent>();
  private readonly rawAgent = createFilesystemAgent();
  private source: RecordedSource;

  constructor(private readonly options: AgentRunsOptions, initial: { abi: number; version: string | null }) {
    this.source = { options: {}, trusted: false, ...initial };
  }

  /** The job now being read; runs started from now on get its options. */
  recorded(source: Omit<RecordedSource, 'options'> & { options: Record<string, string> }): void {
    this.source = { ...source, options: { ...source.options, ...this.options.overrides } };
  }

  /** The run of `agentName` (RAW_RUN: plain files), started when first asked for. */
  async runFor(agentName: string): Promise<RestoreRun> {
    let run = this.runs.get(agentName);
    if (run) return run;
    const raw = agentName === RAW_RUN;
    const agent = raw ? this.rawAgent : this.agent(agentName);
    if (agent.kind === 'bacula') refuseUntrustedCommand(agent.name, this.options.jobId, this.source.options, this.options.overrides, this.source.trusted);
    run = await agent.restore({
      jobName: this.options.jobName, jobId: this.options.jobId, options: raw ? {} : this.source.options, filesetCheck: () => true,
      log: this.options.log, isCancelled: () => false, target: this.options.target, sourceAbi: this.source.abi, sourceAgentVersion: this.source.version,
    });
    this.runs.set(agentName, run);
    return run;
  }

  /** The agents that restored (not the raw writer), in the order they started. */
  names(): string[] {
    return [...this.runs.keys()].filter((name) => name !== RAW_RUN);
  }

  async finish(): Promise<void> {
    for (const run of this.runs.values()) await run.finish();
  }

  /** End every run; `quietly` after a failure, when closing must not hide the first error. */
  async close(quietly = false): Promise<void> {
    for (const run of this.runs.values()) {
      if (quietly) await run.close().catch(() => undefined);
      else await run.close();
    }
  }

  private agent(name: string): Agent {
    let agent = this.agents.get(name);
    if (!agent) this.agents.set(name, (agent = resolveAgent(name, this.options.registry, this.options.config)));
    return agent;
  }
}

/**
 * A Bacula plugin's restore runs its command string (bpipe: the writer program, run as agentfd's
 * user, often root). The one recorded on the volume is data from the past, possibly from someone
 * else: it is run only when the job is signed by a trusted key, else the person restoring gives
 * it (--option command=...), having read it.
 */
export function refuseUntrustedCommand(agent: string, jobId: number, options: Record<string, string>, overrides: Record<string, string>, trusted: boolean): void {
  if (trusted || overrides.command !== undefined || options.command === undefined) return;
  throw new AgentfdError(
    'E_PLUGIN_COMMAND',
    `job ${jobId} was saved by the Bacula plugin "${agent}", whose restore runs the command recorded on the volume (${JSON.stringify(options.command)}); ` +
      'the job is not signed by a trusted key, so agentfd does not run a command it cannot trust. Read it, then give it (or your own) with --option command=...',
  );
}
