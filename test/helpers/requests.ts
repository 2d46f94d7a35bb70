/** Requests the tests hand to agents directly (no job engine in between). */
import type { RestoreRequest } from '../../src/agents/agent.js';
import type { LogLevel } from '../../src/agents/types.js';

export interface Logged {
  level: LogLevel;
  message: string;
}

/** A restore into `target` of what an agent of `sourceAgentVersion` saved; its log lines go to `logs`. */
export function restoreRequest(target: string, logs: Logged[] = [], sourceAgentVersion: string | null = null): RestoreRequest {
  return {
    jobName: 'restore',
    jobId: 2,
    options: {},
    filesetCheck: () => true,
    log: (level, message) => logs.push({ level, message }),
    isCancelled: () => false,
    target,
    sourceAbi: 0,
    sourceAgentVersion,
  };
}
