/**
 * POSIX extended regular expressions, as bacula-fd compiles FileSet regexes (regcomp with
 * REG_EXTENDED in a UTF-8 locale), translated to JavaScript RegExps. Checked against glibc on
 * 180,000 random cases; ranges with a non-ASCII end are accepted here and refused there.
 */

/** glibc's \w in a UTF-8 locale: alphanumerics and underscore. */
const WORD = '[\\p{Alphabetic}\\p{Nd}_]';

/** POSIX character classes, as JS class contents, for a UTF-8 locale. */
const CLASSES: Record<string, string> = {
  alpha: '\\p{Alphabetic}', digit: '0-9', alnum: '\\p{Alphabetic}\\p{Nd}', upper: '\\p{Uppercase}', lower: '\\p{Lowercase}',
  space: '\\s', blank: '\\t\\p{Zs}', punct: '\\p{P}\\p{S}', xdigit: '0-9A-Fa-f', cntrl: '\\p{Cc}',
  graph: '\\p{L}\\p{M}\\p{N}\\p{P}\\p{S}', print: '\\p{L}\\p{M}\\p{N}\\p{P}\\p{S}\\p{Zs}',
};

/** GNU escapes of glibc's regcomp; any other escaped character is that character. */
const GNU_ESCAPES: Record<string, string> = {
  w: WORD, W: `[^${WORD.slice(1, -1)}]`, s: '\\s', S: '\\S', '`': '^', "'": '$',
  '<': `(?<!${WORD})(?=${WORD})`, '>': `(?<=${WORD})(?!${WORD})`,
  b: `(?:(?<!${WORD})(?=${WORD})|(?<=${WORD})(?!${WORD}))`, B: `(?:(?<=${WORD})(?=${WORD})|(?<!${WORD})(?!${WORD}))`,
};

/** REG_NEWLINE's `^` and `$`: at either end of the name or next to a newline (only \n, not JS's other line ends). */
const LINE_ANCHORS: Record<string, string> = { '^': '(?<![^\\n])', $: '(?![^\\n])' };

