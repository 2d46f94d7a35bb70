/**
 * The one place that converts between operating-system paths and agent paths, so the backup and
 * the restore cannot disagree about the mapping.
 *
 * Agent paths are absolute and '/'-separated on every platform:
 * - POSIX: the real path, unchanged ("/home/ann/notes.txt").
 * - Windows: the drive letter becomes the first component, colon kept: `C:\a\b` -> "/C:/a/b"
 *   (the letter upper-cased); a UNC path `\\server\share\x` -> "/UNC/server/share/x".
 * On restore the agent path is placed under the target; on Windows the drive colon is dropped
 * ("/C:/x" -> `<target>\C\x`), since a colon inside a Windows path names an alternate data stream.
 *
 * Names on a Windows restore. A backup made on POSIX can hold names Windows cannot, and refusing
 * them would lose files, so on Windows every component but the drive is written through
 * windowsName(), one rule after the other, each applied to the result of the one before:
 *   0. a name that needs none of rules 2 to 4 is written as it is, "%41" included: a Windows
 *      file restored to Windows keeps its name, whatever it holds;
 *   1. in a name that does need them, every '%' followed by two hex digits (either case) becomes
 *      "%25" first: "a:%41" -> "a%3A%2541", while "50%" or "%zz" stay as they are;
 *   2. every character Windows forbids in a name, `< > : " | ? * \` and U+0001..U+001F (U+0000
 *      never reaches here: an agent path cannot hold it), becomes '%' and its code in two upper-case
 *      hex digits: "a:b" -> "a%3Ab", "a\b" -> "a%5Cb" (a backslash is an ordinary character of a
 *      POSIX name, and of an agent path; on Windows it would be a separator);
 *   3. a trailing '.' or ' ', which Windows would silently strip, becomes "%2E" or "%20"; only the
 *      last one needs it, since the name then ends in a hex digit: "x.." -> "x.%2E";
 *   4. a reserved device name (CON, PRN, AUX, NUL, CONIN$, CONOUT$, COM0-COM9, COM¹²³, LPT0-LPT9,
 *      LPT¹²³; any case), alone or before an extension, gets its first character as %XX:
 *      "CON" -> "%43ON", "aux.log" -> "%61ux.log". The part before the first '.' is compared, with
 *      trailing spaces ignored ("con .txt" is a device too). COM0/LPT0 (in Microsoft's list of
 *      reserved names) and CONIN$/CONOUT$ (which CreateFile opens as the console) are included to
 *      be safe: escaping one name more than needed costs nothing, since the rule stays reversible.
 * Every escape these rules write is '%' and two hex digits, and after rule 1 a '%' that the
 * original name had is never followed by two hex digits; so for a mapped name unmapWindowsName()
 * (each "%XX" back to its character) gives back the original exactly. Which names were mapped the
 * restore says (a warning per name). POSIX restores write names as they are, nothing mapped: a Windows backup
 * restored on Linux gives "<target>/C:/Users/...".
 * The restore logs each name it wrote differently (planRestorePath's `mapped`), and refuses a path
 * that would land on one it already wrote in that run (WindowsNameClaims: Windows ignores case).
 */
import { AgentfdError } from '../../errors.js';
import { agentPathProblem } from '../types.js';
import { IS_WINDOWS } from '../../platform/os.js';
import { RESERVED_DEVICE, WINDOWS_FORBIDDEN, deviceBase, windowsCannotHold } from '../../platform/windows-names.js';


/** The agent path of the absolute, normalised OS path `osPath` (see the mapping above). */
export function toAgentPath(osPath: string, windows = IS_WINDOWS): string {
  if (!windows) return osPath;
  const unc = /^[\\/]{2}([^\\/]+)[\\/]+([^\\/]+)(.*)$/.exec(osPath);
  if (unc) return `/UNC/${unc[1]}/${unc[2]}${toSlashes(unc[3] ?? '')}`;
  const drive = /^([A-Za-z]):(.*)$/.exec(osPath);
  if (!drive) throw new AgentfdError('E_AGENT_OPTION', `${osPath}: not a drive or UNC path; give paths like C:\\Users\\ann`);
  return `/${drive[1]!.toUpperCase()}:${toSlashes(drive[2] ?? '')}`;
}

