/** Processes of a test's child, found in /proc (Linux) rather than with pgrep, which procps may not provide. */
import { readFileSync, readdirSync } from 'node:fs';

/** The PIDs of `parent`'s children whose command line contains `match` (pgrep -P parent -f match). */
export function childPids(parent: number, match: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // stat's fields after the command name (which may hold spaces and parentheses): state, ppid, ...
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').includes(match)) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}
