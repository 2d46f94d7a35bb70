/**
 * What the registry knows of an agent library: what it said when it was loaded and negotiated.
 * Plain data, with no function pointers and no loaded code, so it can come from a probe process
 * (the default: no agent code runs in the daemon) or from an in-process load.
 */
import type { Capability } from './native/abi.js';
import { loadNativeAgent, type NativeAgentLibrary } from './native/library.js';
import { checkLibraryFile } from './plugin-dir.js';

export interface AgentDescriptor {
  kind: 'native';
  name: string;
  file: string;
  /** The generation both sides agreed on, and the range the agent speaks. */
  abi: number;
  agentAbiRange: [number, number];
  capabilities: Capability[];
  info: Record<string, string>;
  warnings: string[];
}

export function describeLibrary(library: NativeAgentLibrary): AgentDescriptor {
  return {
    kind: 'native',
    name: library.name,
    file: library.file,
    abi: library.abi,
    agentAbiRange: [library.agentAbiRange[0], library.agentAbiRange[1]],
    capabilities: [...library.capabilities],
    info: { ...library.info },
    warnings: [...library.warnings],
  };
}

/**
 * Check, load, negotiate and describe one library, then unload it. Throws AgentLoadError with the
 * reason when it is refused. `dirProblem` is the plugin directory's own safety problem, if any.
 */
export function examineLibrary(file: string, dirProblem: string | null): AgentDescriptor {
  checkLibraryFile(file, dirProblem);
  const library = loadNativeAgent(file);
  try {
    return describeLibrary(library);
  } finally {
    library.unload();
  }
}
