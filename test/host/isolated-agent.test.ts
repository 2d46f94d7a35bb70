/**
 * Agent host processes, with compiled agents: whatever the agent does in its host (a segfault,
 * abort(), exit(), a hang), this process goes on, and the job gets an error that names the agent,
 * the entry point it was in and how its host ended; a library the host cannot load is refused with
 * the loader's own code.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AgentFile } from '../../src/agents/agent.js';
import { loadPluginDir, type AgentRegistry } from '../../src/agents/registry.js';
import { AgentHost } from '../../src/host/host-client.js';
import { IsolatedAgent } from '../../src/host/isolated-agent.js';
import { SAMPLE_DIR, builtAgent, tempDir } from '../helpers/native.js';

let registry: AgentRegistry;
beforeAll(async () => {
  registry = await loadPluginDir(SAMPLE_DIR);
});

/** FaultInjector (native-samples/faulty) in its host with `fault` in file 2: the files read before the error, and the error. */
async function runFault(fault: string, callTimeoutMs = 60_000): Promise<{ read: string[]; error: unknown }> {
  const agent = new IsolatedAgent(registry.get('FaultInjector'), { callTimeoutMs, cancelGraceMs: 1000 });
  const run = await agent.backup({
    jobName: 'faults', jobId: 1, options: { fault }, filesetCheck: () => true, log: () => undefined, isCancelled: () => false,
    level: 'full', sinceNs: 0n, jobStartNs: 0n, referenceState: null,
  });
  const read: string[] = [];
  try {
    for await (const file of run.files as AsyncIterable<AgentFile>) {
      for (const stream of file.streams) for await (const piece of stream.data()) void piece;
      read.push(file.path);
    }
    return { read, error: null };
  } catch (error) {
    return { read, error };
  } finally {
    await run.finish(false).catch(() => undefined);
    await run.close();
  }
}

describe('isolated agent host', () => {
  it.each([
    ['crash-read', 'backup_read', /crashed in backup_read\(\): its host process was killed by signal SIGSEGV/],
    ['abort-next', 'backup_next_file', /crashed in backup_next_file\(\): its host process was killed by signal SIGABRT/],
    ['exit-read', 'backup_read', /crashed in backup_read\(\): its host process exited with code 3/],
  ])('reports a host that ended in the agent (%s) as a crash naming the call, after the files read before it', async (fault, call, message) => {
    const { read, error } = await runFault(fault);
    expect(read).toEqual(['/@faulty/file1.bin']);
    expect(error).toMatchObject({ name: 'AgentHostError', code: 'E_AGENT_CRASHED', agent: 'FaultInjector', call });
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain('agent "FaultInjector" (');
  });

  it('kills a host whose agent does not return within the call timeout, naming the call and the setting', async () => {
    const started = Date.now();
    const { error } = await runFault('hang-read', 1000);
    expect(error).toMatchObject({ code: 'E_AGENT_TIMEOUT', call: 'backup_read' });
    expect((error as Error).message).toBe(
      'agent "FaultInjector" did not return from backup_read() within 1 s (call_timeout); its host process was killed. Raise call_timeout in [agents.FaultInjector] if the agent is only slow.',
    );
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('refuses a library its host cannot load with the loader\'s code, and one that crashes while loading as a crash', async () => {
    const notes = path.join(tempDir('host-load'), 'notes.so');
    writeFileSync(notes, 'this is a text file, not an agent\n');
    const settings = { agent: 'Notes', callTimeoutMs: 60_000, cancelGraceMs: 1000 };
    await expect(AgentHost.start({ ...settings, file: notes })).rejects.toMatchObject({ code: 'E_NOT_LIBRARY' });
    await expect(AgentHost.start({ ...settings, agent: 'CrashName', file: builtAgent('bad_crash_name') })).rejects.toMatchObject({
      code: 'E_AGENT_CRASHED', message: expect.stringMatching(/crashed in .*\(\): its host process was killed by signal SIG/),
    });
  });
});
