/**
 * The agents of a restore on their own: a missing agent is refused before anything is written,
 * with the ways out named; each agent's run starts once, lazily; and a Bacula plugin's recorded
 * command runs only from a job signed by a trusted key, or when the person restoring gives one.
 */
import { describe, expect, it } from 'vitest';
import { loadPluginDir } from '../../../src/agents/registry.js';
import { AgentfdError } from '../../../src/errors.js';
import { AgentRuns, RAW_RUN, checkAgentsInstalled, refuseUntrustedCommand } from '../../../src/jobs/restore/agent-runs.js';
import { tempDir } from '../../helpers/native.js';

describe('the agents of a restore (jobs/restore/agent-runs)', () => {
  it('refuses an agent that is not installed, naming --raw and --agent as the ways out', async () => {
    const registry = await loadPluginDir(tempDir('no-agents'));
    expect(() => checkAgentsInstalled(['filesystem'], registry, 7, undefined)).not.toThrow();
    const missing = (() => {
      try {
        checkAgentsInstalled(['filesystem', 'Exchange'], registry, 7, undefined);
      } catch (error) {
        return error as AgentfdError;
      }
      return null;
    })();
    expect(missing?.code).toBe('E_AGENT_MISSING');
    expect(missing?.message).toMatch(/job 7 were saved by agent "Exchange", which is not installed .*--raw.*--agent NAME/);
    expect(() => checkAgentsInstalled(['Other'], registry, 7, 'Other')).toThrow(/agent "Other" \(--agent\) is not installed/);
  });

  it('starts each agent once, when its first file comes, and reports the agents, not the raw writer', async () => {
    const registry = await loadPluginDir(tempDir('no-agents'));
    const runs = new AgentRuns({ registry, jobName: 'unit', jobId: 1, target: tempDir('runs'), overrides: {}, log: () => undefined }, { abi: 2, version: null });
    expect(runs.names()).toEqual([]);
    const first = await runs.runFor('filesystem');
    expect(await runs.runFor('filesystem')).toBe(first);
    await runs.runFor(RAW_RUN);
    expect(runs.names()).toEqual(['filesystem']);
    await runs.finish();
    await runs.close();
  });

  it("runs a Bacula plugin's recorded command only when signed by a trusted key or given by the person restoring", () => {
    const recorded = { command: 'bpipe:/x:reader:writer' };
    expect(() => refuseUntrustedCommand('bpipe', 3, recorded, {}, false)).toThrow(/not signed by a trusted key.*--option command=/);
    try {
      refuseUntrustedCommand('bpipe', 3, recorded, {}, false);
    } catch (error) {
      expect((error as AgentfdError).code).toBe('E_PLUGIN_COMMAND');
    }
    expect(() => refuseUntrustedCommand('bpipe', 3, recorded, {}, true)).not.toThrow();
    expect(() => refuseUntrustedCommand('bpipe', 3, recorded, { command: 'bpipe:/x:r:w' }, false)).not.toThrow();
    expect(() => refuseUntrustedCommand('bpipe', 3, {}, {}, false)).not.toThrow();
  });
});