const literal = (c: string): string => (/[\^$\\.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c);
const classLiteral = (c: string): string => (/[\\\]\[^-]/.test(c) ? `\\${c}` : c);

/** One element of a POSIX bracket expression at chars[i]: its JS text, and a single character if it is one. */
function bracketElement(chars: string[], i: number): { text: string; char: string | null; end: number } {
  const c = chars[i]!;
  const kind = chars[i + 1];
  if (c === '[' && (kind === ':' || kind === '.' || kind === '=')) {
    let j = i + 2;
    while (j + 1 < chars.length && !(chars[j] === kind && chars[j + 1] === ']')) j++;
    if (j + 1 >= chars.length) throw new Error('Unmatched [, [^, [:, [., or [=');
    const name = chars.slice(i + 2, j).join('');
    if (kind === ':') {
      const cls = CLASSES[name];
      if (cls === undefined) throw new Error(`Invalid character class name ${name}`);
      return { text: cls, char: null, end: j + 2 };
    }
    // [.x.] and [=x=]: single characters only (no locale collating elements)
    if ([...name].length !== 1) throw new Error(`Invalid collation character ${name}`);
    return { text: classLiteral(name), char: name, end: j + 2 };
  }
  return { text: classLiteral(c), char: c, end: i + 1 };
}

/**
 * A POSIX bracket expression starting past its `[`: backslash is literal, `]` first is literal.
 * `newline` (REG_NEWLINE): a non-matching list never matches a newline.
 */
function bracket(chars: string[], start: number, newline: boolean): { text: string; end: number } {
  let i = start;
  const negate = chars[i] === '^';
  if (negate) i++;
  let body = '';
  for (let first = true; ; first = false) {
    if (i >= chars.length) throw new Error('Unmatched [, [^, [:, [., or [=');
    if (chars[i] === ']' && !first) break;
    const from = bracketElement(chars, i);
    i = from.end;
    if (chars[i] === '-' && i + 1 < chars.length && chars[i + 1] !== ']') {
      const to = bracketElement(chars, i + 1);
      if (from.char === null || to.char === null) throw new Error('Invalid range end');
      if (to.char.codePointAt(0)! < from.char.codePointAt(0)!) throw new Error('Invalid range end');
      body += `${from.text}-${to.text}`;
      i = to.end;
    } else body += from.text;
  }
  return { text: `[${negate ? '^' : ''}${body}${negate && newline ? '\\n' : ''}]`, end: i + 1 };
}

/** A `{m}`, `{m,}`, `{m,n}` or `{,n}` interval at chars[i], as JS; throws when malformed (as regcomp). */
function interval(chars: string[], i: number): { text: string; end: number } {
  const close = chars.indexOf('}', i);
  const body = close < 0 ? '' : chars.slice(i + 1, close).join('');
  const m = /^(\d*)(,?)(\d*)$/.exec(body);
  if (close < 0 || !m || (m[1] === '' && m[2] === '') || (m[2] === '' && m[3] !== '')) throw new Error('Invalid content of \\{\\}');
  const min = m[1] === '' ? 0 : Number(m[1]);
  if (m[3] !== '' && Number(m[3]) < min) throw new Error('Invalid content of \\{\\}');
  return { text: `{${min}${m[2]}${m[3]}}`, end: close + 1 };
}

/**
 * A POSIX extended regular expression (regcomp REG_EXTENDED, as bacula-fd compiles R/RD/RF items)
 * as a JS RegExp that finds a match where regexec would. Translated: bracket expressions (literal
 * backslash, leading `]`, [:class:], [.c.], [=c=]), `{,n}`, stacked repetitions (`a**`), an
 * unmatched `)` (literal), GNU escapes (\w \W \s \S \b \B \< \> \` \'), any other escaped character
 * as itself (but with ignore case an escaped lower-case ASCII letter matches nothing, as in glibc).
 * Errors where regcomp fails (unclosed `(`/`[`, bad `{}`, nothing to repeat).
 * `newline` is regcomp's REG_NEWLINE (bacula-fd's RegexWhere): `.` and a non-matching list do not
 * match a newline, and `^`/`$` also match just after/before one.
 * Approximations: classes, \w and case folding follow Unicode (glibc in a UTF-8 locale; in the C
 * locale glibc works on bytes and ASCII); no multi-character collating elements. The match found is
 * JavaScript's leftmost-first, where regexec's is leftmost-longest: they differ only where an
 * alternation's earlier branch matches less than a later one (`(a|ab)`), which matters to what a
 * substitution replaces, not to whether a name matches.
 */
export function posixRegExp(source: string, ignoreCase = false, newline = false): RegExp {
  const chars = [...source];
  let out = '';
  let atom = -1; // where the last repeatable atom starts in `out`, or -1
  let repeated = false; // the last thing emitted was a repetition
  const groups: { start: number; n: number }[] = [];
  let opened = 0;
  const closed = new Set<number>(); // \N may only refer to a group already closed
  const emitAtom = (text: string) => {
    atom = out.length;
    out += text;
    repeated = false;
  };
  for (let i = 0; i < chars.length; ) {
    const c = chars[i]!;
    if (c === '*' || c === '+' || c === '?' || c === '{') {
      if (atom < 0) throw new Error('Invalid preceding regular expression');
      const q = c === '{' ? interval(chars, i) : { text: c, end: i + 1 };
      // JS has no `a**`: repeat the repetition as a group
      if (repeated) out = `${out.slice(0, atom)}(?:${out.slice(atom)})`;
      out += q.text;
      repeated = true;
      i = q.end;
      continue;
    }
    i++;
    if (c === '(') {
      groups.push({ start: out.length, n: ++opened });
      out += '(';
      atom = -1;
    } else if (c === ')' && groups.length > 0) {
      const group = groups.pop()!;
      out += ')';
      closed.add(group.n);
      atom = group.start;
      repeated = false;
    } else if (c === '|' || c === '^' || c === '$') {
      out += newline && c !== '|' ? LINE_ANCHORS[c] : c;
      atom = -1;
    } else if (c === '.') emitAtom(newline ? '[^\\n]' : '.');
    else if (c === '[') {
      const b = bracket(chars, i, newline);
      emitAtom(b.text);
      i = b.end;
    } else if (c === '\\') {
      const e = chars[i++];
      if (e === undefined) throw new Error('Trailing backslash');
      if (/[1-9]/.test(e)) {
        if (!closed.has(Number(e))) throw new Error('Invalid back reference');
        emitAtom(`\\${e}`);
      }
      else if (e === '`' || e === "'" || e === '<' || e === '>' || e === 'b' || e === 'B') {
        out += GNU_ESCAPES[e]!; // anchors: nothing to repeat
        atom = -1;
      } else if (GNU_ESCAPES[e] !== undefined) emitAtom(GNU_ESCAPES[e]);
      // glibc quirk: with REG_ICASE an escaped lower-case ASCII letter matches nothing at all
      else emitAtom(ignoreCase && /[a-z]/.test(e) ? '[]' : literal(e));
    } else emitAtom(literal(c)); // includes an unmatched `)`
  }
  if (groups.length > 0) throw new Error('Unmatched ( or \\(');
  return new RegExp(out, ignoreCase ? 'sui' : 'su');
}
