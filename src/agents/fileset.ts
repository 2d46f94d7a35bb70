/**
 * A job's fileset: include and exclude globs (picomatch: bash-style globs, `**` across
 * directories) over agent paths. No include globs means everything is included; an exclude always
 * wins. A directory on the way to an include glob is included too, so the filesystem agent can
 * descend into it (with include ["/srv/www/**"], "/srv" and "/srv/www" are walked, "/etc" is not).
 *
 * It lives with the agents because it answers their fileset_check: in the daemon for the jobs,
 * and in the agent host process for an isolated agent.
 */
import picomatch from 'picomatch';
import { NAMES_IGNORE_CASE } from '../platform/os.js';

export type FilesetCheck = (path: string) => boolean;

const OPTIONS = { dot: true, nocase: NAMES_IGNORE_CASE } as const;

export function buildFileset(include: string[] = [], exclude: string[] = []): FilesetCheck {
  const included = include.map((g) => picomatch(g, OPTIONS));
  const excluded = exclude.map((g) => picomatch(g, OPTIONS));
  // The fixed directory part of each include glob ("/srv/www" of "/srv/www/**/*.html").
  const bases = include.map((g) => picomatch.scan(g).base.replace(/\/+$/, ''));
  return (path: string) => {
    if (excluded.some((m) => m(path))) return false;
    if (included.length === 0) return true;
    if (included.some((m) => m(path))) return true;
    return bases.some((base) => base === path || base.startsWith(path === '/' ? '/' : `${path}/`));
  };
}
