/**
 * Every error agentfd raises on purpose is an AgentfdError: a stable `code` that scripts and tests
 * can match, and a message a person can act on (what failed, where, and what to do next).
 */
export class AgentfdError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentfdError';
    this.code = code;
  }
}

/** A configuration file that cannot be read, parsed or validated. */
export class ConfigError extends AgentfdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CONFIG', message, options);
    this.name = 'ConfigError';
  }
}

/** An agent library that cannot be loaded or used. `code` says why (see RefusalCode). */
export class AgentLoadError extends AgentfdError {
  readonly file: string;

  constructor(code: string, file: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AgentLoadError';
    this.file = file;
  }
}

/** A native agent call that returned an error code. */
export class AgentCallError extends AgentfdError {
  readonly agent: string;
  readonly call: string;
  readonly rc: number;

  constructor(agent: string, call: string, rc: number, message: string) {
    // AFD_E_CANCELLED (-4) is the agent agreeing to a cancel, not a failure of its own.
    super(rc === -4 ? 'E_CANCELLED' : 'E_AGENT_CALL', message);
    this.name = 'AgentCallError';
    this.agent = agent;
    this.call = call;
    this.rc = rc;
  }
}

/** The message of any thrown value, for places that must report what went wrong. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
