/**
 * A restore's RegexWhere, as bacula-fd reads and applies it (lib/breg.c): a list of expressions
 * `<sep>search<sep>replace<sep>[flags]`, one after the other, each ended by one character (a `,`
 * as the Director writes them). The Director sends one for `regexwhere=` and also for
 * `strip_prefix=`/`add_prefix=`/`add_suffix=` (`!<strip>!!i`, `!([^/])$!$1<suffix>!`, `!^!<prefix>!`).
 *
 * Each name goes through every expression in turn. An expression replaces the first match of its
 * search (a POSIX extended regex with REG_NEWLINE, `i`: ignoring case; `g` is accepted and does
 * nothing, as in bacula-fd) by its replacement, in which `$N` and `\N` (N one digit) stand for
 * group N, empty when the group matched nothing; every other character is itself. A name the
 * search does not match passes unchanged.
 */
import { posixRegExp } from '../../fileset/posix-regex.js';

/** The characters bacula-fd accepts as an expression's separator. */
const SEPARATORS = '!:;|,&%=~/<#';

export interface Bregexp {
  search: RegExp;
  replacement: string;
}

/** One expression read from `text` at `start`, and where the next one starts; null where bacula-fd's extract_regexp gives up. */
function readOne(text: string, start: number): { expression: Bregexp; next: number } | null {
  const sep = text[start];
  if (sep === undefined || !SEPARATORS.includes(sep)) return null;
  const parts: [string, string] = ['', ''];
  let part: 0 | 1 = 0;
  let i = start + 1;
  // The quirks are bacula-fd's: `\<sep>` puts the separator in the part and the separator then
  // also ends the part; `\\` puts one backslash in and the second is read again.
  for (; i < text.length; ) {
    if (text[i] === '\\' && (text[i + 1] === sep || text[i + 1] === '\\')) {
      parts[part] += text[i + 1];
      i += 1;
    } else if (text[i] === sep) {
      if (part === 1) break;
      part = 1;
      i += 1;
    } else {
      parts[part] += text[i];
      i += 1;
    }
  }
  if (part !== 1 || i >= text.length) return null; // the replacement was not closed
  let ignoreCase = false;
  // Flags: `i`, `g` and separators are read; the first other character ends them and is consumed.
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (c === 'i') ignoreCase = true;
    else if (c !== 'g' && c !== sep) {
      i += 1;
      break;
    }
  }
  try {
    return { expression: { search: posixRegExp(parts[0], ignoreCase, true), replacement: parts[1] }, next: i };
  } catch {
    return null; // regcomp refused it
  }
}

/**
 * The expressions of a RegexWhere, read as bacula-fd's get_bregexps reads them: up to the first
 * one that does not read (what follows it is ignored). Throws when not even the first one does:
 * bacula-fd then ends the job "Bad where regexp".
 */
export function parseRegexWhere(text: string): Bregexp[] {
  const list: Bregexp[] = [];
  for (let at = 0, one = readOne(text, 0); one !== null; one = readOne(text, at)) {
    list.push(one.expression);
    at = one.next;
  }
  if (list.length === 0) {
    throw new Error(`Bad where regexp. where=${text} (expected <sep>search<sep>replace<sep>[i], each separated by ",", <sep> one of ${SEPARATORS}, and search a POSIX extended regex)`);
  }
  return list;
}

/** `search`'s first match in `name` replaced by `replacement` with its group references filled in. */
function replaceFirst(expression: Bregexp, name: string): string {
  const match = expression.search.exec(name);
  if (match === null) return name;
  const filled = expression.replacement.replace(/[$\\]([0-9])/g, (_ref, n: string) => match[Number(n)] ?? '');
  return name.slice(0, match.index) + filled + name.slice(match.index + match[0].length);
}

/** `name` through every expression in turn, as bacula-fd's apply_bregexps. */
export function applyRegexWhere(list: readonly Bregexp[], name: string): string {
  return list.reduce((current, expression) => replaceFirst(expression, current), name);
}
