/**
 * How a backup job reads the errors that end a file or the job: which ones abort it (rather than
 * fail it), which failed files it may go on after, and the one error a failed job is reported as.
 */
import type { AgentIdentity } from '../../agents/agent.js';
import { AgentfdError } from '../../errors.js';

type Coded = { code?: string; cause?: unknown };

/** A job is aborted (not merely failed) when its agent crashed, hung or was cancelled. */
export function isAbort(error: unknown): boolean {
  for (let e = error as Coded | undefined; e; e = e.cause as Coded | undefined) {
    if (e.code === 'E_AGENT_CRASHED' || e.code === 'E_AGENT_TIMEOUT' || e.code === 'E_CANCELLED') return true;
  }
  return false;
}

/**
 * After a file failed, may the job go on with the next one? The built-in agent's files are
 * independent of each other: yes. A native agent's session may be in no state to go on, unless
 * agentfd itself refused the file (the file was ended properly with the agent); a cancel ends the
 * job whatever the agent.
 */
export function goesOnAfter(agent: Pick<AgentIdentity, 'kind'>, error: unknown): boolean {
  const cause = (error as { cause?: Coded }).cause;
  if (cause?.code === 'E_CANCELLED') return false;
  const refused = (error as Coded).code === 'E_FILE_REFUSED' || cause?.code === 'E_FILE_REFUSED';
  return agent.kind === 'builtin' || refused;
}

/** The error a job that failed below the agent is thrown as: its code kept, the job named, its id attached. */
export function jobFailure(jobId: number, jobName: string, error: unknown, message: string): AgentfdError & { jobId: number } {
  const code = error instanceof AgentfdError ? error.code : 'E_JOB_FAILED';
  return Object.assign(new AgentfdError(code, `job ${jobId} (${jobName}) failed: ${message}`, { cause: error }), { jobId });
}
