/**
 * What the registry knows of an agent library: what it said when it was loaded and negotiated.
 * Plain data, with no function pointers and no loaded code, so it can come from a probe process
 * (the default: no agent code runs in the daemon) or from an in-process load.
 */
import path from 'node:path';
import { AgentLoadError, messageOf } from '../errors.js';
import { BACULA_PLUGIN_FILE } from './bacula-plugin/command.js';
import { loadAgentLibrary } from './load.js';
import type { RefusalCode } from './native/library.js';
import type { Capability } from './types.js';
import { checkLibraryFile } from './plugin-dir.js';
import type { LoadedAgent } from './session.js';

export interface AgentDescriptor {
  /** An agentfd agent, or an unmodified Bacula 9.6 File Daemon plugin (a *-fd.so). */
  kind: 'native' | 'bacula';
  name: string;
  file: string;
  /** The generation both sides agreed on, and the range the agent speaks (Bacula: 14). */
  abi: number;
  agentAbiRange: [number, number];
  capabilities: Capability[];
  info: Record<string, string>;
  warnings: string[];
  /** Bacula plugins: the libraries opened with global binding before it (libbac). */
  preload?: string[];
}

export function describeLibrary(library: LoadedAgent, preload?: readonly string[]): AgentDescriptor {
  return {
    kind: library.kind,
    name: library.name,
    file: library.file,
    abi: library.abi,
    agentAbiRange: [library.agentAbiRange[0], library.agentAbiRange[1]],
    capabilities: [...library.capabilities],
    info: { ...library.info },
    warnings: [...library.warnings],
    ...(library.kind === 'bacula' ? { preload: [...(preload ?? [])] } : {}),
  };
}

/** Bacula's rule: a file named NAME-fd.so (NAME-fd.dll) is a File Daemon plugin. */
export function isBaculaPluginFile(file: string): boolean {
  return BACULA_PLUGIN_FILE.test(path.basename(file));
}

/**
 * Check, load, negotiate and describe one library, then unload it. Throws AgentLoadError with the
 * reason when it is refused. `dirProblem` is the plugin directory's own safety problem, if any;
 * `preload` the libraries Bacula plugins need in the global scope.
 */
export function examineLibrary(file: string, dirProblem: string | null, preload?: readonly string[]): AgentDescriptor {
  checkLibraryFile(file, dirProblem);
  const kind = isBaculaPluginFile(file) ? 'bacula' : 'native';
  const library = loadAgentLibrary({ kind, file, preload });
  try {
    return describeLibrary(library, preload);
  } finally {
    library.unload();
  }
}

/** A library to examine, with its directory's safety problem (null when safe). */
export interface Candidate {
  file: string;
  dirProblem: string | null;
}

export interface RefusedLibrary {
  file: string;
  code: RefusalCode | 'E_LOAD_CRASHED';
  reason: string;
}

/** What examining one library found: its description, or why it is refused. */
export type Examination = { file: string; agent: AgentDescriptor } | { file: string; refused: RefusedLibrary };

/**
 * Examine one candidate, in this process or in the probe (probe-main.ts): a refusal, or any other
 * failure, is returned as the library's reason, never thrown, so one bad library never stops the others.
 */
export function examineCandidate({ file, dirProblem }: Candidate, preload: readonly string[] | undefined): Examination {
  try {
    return { file, agent: examineLibrary(file, dirProblem, preload) };
  } catch (error) {
    if (error instanceof AgentLoadError) return { file, refused: { file, code: error.code as RefusalCode, reason: error.message } };
    // Anything else is a bug in a check or in koffi's handling of the file; keep it, never crash.
    return { file, refused: { file, code: 'E_LOAD_FAILED', reason: `${file}: cannot be loaded: ${messageOf(error)}` } };
  }
}
