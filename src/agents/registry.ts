/**
 * The agent registry: every library of the plugin directory, loaded and negotiated, by Name().
 * A library that cannot be used is kept in `refused` with its reason; one bad library never stops
 * the others from loading.
 */
import { AgentLoadError, AgentfdError, messageOf } from '../errors.js';
import { loadNativeAgent, type NativeAgentLibrary, type RefusalCode } from './native/library.js';
import { checkDirectorySafe, checkLibraryFile, listPluginDir } from './plugin-dir.js';

export interface RefusedLibrary {
  file: string;
  code: RefusalCode;
  reason: string;
}

export interface AgentRegistry {
  readonly dir: string;
  /** Usable agents by Name(). */
  readonly agents: ReadonlyMap<string, NativeAgentLibrary>;
  readonly refused: readonly RefusedLibrary[];
  /** Files in the directory that are not named like libraries. */
  readonly ignored: readonly string[];
  /** The agent named `name`, or an error that lists what is there and what was refused. */
  get(name: string): NativeAgentLibrary;
  /** Unload every library. */
  close(): void;
}

function refusalOf(file: string, error: unknown): RefusedLibrary {
  if (error instanceof AgentLoadError) return { file, code: error.code as RefusalCode, reason: error.message };
  // Anything else is a bug in a check or in koffi's handling of the file; keep it, never crash.
  return { file, code: 'E_LOAD_FAILED', reason: `${file}: cannot be loaded: ${messageOf(error)}` };
}

export function loadPluginDir(dir: string): AgentRegistry {
  const listing = listPluginDir(dir);
  const dirProblem = checkDirectorySafe(listing.dir);
  const loaded: NativeAgentLibrary[] = [];
  const refused: RefusedLibrary[] = [];
  for (const file of listing.libraries) {
    try {
      checkLibraryFile(file, dirProblem);
      loaded.push(loadNativeAgent(file));
    } catch (error) {
      refused.push(refusalOf(file, error));
    }
  }

  // Two libraries with one Name() are ambiguous: a job could get either. Refuse both, and say
  // which files they are, rather than pick one by the order of the directory listing.
  const byName = new Map<string, NativeAgentLibrary[]>();
  for (const agent of loaded) byName.set(agent.name, [...(byName.get(agent.name) ?? []), agent]);
  const agents = new Map<string, NativeAgentLibrary>();
  for (const [name, group] of byName) {
    if (group.length === 1) {
      agents.set(name, group[0]!);
      continue;
    }
    const files = group.map((a) => a.file);
    for (const agent of group) {
      agent.unload();
      const others = files.filter((f) => f !== agent.file).join(', ');
      refused.push({
        file: agent.file,
        code: 'E_DUPLICATE_NAME',
        reason: `${agent.file}: duplicate name "${name}": ${others} has the same Name(), so jobs could not tell them apart. Remove all but one of: ${files.join(', ')}.`,
      });
    }
  }
  refused.sort((a, b) => a.file.localeCompare(b.file));

  return {
    dir: listing.dir,
    agents,
    refused,
    ignored: listing.ignored,
    get(name: string): NativeAgentLibrary {
      const agent = agents.get(name);
      if (agent) return agent;
      const available = [...agents.keys()].sort();
      const refusedText = refused.length > 0 ? ` ${refused.length} librar${refused.length === 1 ? 'y was' : 'ies were'} refused (agentfd plugins list shows why).` : '';
      throw new AgentfdError(
        'E_UNKNOWN_AGENT',
        `no agent named "${name}" in ${listing.dir}; the agents there are: ${available.length > 0 ? available.join(', ') : '(none)'}.${refusedText}`,
      );
    },
    close() {
      for (const agent of agents.values()) agent.unload();
      agents.clear();
    },
  };
}
