/**
 * Loading an agent library of either ABI, by what the registry found it to be: a native agentfd
 * agent (native/library.ts) or a Bacula 9.6 plugin (bacula-plugin/library.ts).
 */
import { loadBaculaPlugin } from './bacula-plugin/library.js';
import { loadNativeAgent } from './native/library.js';
import type { LoadedAgent } from './session.js';

export interface LoadTarget {
  kind: 'native' | 'bacula';
  file: string;
  /** Bacula plugins: libraries to open with global binding first (libbac). */
  preload?: readonly string[];
}

export function loadAgentLibrary(target: LoadTarget): LoadedAgent {
  return target.kind === 'bacula' ? loadBaculaPlugin(target.file, target.preload) : loadNativeAgent(target.file);
}
