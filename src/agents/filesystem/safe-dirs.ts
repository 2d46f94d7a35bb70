/**
 * The guard that keeps a restore inside its target. Every parent of a restored entry is checked
 * component by component below the (realpath'ed) target: a missing one is created (0700 while the
 * restore runs), and one that is a symlink or not a directory stops the file with E_RESTORE_PATH.
 * So a symlink restored earlier in the same job, or planted in the target by someone else, can
 * never redirect a later write outside the target: nothing is ever written THROUGH a symlink.
 *
 * Used where the restore writes by path (systems other than Linux and Windows: restore-fs-paths.ts).
 * It checks, then writes: a directory swapped for a link in between is not seen. On Linux and
 * Windows the restore reaches every entry from the target opened once instead (src/platform/
 * confined-target.ts, pinned-target.ts), which leaves no such gap.
 */
import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { AgentfdError } from '../../errors.js';

export const RESTORE_DIR_MODE = 0o700;

export class SafeDirs {
  /**
   * Directories already checked. The restore itself never turns a directory into anything else
   * (a symlink or file over a directory is refused), so a checked directory stays one.
   */
  private readonly verified = new Set<string>();

  constructor(readonly root: string) {
    this.verified.add(root);
  }

  /**
   * Make sure `components` (relative to the root) are real directories, creating the missing
   * ones, and return the OS path of the last one. `agentPath` is only for the messages.
   */
  async ensure(components: readonly string[], agentPath: string): Promise<string> {
    let current = this.root;
    for (const component of components) {
      const next = path.join(current, component);
      if (!this.verified.has(next)) {
        await this.checkOrCreate(next, agentPath);
        this.verified.add(next);
      }
      current = next;
    }
    return current;
  }

  /** Record a directory the restore created or checked itself. */
  markVerified(osPath: string): void {
    this.verified.add(osPath);
  }

  private async checkOrCreate(osPath: string, agentPath: string): Promise<void> {
    let st = await lstatOrNull(osPath);
    if (st === null) {
      try {
        await mkdir(osPath, { mode: RESTORE_DIR_MODE });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new AgentfdError('E_RESTORE_IO', `restore of ${agentPath}: cannot create the directory ${osPath} (${codeOf(error)})`, { cause: error });
        }
      }
      st = await lstatOrNull(osPath);
    }
    if (st === null || st.isSymbolicLink() || !st.isDirectory()) {
      const what = st === null ? 'vanished' : st.isSymbolicLink() ? 'is a symlink' : 'is not a directory';
      throw new AgentfdError(
        'E_RESTORE_PATH',
        `restore of ${agentPath} refused: ${osPath} ${what}, and a restore never writes through or over it; ` +
          'restore into an empty target, or remove that entry first',
      );
    }
  }
}

export async function lstatOrNull(osPath: string) {
  try {
    return await lstat(osPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AgentfdError('E_RESTORE_IO', `cannot inspect ${osPath} (${codeOf(error)})`, { cause: error });
  }
}

export function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
}
