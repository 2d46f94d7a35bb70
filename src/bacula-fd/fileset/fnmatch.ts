/**
 * Bacula's own fnmatch (lib/fnmatch.c), which bacula-fd's FileSet matching calls instead of
 * glibc's: `*` and `?` cross '/' unless FNM_PATHNAME, byte-wise ranges on signed chars, backslash
 * escapes, ASCII-only case folding. Checked against libbac-9.6.7's on 120,000 random cases.
 */
import { encodeName } from '../../platform/byte-names.js';

export interface FnmatchFlags {
  /** FNM_PATHNAME: `*`, `?` and `[..]` do not match `/` (only under enhanced wild). */
  pathname?: boolean;
  /** FNM_CASEFOLD: ASCII letters match regardless of case (ignore case = yes). */
  casefold?: boolean;
}

const SLASH = 0x2f;

/** A byte as the C code's (signed) char, for range comparisons. */
const signed = (b: number): number => (b > 127 ? b - 256 : b);
const fold = (b: number, casefold: boolean): number => (casefold && b >= 0x41 && b <= 0x5a ? b + 32 : b);

/**
 * `[..]` at pattern[at] (just past the `[`) against one byte: the index past the `]` when it
 * matches, -1 when it does not, null when the bracket is not closed (then `[` is an ordinary
 * character). `!` or `^` negates; a `]` first is literal; `\` escapes; ranges compare signed chars.
 */
function rangeMatch(pattern: Uint8Array, at: number, test: number, flags: FnmatchFlags): number | null {
  const byte = (i: number) => (i < pattern.length ? pattern[i]! : 0);
  const casefold = flags.casefold === true;
  let i = at;
  const negate = byte(i) === 0x21 || byte(i) === 0x5e;
  if (negate) i++;
  const t = fold(test, casefold);
  let ok = false;
  let c = byte(i++);
  do {
    if (c === 0x5c) c = byte(i++);
    if (c === 0) return null;
    if (c === SLASH && flags.pathname) return -1;
    c = fold(c, casefold);
    const c2raw = byte(i + 1);
    if (byte(i) === 0x2d && c2raw !== 0 && c2raw !== 0x5d) {
      i += 2;
      let c2 = c2raw;
      if (c2 === 0x5c) c2 = byte(i++);
      if (c2 === 0) return null;
      c2 = fold(c2, casefold);
      if (signed(c) <= signed(t) && signed(t) <= signed(c2)) ok = true;
    } else if (c === t) ok = true;
    c = byte(i++);
  } while (c !== 0x5d);
  return ok === negate ? -1 : i;
}

function matchBytes(pattern: Uint8Array, pi: number, s: Uint8Array, si: number, flags: FnmatchFlags): boolean {
  const casefold = flags.casefold === true;
  for (;;) {
    if (pi >= pattern.length) return si >= s.length;
    let c = pattern[pi++]!;
    if (c === 0x3f) {
      // ?
      if (si >= s.length || (s[si] === SLASH && flags.pathname)) return false;
      si++;
      continue;
    }
    if (c === 0x2a) {
      // *: runs of stars are one; a trailing star takes the rest (not past a / with FNM_PATHNAME)
      while (pi < pattern.length && pattern[pi] === 0x2a) pi++;
      if (pi >= pattern.length) return !flags.pathname || s.indexOf(SLASH, si) < 0;
      if (pattern[pi] === SLASH && flags.pathname) {
        const slash = s.indexOf(SLASH, si);
        if (slash < 0) return false;
        si = slash;
        continue;
      }
      for (; si < s.length; si++) {
        if (matchBytes(pattern, pi, s, si, flags)) return true;
        if (s[si] === SLASH && flags.pathname) break;
      }
      return false;
    }
    if (c === 0x5b) {
      // [
      if (si >= s.length || (s[si] === SLASH && flags.pathname)) return false;
      const next = rangeMatch(pattern, pi, s[si]!, flags);
      if (next === -1) return false;
      if (next !== null) {
        pi = next;
        si++;
        continue;
      }
      // not a closed bracket: `[` is an ordinary character
    } else if (c === 0x5c) {
      // \ quotes the next character; a trailing \ is itself
      if (pi < pattern.length) c = pattern[pi++]!;
    }
    if (si >= s.length || fold(c, casefold) !== fold(s[si]!, casefold)) return false;
    si++;
  }
}

/**
 * Bacula's own fnmatch (libbac, which bacula-fd's find code binds to, not glibc's): on bytes;
 * without FNM_PATHNAME `*` and `?` cross `/`; `[..]` classes with `!`/`^`, ranges, `\` escapes;
 * an unclosed `[` is literal; FNM_CASEFOLD folds ASCII letters only. True when it matches.
 */
export function baculaFnmatch(pattern: string, string: string, flags: FnmatchFlags = {}): boolean {
  // The name's own bytes (platform/byte-names.ts): a Latin-1 é is the one byte 0xE9 here, as in C.
  return matchBytes(encodeName(pattern), 0, encodeName(string), 0, flags);
}
