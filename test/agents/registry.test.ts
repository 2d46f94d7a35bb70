/**
 * The plugin directory loader against real compiled libraries: the samples load and negotiate,
 * and each kind of broken or unsafe library is refused with its own reason while the others load.
 */
import { chmodSync, chownSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPluginDir, type AgentRegistry } from '../../src/agents/registry.js';
import { HOST_MAX_ABI } from '../../src/agents/types.js';
import { LIB_EXT, makePluginDir, removeDir } from '../helpers/native.js';

const SAMPLES = ['exchange', 'mssql', 'legacy'];
const dirs: string[] = [];

// Every test runs with the libraries examined in a probe process (the default) and in-process.
let isolated = true;
async function load(dir: string): Promise<AgentRegistry> {
  dirs.push(dir);
  return loadPluginDir(dir, { isolated });
}

/** The samples must all still load next to whatever broken library a test adds. */
function expectSamplesLoaded(registry: AgentRegistry): void {
  expect([...registry.agents.keys()].sort()).toEqual(['LegacyFlatFiles', 'MSSQL', 'MicrosoftExchange']);
}

function refusal(registry: AgentRegistry, file: string) {
  const found = registry.refused.filter((r) => path.basename(r.file) === file);
  expect(found, `expected ${file} among the refused: ${JSON.stringify(registry.refused)}`).toHaveLength(1);
  return found[0]!;
}

afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

