/**
 * What some tests need from Debian packages (bacula-fd's bpipe plugin, openssl, pgrep...):
 * installed on first use where this process may (root, apt-get: scripts/debian-install.sh, which
 * starts no services), so `npm test` passes on a fresh machine as the README sets it up. Where it
 * cannot, the reason is one line: the caller skips with it in the test's name, and it is printed
 * once, so a skipped promise is never silent. AGENTFD_TEST_NO_INSTALL=1 installs nothing.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './native.js';

export interface DebianNeed {
  /** The Debian package that provides it. */
  pkg: string;
  /** What the tests use, for messages: "/usr/lib/bacula/bpipe-fd.so", "the openssl command". */
  what: string;
  /** Whether it is there. */
  present: () => boolean;
}

const INSTALL_SCRIPT = path.join(ROOT, 'scripts', 'debian-install.sh');
const outcomes = new Map<string, string | null>();

/** Whether `command` is an executable file in one of PATH's directories (or /usr/sbin, /sbin). */
export function onPath(command: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin'].filter(Boolean);
  return dirs.some((dir) => {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** A need met by a command on PATH. */
export function commandNeed(command: string, pkg: string): DebianNeed {
  return { pkg, what: `the ${command} command`, present: () => onPath(command) };
}

/** A need met by a file (a library, a header). */
export function fileNeed(file: string, pkg: string): DebianNeed {
  return { pkg, what: file, present: () => existsSync(file) };
}

/**
 * Null when `need` is there, installing its package first if it is missing and this process may;
 * otherwise why it is not, in one line (also printed on stderr, once per package and process).
 */
export function ensureDebianPackage(need: DebianNeed): string | null {
  if (need.present()) return null;
  const known = outcomes.get(need.pkg);
  if (known !== undefined) return known ?? `${need.what} is still missing after installing ${need.pkg}`;
  const reason = install(need);
  outcomes.set(need.pkg, reason);
  if (reason !== null) process.stderr.write(`agentfd tests: skipped: ${reason}\n`);
  return reason;
}

function install(need: DebianNeed): string | null {
  const missing = `${need.what} is missing (Debian package ${need.pkg})`;
  if (process.platform !== 'linux') return `${missing}: not Linux`;
  if (process.env.AGENTFD_TEST_NO_INSTALL) return `${missing} and AGENTFD_TEST_NO_INSTALL is set: apt-get install ${need.pkg} to run it`;
  if (process.getuid?.() !== 0) return `${missing} and the tests do not run as root, so they cannot install it: apt-get install ${need.pkg} as root to run it`;
  if (!onPath('apt-get') || !onPath('dpkg-query')) return `${missing} and there is no apt-get to install it with`;
  process.stderr.write(`agentfd tests: ${need.what} is missing: installing ${need.pkg} (apt-get, services not started)\n`);
  const result = spawnSync('bash', [INSTALL_SCRIPT, need.pkg], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], timeout: 20 * 60_000 });
  if (result.status !== 0) {
    const why = result.stderr.trim().split('\n').at(-1)?.replace(/^debian-install: /, '') || `ended with ${result.signal ?? `exit ${result.status}`}`;
    return `${missing} and installing it failed: ${why}`;
  }
  return need.present() ? null : `${need.what} is still missing after installing ${need.pkg}`;
}

/** " [SKIPPED: reason]" for a test or describe name, or "" when nothing is missing. */
export function skipNote(reason: string | null): string {
  return reason === null ? '' : ` [SKIPPED: ${reason}]`;
}

/** liblzo2, which agentfd serve's compression = LZO loads (src/platform/lzo.ts). */
export const LIBLZO2: DebianNeed = {
  pkg: 'liblzo2-2',
  what: 'liblzo2.so.2',
  present: () => /\sliblzo2\.so\.2\s/.test(spawnSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? ''),
};
