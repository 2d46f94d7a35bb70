/**
 * Where an entry is restored and what its link names, as bacula-fd's build_attr_output_fnames
 * (lib/attr.c): the name under where; or, with a RegexWhere (bregexp.ts), the expressions' rewrite
 * of the name (a directory's with its trailing '/'), of a hard link's first name always, and of a
 * symlink's target under prelinks (absolute or not, as bacula-fd 9.6).
 *
 * A RegexWhere has no where: its results are the paths themselves, restored in place. bacula-fd
 * writes a relative result under its own working directory and follows a ".." in it; agentfd
 * refuses that entry instead, with an error that says so.
 */
import { AgentfdError } from '../../../errors.js';
import { FT } from '../../attributes/lstat.js';
import { applyRegexWhere, type Bregexp } from './bregexp.js';
import type { EntryRecord } from './entry-record.js';
import type { RestoreRoot } from './restore-root.js';

export interface OutputNames {
  /** The path the entry is made at. */
  target: string;
  /** A symlink's target, or a hard link's first name (as the backup's names: restore-root maps it). */
  link: string;
}

/** An absolute name ("/x", or "C:/x" from Windows): a RegexWhere result must be one. */
const isAbsolute = (name: string): boolean => name.startsWith('/') || /^[A-Za-z]:\//.test(name);

/** `original` rewritten: refused when relative or with a "." or ".." component. */
function rewritten(regexWhere: readonly Bregexp[], original: string, what: string): string {
  const name = applyRegexWhere(regexWhere, original);
  const refuse = (why: string) =>
    new AgentfdError('E_RESTORE_PATH', `"${original}" is not restored: the RegexWhere made its ${what} "${name}", ${why}; change the expressions so that every name they make is an absolute path`);
  if (!isAbsolute(name)) throw refuse('a relative path (bacula-fd would write it under its own working directory)');
  if (name.split(/[/\\]/).some((part) => part === '.' || part === '..')) throw refuse('which has a "." or ".." component');
  return name;
}

export function outputNames(root: RestoreRoot, regexWhere: readonly Bregexp[] | undefined, prefixLinks: boolean, record: EntryRecord): OutputNames {
  if (!regexWhere) return { target: root.target(record.fname), link: record.link };
  const target = root.target(rewritten(regexWhere, record.fname, 'name'));
  if (record.type === FT.LNKSAVED) return { target, link: rewritten(regexWhere, record.link, "hard link's first name") };
  if (record.type === FT.LNK && prefixLinks) return { target, link: applyRegexWhere(regexWhere, record.link) };
  return { target, link: record.link };
}
