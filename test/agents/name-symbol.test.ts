/**
 * Name and afd_negotiate are unprefixed exports, and a process may hold other libraries that export
 * them: [bacula] preload opens libraries with global binding (RTLD_GLOBAL, as bacula-fd's libbac
 * must be), which puts their symbols in the process's global scope. agentfd looks an agent's entry
 * points up in the agent's own library (koffi's lib.func is dlsym on the library's handle, which
 * searches that library and its dependencies, never the global scope), so a global Name can
 * neither stand in for an agent's own nor fill in a missing one. What it can still catch, an
 * agent's own calls to its exported Name(), is the agent's to avoid (agentfd_agent.h, "The two
 * exported entry points").
 */
import path from 'node:path';
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { loadPluginDir } from '../../src/agents/registry.js';
import { LIB_EXT, builtAgent, makePluginDir } from '../helpers/native.js';

// Bacula plugins (the way a library gets preloaded) load on Linux x86-64 only; Windows looks a
// symbol up in one module only (GetProcAddress) and has no global scope to collide with.
describe.runIf(process.platform === 'linux' && process.arch === 'x64')('an agent is known by its own Name(), whatever the global scope holds', () => {
  it('after a preloaded library that exports Name and afd_negotiate, each agent still answers with its own, and a missing one is not taken from it', async () => {
    // The listing is sorted: the Bacula plugin a-fd.so loads first, and preloads the decoy.
    const dir = makePluginDir([{ name: 'testplug-fd', as: 'a-fd.so' }, 'bad_no_negotiate', 'contract_agent']);
    const registry = await loadPluginDir(dir, { isolated: false, preload: [builtAgent('name_decoy')] });
    expect(registry.agents.get('a')).toMatchObject({ kind: 'bacula' });
    // The decoy is in the global scope: a lookup there finds its Name.
    expect(koffi.load(null).func('const char *Name(void)')()).toBe('GlobalDecoy');

    // The Contract agent negotiated with its own afd_negotiate (the decoy's fails every call).
    expect(registry.agents.get('Contract')).toMatchObject({ kind: 'native', abi: 3, agentAbiRange: [2, 3] });
    expect(registry.agents.has('GlobalDecoy')).toBe(false);
    expect(registry.refused).toMatchObject([{ file: path.join(dir, `bad_no_negotiate${LIB_EXT}`), code: 'E_MISSING_SYMBOL' }]);
  });
});