function toSlashes(rest: string): string {
  const trimmed = rest.replace(/[\\/]+/g, '/').replace(/\/$/, '');
  return trimmed === '' || trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

/** The agent path of `name` inside the directory whose agent path is `parent`. */
export function childAgentPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** A component that a Windows restore writes under another name. */
export interface MappedName {
  /** The agent path up to and including the component ("/data/a:b.txt"). */
  agentPath: string;
  original: string;
  written: string;
  /** Why, for the log ("Windows cannot hold ':' in a name"). */
  why: string;
}

export interface RestorePlan {
  /** The components to create under the restore target. */
  components: string[];
  /** The components written under another name than the backup's, in path order. */
  mapped: MappedName[];
}

// A '%' that could be read as an escape. Rule 1.
const PERCENT_BEFORE_HEX = /%(?=[0-9A-Fa-f]{2})/g;

/** '%' and the code of `ch` in two upper-case hex digits; every character escaped is ASCII. */
function escapeChar(ch: string): string {
  return `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
}

/** How a forbidden character reads in a message: itself, or its code point when invisible. */
function showChar(ch: string): string {
  return ch < ' ' ? `U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}` : `'${ch}'`;
}

/**
 * The name a Windows restore writes for the component `name` (the rules in the module comment),
 * and why each change was made (empty when the name is written as it is).
 */
export function windowsName(name: string): { written: string; why: string[] } {
  const why: string[] = [];
  if (!windowsCannotHold(name)) return { written: name, why }; // rule 0
  let written = name.replace(PERCENT_BEFORE_HEX, '%25');
  if (written !== name) why.push("a '%' before two hex digits is written %25 so that the name can be read back");
  const forbidden = new Set<string>();
  written = written.replace(WINDOWS_FORBIDDEN, (ch) => {
    forbidden.add(ch);
    return escapeChar(ch);
  });
  if (forbidden.size > 0) why.push(`Windows cannot hold ${[...forbidden].map(showChar).join(', ')} in a name`);
  const last = written.slice(-1);
  if (last === '.' || last === ' ') {
    written = written.slice(0, -1) + escapeChar(last);
    why.push(`Windows would drop a trailing ${last === '.' ? "'.'" : 'space'}`);
  }
  const base = deviceBase(written);
  if (RESERVED_DEVICE.test(base)) {
    written = escapeChar(written[0]!) + written.slice(1);
    why.push(`${JSON.stringify(base)} is a device name on Windows`);
  }
  return { written, why };
}

/** The original name of a name written by windowsName(): each "%XX" back to its character. */
export function unmapWindowsName(written: string): string {
  return written.replace(/%([0-9A-Fa-f]{2})/g, (_escape, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * What a restore creates under its target for `agentPath`, or an E_RESTORE_PATH error saying why
 * the path is refused. "/" gives no components (the target itself). On Windows the names are
 * mapped (module comment), and `mapped` lists each component written differently.
 */
export function planRestorePath(agentPath: string, windows = IS_WINDOWS): RestorePlan {
  const refuse = (why: string) =>
    new AgentfdError('E_RESTORE_PATH', `restore of ${JSON.stringify(agentPath)} refused: ${why}; nothing was written for it`);
  const problem = agentPathProblem(agentPath);
  if (problem) throw refuse(problem);
  if (agentPath === '/') return { components: [], mapped: [] };
  const parts = agentPath.slice(1).split('/');
  for (const part of parts) {
    if (part === '.' || part === '..' || part === '' || part.includes('\0')) throw refuse(`bad component ${JSON.stringify(part)}`);
  }
  if (!windows) return { components: parts, mapped: [] };
  const mapped: MappedName[] = [];
  const components = parts.map((part, i) => {
    if (isDrive(part, i)) return part.slice(0, 1);
    const { written, why } = windowsName(part);
    if (written !== part) mapped.push({ agentPath: `/${parts.slice(0, i + 1).join('/')}`, original: part, written, why: why.join('; ') });
    return written;
  });
  return { components, mapped };
}

/** The drive ("C:" first) keeps its own, older treatment on Windows: the letter alone, not reported. */
function isDrive(part: string, index: number): boolean {
  return index === 0 && /^[A-Za-z]:$/.test(part);
}

/** The name a Windows restore writes for the component `part` at `index` in its agent path. */
function writtenOnWindows(part: string, index: number): string {
  return isDrive(part, index) ? part.slice(0, 1) : windowsName(part).written;
}

/** The components to create under the restore target for `agentPath` (see planRestorePath). */
export function restoreComponents(agentPath: string, windows = IS_WINDOWS): string[] {
  return planRestorePath(agentPath, windows).components;
}

/**
 * A name as Windows compares it: NTFS upper-cases each UTF-16 unit through its upcase table (a
 * one-to-one mapping) and does not normalise. So: each unit whose upper case is one unit becomes
 * it, and the rest stay ("ß" is not "SS", and a surrogate half is never changed); no NFC/NFD
 * folding, because "é" precomposed and "e" + U+0301 are two different files on NTFS.
 */
export function foldWindowsName(name: string): string {
  if (/^[\u0000-\u007f]*$/.test(name)) return name.toUpperCase();
  let folded = '';
  for (let i = 0; i < name.length; i++) {
    const unit = name[i]!;
    const upper = unit.toUpperCase();
    folded += upper.length === 1 ? upper : unit;
  }
  return folded;
}

interface Claim {
  /** The component as the backup had it. */
  original: string;
  children: Map<string, Claim> | null;
}

/**
 * The paths one Windows restore has written, keyed the way Windows compares names, so that a
 * second agent path landing on the same file ("/d/README", then "/d/Readme") is refused instead of
 * overwriting the first. A tree of components, not a set of whole paths: a restore of millions of
 * files then holds each file's own name once rather than every full path, and a clash is found at
 * the level where it happens (a file under "/d/a" clashes with the directory "/d/A" written first).
 */
export class WindowsNameClaims {
  private readonly root = new Map<string, Claim>();

  /**
   * Record that `agentPath` is written as `components` (from planRestorePath), or throw
   * E_RESTORE_PATH naming the path already written there. A refused path records nothing.
   */
  claim(agentPath: string, components: readonly string[]): void {
    const originals = agentPath === '/' ? [] : agentPath.slice(1).split('/');
    const keys = components.map(foldWindowsName);
    // Look for a clash before recording anything, so that a refused path leaves no trace.
    let level: Map<string, Claim> | null = this.root;
    for (let i = 0; i < keys.length && level !== null; i++) {
      const claim = level.get(keys[i]!);
      if (claim === undefined) break;
      if (claim.original !== originals[i]) throw clash(agentPath, originals.slice(0, i), claim.original, components[i]!);
      level = claim.children;
    }
    let into = this.root;
    for (let i = 0; i < keys.length; i++) {
      let claim = into.get(keys[i]!);
      if (claim === undefined) {
        claim = { original: originals[i]!, children: null };
        into.set(keys[i]!, claim);
      }
      if (i < keys.length - 1) into = claim.children ??= new Map();
    }
  }
}

/** The refusal of `agentPath`, written as `written` where `first` (under `parents`) already was. */
function clash(agentPath: string, parents: readonly string[], first: string, written: string): AgentfdError {
  const other = `/${[...parents, first].join('/')}`;
  // Worked out again only here, for the message: the claims keep no written names.
  const firstWritten = writtenOnWindows(first, parents.length);
  const why =
    firstWritten === written
      ? `on Windows both it and ${JSON.stringify(other)} are written as ${JSON.stringify(written)}`
      : `Windows does not tell ${JSON.stringify(written)} from ${JSON.stringify(firstWritten)} (its file names ignore case)`;
  return new AgentfdError(
    'E_RESTORE_PATH',
    `restore of ${JSON.stringify(agentPath)} refused: ${why}, so restoring it would overwrite ${JSON.stringify(other)}, ` +
      'restored earlier in this run; nothing was written for it (to get it back, restore it alone, with --include, into another target)',
  );
}
