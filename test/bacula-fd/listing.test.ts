/**
 * `estimate listing` lines (director/listing.ts) against the lines the real bacula-fd 9.6 printed
 * in the lab for the same kinds of files: setuid, setgid without x, sticky, a fifo, a symlink and
 * its target, owner names, a group name cut at 8, numeric owners, the ctime.
 */
import { describe, expect, it } from 'vitest';
import { FT } from '../../src/bacula-fd/attributes/lstat.js';
import { listingLine, modeText, type ListedEntry } from '../../src/bacula-fd/director/listing.js';

const NAMES: Record<number, string> = { 0: 'root', 5: 'games', 65534: 'nobody' };
const GROUPS: Record<number, string> = { 0: 'root', 65534: 'nogroup', 999: 'systemd-journal' };
const names = { user: (uid: number) => NAMES[uid] ?? null, group: (gid: number) => GROUPS[gid] ?? null };
/** 2026-12-07 22:14:22 local time, in seconds. */
const ctime = BigInt(new Date(2026, 11, 7, 22, 14, 22).getTime() / 1000);

function entry(over: Partial<ListedEntry>): ListedEntry {
  return { type: FT.REG, fname: '/tmp/jc-lab/list/a', link: '', mode: 0o100644, nlink: 1n, uid: 0, gid: 0, size: 2n, ctime, ...over };
}

describe('estimate listing as bacula-fd writes it', () => {
  it('writes modes as ls does, with s/S, t and f for a fifo', () => {
    expect(modeText(0o104755)).toBe('-rwsr-xr-x');
    expect(modeText(0o102644)).toBe('-rw-r-Sr--');
    expect(modeText(0o041777)).toBe('drwxrwxrwt');
    expect(modeText(0o010644)).toBe('frw-r--r--');
    expect(modeText(0o120777)).toBe('lrwxrwxrwx');
  });

  it('writes the lines the real bacula-fd wrote for the same files', () => {
    expect(listingLine(entry({ mode: 0o104755, nlink: 2n, size: 3n }), names)).toBe('-rwsr-xr-x   2 root     root                      3 2026-12-07 22:14:22  /tmp/jc-lab/list/a\n');
    expect(listingLine(entry({ type: FT.LNK, fname: '/tmp/jc-lab/list/link', link: 'a', mode: 0o120777, size: 1n }), names)).toBe('lrwxrwxrwx   1 root     root                      1 2026-12-07 22:14:22  /tmp/jc-lab/list/link -> a\n');
    expect(listingLine(entry({ type: FT.SPEC, fname: '/tmp/jc-lab/list/fifo', mode: 0o010644, size: 0n }), names)).toBe('frw-r--r--   1 root     root                      0 2026-12-07 22:14:22  /tmp/jc-lab/list/fifo\n');
    expect(listingLine(entry({ fname: '/tmp/jc-lab/list/d/b', uid: 65534, gid: 65534 }), names)).toBe('-rw-r--r--   1 nobody   nogroup                   2 2026-12-07 22:14:22  /tmp/jc-lab/list/d/b\n');
    expect(listingLine(entry({ fname: '/tmp/jc-lab/list/longname', uid: 5, gid: 999 }), names)).toBe('-rw-r--r--   1 games    systemd-                  2 2026-12-07 22:14:22  /tmp/jc-lab/list/longname\n');
    expect(listingLine(entry({ fname: '/tmp/jc-lab/list/nouser', uid: 12345, gid: 54321 }), names)).toBe('-rw-r--r--   1 12345    54321                     2 2026-12-07 22:14:22  /tmp/jc-lab/list/nouser\n');
    // A directory is sent as FT_DIREND named with a slash; it is listed without.
    expect(listingLine(entry({ type: FT.DIREND, fname: '/tmp/jc-lab/list/d/', mode: 0o040755, nlink: 2n, size: 4096n }), names)).toBe('drwxr-xr-x   2 root     root                   4096 2026-12-07 22:14:22  /tmp/jc-lab/list/d\n');
  });

  it('does not show the first name of a hard link as a target', () => {
    expect(listingLine(entry({ type: FT.LNKSAVED, fname: '/tmp/jc-lab/list/hard', link: '/tmp/jc-lab/list/a' }), names)).not.toContain('->');
  });
});
