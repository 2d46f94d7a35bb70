/**
 * The agent registry: every library of the plugin directory, loaded and negotiated, by Name().
 * A library that cannot be used is kept in `refused` with its reason; one bad library never stops
 * the others from loading.
 *
 * By default the libraries are examined in a probe process (no agent code runs in the daemon, so
 * a library that crashes while it loads cannot take the daemon down); `isolated: false` examines
 * them in this process, for isolation = "none".
 */
import { AgentfdError } from '../errors.js';
import { examineCandidate, isBaculaPluginFile, type AgentDescriptor, type Candidate, type RefusedLibrary } from './descriptor.js';
import { checkDirectorySafe, listPluginDir } from './plugin-dir.js';
import { probeLibraries } from './probe.js';

export interface AgentRegistry {
  readonly dir: string;
  /** Usable agents by Name(). */
  readonly agents: ReadonlyMap<string, AgentDescriptor>;
  readonly refused: readonly RefusedLibrary[];
  /** Files in the directory that are not named like libraries. */
  readonly ignored: readonly string[];
  /** The agent named `name`, or an error that lists what is there and what was refused. */
  get(name: string): AgentDescriptor;
}

export interface RegistryOptions {
  /** Examine the libraries in a probe process (the default), or in this one. */
  isolated?: boolean;
  /** Bacula's Plugin Directory: its *-fd.so files are loaded as Bacula plugins, nothing else there. */
  baculaPluginDir?: string | null;
  /** Libraries Bacula plugins need in the global scope (libbac). */
  preload?: readonly string[];
}

export async function loadPluginDir(dir: string, options: RegistryOptions = {}): Promise<AgentRegistry> {
  const listing = listPluginDir(dir);
  const dirProblem = checkDirectorySafe(listing.dir);
  const candidates: Candidate[] = listing.libraries.map((file) => ({ file, dirProblem }));
  if (options.baculaPluginDir) {
    const bacula = listPluginDir(options.baculaPluginDir);
    const baculaProblem = checkDirectorySafe(bacula.dir);
    const known = new Set(listing.libraries);
    for (const file of bacula.libraries) if (isBaculaPluginFile(file) && !known.has(file)) candidates.push({ file, dirProblem: baculaProblem });
  }
  const results =
    options.isolated === false
      ? candidates.map((candidate) => examineCandidate(candidate, options.preload))
      : candidates.length > 0
        ? await probeLibraries(candidates, options.preload)
        : [];
  const loaded = results.flatMap((r) => ('agent' in r ? [r.agent] : []));
  const refused = results.flatMap((r) => ('refused' in r ? [r.refused] : []));

  // Two libraries with one Name() are ambiguous: a job could get either. Refuse both, and say
  // which files they are, rather than pick one by the order of the directory listing.
  const byName = new Map<string, AgentDescriptor[]>();
  for (const agent of loaded) byName.set(agent.name, [...(byName.get(agent.name) ?? []), agent]);
  const agents = new Map<string, AgentDescriptor>();
  for (const [name, group] of byName) {
    if (group.length === 1) {
      agents.set(name, group[0]!);
      continue;
    }
    const files = group.map((a) => a.file);
    for (const agent of group) {
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
    get(name: string): AgentDescriptor {
      const agent = agents.get(name);
      if (agent) return agent;
      const available = [...agents.keys()].sort();
      const refusedText = refused.length > 0 ? ` ${refused.length} librar${refused.length === 1 ? 'y was' : 'ies were'} refused (agentfd plugins list shows why).` : '';
      throw new AgentfdError(
        'E_UNKNOWN_AGENT',
        `no agent named "${name}" in ${listing.dir}; the agents there are: ${available.length > 0 ? available.join(', ') : '(none)'}.${refusedText}`,
      );
    },
  };
}
