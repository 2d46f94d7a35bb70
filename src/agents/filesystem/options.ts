/**
 * The filesystem agent's job options. The job engine passes the configured list of directories as
 * one string joined with the OS path-list delimiter (path.delimiter: ':' on POSIX, ';' on
 * Windows); this turns it back into absolute roots, refusing anything it cannot back up safely.
 */
import path from 'node:path';
import { AgentfdError } from '../../errors.js';
import { agentPathProblem } from '../types.js';
import { toAgentPath } from './agent-path.js';
import { IS_WINDOWS } from '../../platform/os.js';

export interface BackupRoot {
  /** The normalised OS path. */
  osPath: string;
  agentPath: string;
}

const EXAMPLE = IS_WINDOWS ? 'C:\\Users;D:\\Data' : '/home:/etc';

/**
 * The roots named by the `paths` option, normalised, without duplicates and without roots nested
 * in another root (they would be saved twice); `dropped` lists those left out and why.
 */
export function parseRoots(options: Record<string, string>): { roots: BackupRoot[]; dropped: string[] } {
  const raw = Object.hasOwn(options, 'paths') ? options.paths : undefined;
  const entries = (raw ?? '').split(path.delimiter).filter((p) => p !== '');
  if (entries.length === 0) {
    throw new AgentfdError(
      'E_AGENT_OPTION',
      `the filesystem agent needs the option "paths": one or more absolute directories separated by "${path.delimiter}" (for example paths = "${EXAMPLE}")`,
    );
  }
  const roots: BackupRoot[] = [];
  for (const entry of entries) {
    if (!path.isAbsolute(entry)) {
      throw new AgentfdError(
        'E_AGENT_OPTION',
        `the option "paths" holds the relative path ${JSON.stringify(entry)}; every path must be absolute (for example paths = "${EXAMPLE}")`,
      );
    }
    const osPath = path.resolve(entry);
    const agentPath = toAgentPath(osPath);
    const problem = agentPathProblem(agentPath);
    if (problem) {
      throw new AgentfdError('E_AGENT_OPTION', `the option "paths" holds ${JSON.stringify(entry)}, which cannot be saved: ${problem}`);
    }
    roots.push({ osPath, agentPath });
  }
  const inside = (child: string, parent: string) =>
    child === parent || child.startsWith(parent === '/' ? '/' : `${parent}/`);
  const kept: BackupRoot[] = [];
  const dropped: string[] = [];
  roots.forEach((root, i) => {
    const container = roots.find((other, j) => j !== i && inside(root.agentPath, other.agentPath) && (other.agentPath !== root.agentPath || j < i));
    if (container) dropped.push(`${root.osPath} (inside ${container.osPath}, which is already saved)`);
    else kept.push(root);
  });
  return { roots: kept, dropped };
}
