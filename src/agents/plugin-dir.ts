/**
 * The plugin directory: which of its files are agent libraries, and whether they are safe to load.
 *
 * Loading a library runs its code with the daemon's rights, so a library (or the directory holding
 * it) that another user can write is refused, as ssh refuses a group- or world-writable
 * authorized_keys and sudo a world-writable sudoers. These checks run before dlopen, so nothing
 * of a refused file ever executes. On Windows the ACL model differs; there the checks are left to
 * the directory's ACL (documented in the README).
 */
import { readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { AgentLoadError, AgentfdError } from '../errors.js';
import { IS_WINDOWS } from '../platform/os.js';

/** Names that look like a shared library on some platform (`libx.so.1` included). */
const LIBRARY_NAME = /\.(so(\.\d+)*|dll|dylib)$/i;

export interface PluginDirListing {
  dir: string;
  /** Absolute paths of files named like libraries, sorted. */
  libraries: string[];
  /** Other entries, which are not looked at further. */
  ignored: string[];
}

export function listPluginDir(dir: string): PluginDirListing {
  const absolute = path.resolve(dir);
  let names: string[];
  try {
    names = readdirSync(absolute);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a directory' : `cannot be read (${code})`;
    throw new AgentfdError(
      'E_PLUGIN_DIR',
      `plugin directory ${absolute} ${why}. Set plugin_dir in the configuration or pass --plugin-dir with the directory that holds the agent libraries.`,
      { cause: error },
    );
  }
  names.sort();
  const libraries: string[] = [];
  const ignored: string[] = [];
  for (const name of names) {
    if (!name.startsWith('.') && LIBRARY_NAME.test(name)) libraries.push(path.join(absolute, name));
    else ignored.push(path.join(absolute, name));
  }
  return { dir: absolute, libraries, ignored };
}

function describeOwner(stats: Stats): string {
  return `uid ${stats.uid}`;
}

/**
 * Why `stats` of `what` (a file or directory) makes it unsafe, or null when it is safe: writable
 * by others, or owned by a user other than root and the user running agentfd.
 */
function unsafeReason(what: string, stats: Stats): string | null {
  if (IS_WINDOWS) return null;
  const mode = (stats.mode & 0o7777).toString(8).padStart(4, '0');
  if ((stats.mode & 0o002) !== 0) {
    return `${what} is writable by all users (mode ${mode}), so anyone could replace the code agentfd runs. Run: chmod o-w '${what}'`;
  }
  const me = process.getuid?.() ?? 0;
  if (stats.uid !== 0 && stats.uid !== me) {
    return `${what} belongs to ${describeOwner(stats)}, neither root nor the user running agentfd (uid ${me}), so that user could replace the code agentfd runs. Run: chown ${me} '${what}'`;
  }
  return null;
}

/** Throws E_INSECURE_PERMISSIONS when the plugin directory itself is unsafe (all its files are then refused). */
export function checkDirectorySafe(dir: string): string | null {
  return unsafeReason(dir, statSync(dir));
}

/**
 * Check one library file before it is loaded: a regular file (a symlink is followed and judged by
 * its target) that only its owner (root or us) can write.
 */
export function checkLibraryFile(file: string, dirProblem: string | null): void {
  if (dirProblem !== null) {
    throw new AgentLoadError('E_INSECURE_PERMISSIONS', file, `${file}: refused because the plugin directory ${dirProblem}`);
  }
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new AgentLoadError('E_NOT_REGULAR', file, `${file}: cannot be read (${code}); a dangling symlink? Fix or remove it.`, { cause: error });
  }
  if (!stats.isFile()) {
    throw new AgentLoadError('E_NOT_REGULAR', file, `${file}: not a regular file, so not a library. Remove it from the plugin directory.`);
  }
  const problem = unsafeReason(file, stats);
  if (problem !== null) {
    throw new AgentLoadError('E_INSECURE_PERMISSIONS', file, `${file}: refused: ${problem}`);
  }
}