for (const mode of ['probe process', 'in-process'] as const)
describe(`loading ${mode}`, () => {
beforeAll(() => {
  isolated = mode === 'probe process';
});

describe('sample agents', () => {
  it('load and negotiate: Exchange and MSSQL on the newest generation the host speaks (3 on Linux), the legacy agent on generation 1', async () => {
    const registry = await load(makePluginDir(SAMPLES));
    expectSamplesLoaded(registry);
    expect(registry.refused).toEqual([]);

    const exchange = registry.get('MicrosoftExchange');
    expect(exchange.abi).toBe(HOST_MAX_ABI);
    expect(exchange.agentAbiRange).toEqual([1, 3]);
    expect(exchange.capabilities).toEqual(
      expect.arrayContaining(['full', 'incremental', 'differential', 'restore', 'own-state', 'accurate']),
    );
    expect(exchange.info.vendor).toBe('agentfd samples');
    expect(exchange.info.version).toMatch(/^\d+\.\d+\.\d+$/);

    const mssql = registry.get('MSSQL');
    expect(mssql.abi).toBe(HOST_MAX_ABI);
    expect(mssql.agentAbiRange).toEqual([2, 3]);
    expect(mssql.capabilities).toEqual(expect.arrayContaining(['full', 'restore', 'raw-restorable']));
    expect(mssql.capabilities).not.toContain('incremental');

    const legacy = registry.get('LegacyFlatFiles');
    expect(legacy.abi).toBe(1);
    expect(legacy.agentAbiRange).toEqual([1, 1]);
    expect(legacy.capabilities.sort()).toEqual(['full', 'restore']);
  });

  it('names what exists when a job asks for an agent that is not there', async () => {
    const registry = await load(makePluginDir(SAMPLES));
    expect(() => registry.get('Oracle')).toThrow(/no agent named "Oracle".*LegacyFlatFiles, MSSQL, MicrosoftExchange/);
  });
});

describe('refused libraries', () => {
  it('an agent whose ABI range does not overlap the host range, with both ranges in the message', async () => {
    const registry = await load(makePluginDir([...SAMPLES, 'bad_future_abi']));
    expectSamplesLoaded(registry);
    const r = refusal(registry, `bad_future_abi${LIB_EXT}`);
    expect(r.code).toBe('E_ABI_RANGE');
    expect(r.reason).toContain('speaks ABI generations 9..10');
    expect(r.reason).toContain(`this agentfd speaks 1..${HOST_MAX_ABI}`);
  });

  it('a library missing a required symbol', async () => {
    const registry = await load(makePluginDir([...SAMPLES, 'bad_no_negotiate']));
    expectSamplesLoaded(registry);
    const r = refusal(registry, `bad_no_negotiate${LIB_EXT}`);
    expect(r.code).toBe('E_MISSING_SYMBOL');
    expect(r.reason).toContain('missing symbol afd_negotiate');
  });

  it('a file that is not a library, without running anything', async () => {
    const registry = await load(makePluginDir(SAMPLES, { [`notes${LIB_EXT}`]: 'this is a text file, not an agent\n' }));
    expectSamplesLoaded(registry);
    const r = refusal(registry, `notes${LIB_EXT}`);
    expect(r.code).toBe('E_NOT_LIBRARY');
    expect(r.reason).toMatch(/not a shared library/);
  });

  it('an empty file named like a library', async () => {
    const registry = await load(makePluginDir(SAMPLES, { [`empty${LIB_EXT}`]: '' }));
    expectSamplesLoaded(registry);
    expect(refusal(registry, `empty${LIB_EXT}`).code).toBe('E_NOT_LIBRARY');
  });

  it.runIf(process.platform !== 'win32')('a Windows DLL dropped into a Linux plugin directory', async () => {
    const pe = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(200)]);
    const registry = await load(makePluginDir(SAMPLES, { 'exchange.dll': pe }));
    expectSamplesLoaded(registry);
    const r = refusal(registry, 'exchange.dll');
    expect(r.code).toBe('E_WRONG_PLATFORM');
    expect(r.reason).toContain('Windows (PE) library');
  });

  it('Name() returning NULL', async () => {
    const registry = await load(makePluginDir([...SAMPLES, 'bad_null_name']));
    expectSamplesLoaded(registry);
    const r = refusal(registry, `bad_null_name${LIB_EXT}`);
    expect(r.code).toBe('E_BAD_NAME');
    expect(r.reason).toContain('Name() returned NULL');
  });

  it('Name() returning invalid UTF-8, shown escaped', async () => {
    const registry = await load(makePluginDir([...SAMPLES, 'bad_utf8_name']));
    expectSamplesLoaded(registry);
    const r = refusal(registry, `bad_utf8_name${LIB_EXT}`);
    expect(r.code).toBe('E_BAD_NAME');
    expect(r.reason).toContain('not valid UTF-8');
    expect(r.reason).toContain('Bad\\xc3(Name');
  });

  it('two libraries with the same Name(): both refused, both files named, the others load', async () => {
    const registry = await load(makePluginDir([...SAMPLES, { name: 'exchange', as: `exchange-copy${LIB_EXT}` }]));
    expect([...registry.agents.keys()].sort()).toEqual(['LegacyFlatFiles', 'MSSQL']);
    const a = refusal(registry, `exchange${LIB_EXT}`);
    const b = refusal(registry, `exchange-copy${LIB_EXT}`);
    for (const r of [a, b]) {
      expect(r.code).toBe('E_DUPLICATE_NAME');
      expect(r.reason).toContain('duplicate name "MicrosoftExchange"');
      expect(r.reason).toContain(`exchange${LIB_EXT}`);
      expect(r.reason).toContain(`exchange-copy${LIB_EXT}`);
    }
  });

  it.runIf(process.platform !== 'win32')('a plugin file writable by other users', async () => {
    const dir = makePluginDir([...SAMPLES, { name: 'mssql', as: `mssql-open${LIB_EXT}` }]);
    chmodSync(path.join(dir, `mssql${LIB_EXT}`), 0o757);
    removeDir(path.join(dir, `mssql-open${LIB_EXT}`));
    const registry = await load(dir);
    expect([...registry.agents.keys()].sort()).toEqual(['LegacyFlatFiles', 'MicrosoftExchange']);
    const r = refusal(registry, `mssql${LIB_EXT}`);
    expect(r.code).toBe('E_INSECURE_PERMISSIONS');
    expect(r.reason).toMatch(/writable by all users \(mode 0757\).*chmod o-w/);
  });

  it.runIf(process.platform !== 'win32')('every library of a plugin directory writable by other users', async () => {
    const dir = makePluginDir(SAMPLES);
    chmodSync(dir, 0o777);
    const registry = await load(dir);
    expect(registry.agents.size).toBe(0);
    expect(registry.refused).toHaveLength(3);
    for (const r of registry.refused) {
      expect(r.code).toBe('E_INSECURE_PERMISSIONS');
      expect(r.reason).toContain('plugin directory');
    }
  });

  // Only root can give a file to another user; CI runs as root.
  it.runIf(process.getuid?.() === 0)('a plugin file owned by another user', async () => {
    const dir = makePluginDir(SAMPLES);
    chownSync(path.join(dir, `legacy${LIB_EXT}`), 65534, 65534);
    const registry = await load(dir);
    expect([...registry.agents.keys()].sort()).toEqual(['MSSQL', 'MicrosoftExchange']);
    const r = refusal(registry, `legacy${LIB_EXT}`);
    expect(r.code).toBe('E_INSECURE_PERMISSIONS');
    expect(r.reason).toContain('uid 65534');
  });

  it.runIf(process.platform !== 'win32')('a dangling symlink and a directory named like a library', async () => {
    const dir = makePluginDir(SAMPLES);
    symlinkSync('/nonexistent/agent.so', path.join(dir, `dangling${LIB_EXT}`));
    const registry = await load(dir);
    expectSamplesLoaded(registry);
    expect(refusal(registry, `dangling${LIB_EXT}`).code).toBe('E_NOT_REGULAR');
  });

  it('files not named like libraries are ignored, not refused', async () => {
    const dir = makePluginDir(SAMPLES, { 'README.txt': 'agents go here\n' });
    writeFileSync(path.join(dir, '.hidden.so'), 'x');
    const registry = await load(dir);
    expectSamplesLoaded(registry);
    expect(registry.refused).toEqual([]);
    expect(registry.ignored.map((f) => path.basename(f)).sort()).toEqual(['.hidden.so', 'README.txt']);
  });

  // In-process, a library that crashes while it loads takes the process with it: that is why
  // the default is the probe process.
  it.runIf(mode === 'probe process')('a library that crashes while it loads, in the probe, not in agentfd', async () => {
    const registry = await load(makePluginDir([...SAMPLES, 'bad_crash_name']));
    expectSamplesLoaded(registry);
    const r = refusal(registry, `bad_crash_name${LIB_EXT}`);
    expect(r.code).toBe('E_LOAD_CRASHED');
    expect(r.reason).toContain('crashed (signal SIGSEGV) while being loaded');
  });

  it('a plugin directory that does not exist is a clear error', async () => {
    await expect(loadPluginDir('/nonexistent/agentfd-plugins', { isolated })).rejects.toThrow(/plugin directory \/nonexistent\/agentfd-plugins does not exist.*--plugin-dir/);
  });
});
});
