/**
 * A hard link (FT_LNKSAVED): the other name of a file whose first name this restore made earlier,
 * linked to it as bacula-fd links it (link(2): a first name that is a symlink is linked itself,
 * not followed). Under a where the first name must resolve inside it, and both names are reached
 * through the restore's root, so no swap meanwhile can link a file outside where.
 */
import { linkSync } from 'node:fs';
import { AgentfdError, messageOf } from '../../../errors.js';
import type { RestoreRoot } from './restore-root.js';

/** Link `target` to the restored first name `link` (the name as backed up). */
export async function restoreHardLink(root: RestoreRoot, target: string, link: string): Promise<void> {
  let source: string;
  try {
    source = await root.linkSource(link);
  } catch (error) {
    throw new AgentfdError(error instanceof AgentfdError ? error.code : 'E_RESTORE_LINK', `Could not hard link ${target} -> ${link}: ${messageOf(error)}`);
  }
  await root.at(source, (from) => root.at(target, (to) => linkSync(from, to)));
}
