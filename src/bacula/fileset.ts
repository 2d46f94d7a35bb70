/**
 * The FileSet a Director sends after `fileset`: one item per frame, until BNET_EOD (filed/job.c
 * add_fileset), and Bacula 9.6's rules for which files of it are saved with which options
 * (findlib/find.c accept_file, findlib/find_one.c).
 *
 * Items: `I` starts an Include block, `E` an Exclude block. In a block, `O <letters>` and the pattern
 * lines (`W`/`WD`/`WF`/`WB` wildcards, `R`/`RD`/`RF` regexes, `B`, `X`, `XD`, `G`, `D`, `T`) belong
 * to the current Options block, which ends at `N`; `F <path>` names a file, `P <string>` a plugin
 * command, `Z <name>` the block's Exclude Dir Containing. What a real 9.6.7 Director sends (seen in
 * bacula-fd's debug log): `I`, [`Z name`], per Options resource `O letters` (even when empty), its
 * R, RD, RF, W, WD, WF lines, then `N`; the `F` lines, `N`; the `P` lines, `N`. Exclude blocks come
 * after all Include blocks: `E`, their `F` lines, `N`, `N` (the Director allows no Options in them).
 * A `wildfile` without a `/` is sent as `WF` too (`WB` only with enhanced wild, which the 9.6
 * Director never sends: its `enhancedwild = yes` emits the letter K).
 */

export type Digest = 'md5' | 'sha1' | 'sha256' | 'sha512';

export interface IncludeOptions {
  /** The digest the FileSet's `signature =` asks for, or null. */
  digest: Digest | null;
  /** GZIP level (compression = GZIPn), or null for none. */
  gzip: number | null;
  /** `exclude = yes` options block: its patterns exclude. */
  exclude: boolean;
  /** onefs = no (f): cross file systems. */
  crossFilesystems: boolean;
  /** recurse = no (h). */
  noRecursion: boolean;
  /** sparse = yes (s): runs of zeros are not sent (SPARSE_DATA streams). */
  sparse: boolean;
  /** hardlinks = yes (the default; H turns it off): a file's further links are sent as links. */
  hardlinks: boolean;
  /** readfifo = yes (r): a fifo's data is read and saved like a file's. */
  readFifo: boolean;
  /** keepatime = yes (k): put back the access time after reading a file. */
  keepAtime: boolean;
  /** noatime = yes (K): open with O_NOATIME where allowed. */
  noAtime: boolean;
  /** mtimeonly = yes (m): an incremental compares the mtime only (not the ctime). */
  mtimeOnly: boolean;
  /** honor nodump flag = yes (N). */
  honorNodump: boolean;
  /** ignore case = yes (i): patterns match regardless of case. */
  ignoreCase: boolean;
  /** aclsupport / xattrsupport (A, X): save POSIX ACLs and extended attributes (xacl.ts). */
  acl: boolean;
  xattr: boolean;
  /** Enhanced wild (W): wildcards match with FNM_PATHNAME, WB ones against the base name. */
  enhancedWild: boolean;
  /** `accurate =` letters (C...:), what accurate mode compares; '' when the block says none. */
  accurate: string;
  /** `W` wildcards (`wild =`): matched against the full path of files and directories. */
  wild: string[];
  /** `WD` wildcards (`wilddir =`): directories only, full path. */
  wildDir: string[];
  /** `WF` wildcards (`wildfile =`): non-directories only, full path. */
  wildFile: string[];
  /** `WB` wildcards: non-directories only, base name under enhanced wild. */
  wildBase: string[];
  /** `R`, `RD`, `RF` regexes (POSIX extended, see posixRegExp), like the wildcards. */
  regex: RegExp[];
  regexDir: RegExp[];
  regexFile: RegExp[];
  /** `X` fstype / `XD` drivetype lists, `B` base job names, `G` option plugin: kept, not applied. */
  fsTypes: string[];
  driveTypes: string[];
  base: string[];
  plugin: string | null;
}

/** The options of a block that says nothing: Bacula's defaults. */
export function defaultOptions(): IncludeOptions {
  return {
    digest: null, gzip: null, exclude: false, crossFilesystems: false, noRecursion: false, sparse: false, hardlinks: true, readFifo: false,
    keepAtime: false, noAtime: false, mtimeOnly: false, honorNodump: false, ignoreCase: false, acl: false, xattr: false, enhancedWild: false, accurate: '',
    wild: [], wildDir: [], wildFile: [], wildBase: [], regex: [], regexDir: [], regexFile: [], fsTypes: [], driveTypes: [], base: [], plugin: null,
  };
}

export interface IncludeBlock {
  options: IncludeOptions[];
  files: string[];
  plugins: string[];
  /** Exclude Dir Containing (`Z`): a directory holding an entry of this name is skipped whole. */
  ignoreDir: string | null;
}

/** An Exclude { } block: names matched as wildcards against every path; options only from plugins. */
export interface ExcludeBlock {
  options: IncludeOptions[];
  files: string[];
}

export interface FileSet {
  includes: IncludeBlock[];
  /** The file names of all Exclude blocks, in order (what excludeBlocks hold, flattened). */
  excludes: string[];
  /** The Exclude blocks; when absent, `excludes` counts as one block without options. */
  excludeBlocks?: ExcludeBlock[];
  /**
   * Set when bacula-fd would refuse this FileSet (bad regex, unknown item): it then answers no
   * `2000 OK include` and ends the job. Items after the bad one are ignored, as bacula-fd does.
   */
  error?: string;
}

// ---------------------------------------------------------------- option letters (set_options)

const DIGEST_RANK: Record<Digest, number> = { md5: 0, sha1: 1, sha256: 2, sha512: 3 };

/** Several digest letters can be set at once; bacula-fd then computes the first of MD5, SHA1, SHA256, SHA512. */
function addDigest(options: IncludeOptions, digest: Digest): void {
  if (options.digest === null || DIGEST_RANK[digest] < DIGEST_RANK[options.digest]) options.digest = digest;
}

/** Add `O` letters to an options block: several `O` lines before `N` add up, as in bacula-fd. */
function setOptions(options: IncludeOptions, letters: string): void {
  for (let i = 0; i < letters.length; i++) {
    const c = letters[i]!;
    const next = letters[i + 1];
    if (c === 'M') addDigest(options, 'md5');
    else if (c === 'S') {
      // S1/S2/S3; a bare S (what `signature = SHA1` sends) is SHA1 and the next letter is its own.
      if (next === '1' || next === '2' || next === '3') i++;
      addDigest(options, next === '2' ? 'sha256' : next === '3' ? 'sha512' : 'sha1');
    } else if (c === 'Z') {
      i++; // bacula-fd skips the level character whatever it is
      if (next !== undefined && next >= '0' && next <= '9') options.gzip = Number(next);
      else if (next === 'o') options.gzip = null; // LZO is not written by agentfd: such data goes uncompressed
    } else if (c === 'e') options.exclude = true;
    else if (c === 'f') options.crossFilesystems = true;
    else if (c === 'h') options.noRecursion = true;
    else if (c === 's') options.sparse = true;
    else if (c === 'H') options.hardlinks = false;
    else if (c === 'r') options.readFifo = true;
    else if (c === 'k') options.keepAtime = true;
    else if (c === 'K') options.noAtime = true;
    else if (c === 'm') options.mtimeOnly = true;
    else if (c === 'N') options.honorNodump = true;
    else if (c === 'i') options.ignoreCase = true;
    else if (c === 'A') options.acl = true;
    else if (c === 'X') options.xattr = true;
    else if (c === 'W') options.enhancedWild = true;
    else if (c === 'P' || c === 'V' || c === 'C' || c === 'J') {
      // Options with a value up to ':' (strip path, verify, accurate, basejob).
      const end = letters.indexOf(':', i);
      if (c === 'C') options.accurate = letters.slice(i + 1, end < 0 ? letters.length : end);
      i = end < 0 ? letters.length : end;
    }
    // a, 0, n, w, p, R, c and unknown letters: nothing that selects or reads files.
  }
}

// ---------------------------------------------------------------- items (add_fileset)

/** Where add_fileset is: after `N`, in a block's names, or in an Options block (which `N` closes). */
type State = 'none' | 'include' | 'options';

interface Parser {
  fileset: FileSet;
  blocks: ExcludeBlock[];
  current: IncludeBlock | ExcludeBlock | null;
  /** The Options block that option and pattern items go to while state is 'options'. */
  options: IncludeOptions | null;
  state: State;
}

/** bacula-fd's start_options: a new Options block unless one is open (no `N` since). */
function currentOptions(p: Parser): IncludeOptions | null {
  if (!p.current) return null;
  if (p.state !== 'options' || !p.options) {
    p.options = defaultOptions();
    p.current.options.push(p.options);
    p.state = 'options';
  }
  return p.options;
}

/** Apply one item; returns an error message when bacula-fd would reject the FileSet. */
function addItem(p: Parser, code: string, subcode: string, value: string): string | null {
  const include = p.current && 'plugins' in p.current ? p.current : null;
  switch (code) {
    case 'I':
    case 'E': {
      if (subcode !== ' ') return `Invalid FileSet item: ${code}${subcode}`;
      if (code === 'I') {
        const block: IncludeBlock = { options: [], files: [], plugins: [], ignoreDir: null };
        p.fileset.includes.push(block);
        p.current = block;
      } else {
        const block: ExcludeBlock = { options: [], files: [] };
        p.blocks.push(block);
        p.current = block;
      }
      p.options = null;
      return null;
    }
    case 'N':
      p.state = 'none';
      return null;
    case 'F':
      p.current?.files.push(value);
      if (p.current && !include) p.fileset.excludes.push(value);
      p.state = 'include';
      return null;
    case 'P':
      include?.plugins.push(value);
      p.state = 'include';
      return null;
    case 'Z':
      if (include) include.ignoreDir = value;
      p.state = 'include';
      return null;
    case 'O': {
      const options = currentOptions(p);
      if (options) setOptions(options, value);
      return null;
    }
    case 'W':
      return addWild(p, subcode, value);
    case 'R':
      return addRegex(p, subcode, value);
    case 'X': {
      if (subcode !== ' ' && subcode !== 'D') return `Invalid FileSet item: X${subcode}`;
      const options = currentOptions(p);
      (subcode === 'D' ? options?.driveTypes : options?.fsTypes)?.push(value);
      return null;
    }
    case 'B':
    case 'G':
    case 'D':
    case 'T': {
      const options = currentOptions(p);
      if (code === 'B') options?.base.push(value);
      else if (code === 'G' && options) options.plugin = value;
      return null; // D and T (reader, writer) are deprecated: bacula-fd ignores them
    }
    default:
      return `Invalid FileSet command: ${code}${subcode === ' ' ? '' : subcode} ${value}`;
  }
}

function addWild(p: Parser, subcode: string, value: string): string | null {
  const options = currentOptions(p);
  if (subcode === ' ') options?.wild.push(value);
  else if (subcode === 'D') options?.wildDir.push(value);
  else if (subcode === 'F') options?.wildFile.push(value);
  else if (subcode === 'B') options?.wildBase.push(value);
  else return `Invalid FileSet item: W${subcode}`;
  return null;
}

function addRegex(p: Parser, subcode: string, value: string): string | null {
  if (subcode !== ' ' && subcode !== 'D' && subcode !== 'F') return `Invalid FileSet item: R${subcode}`;
  const options = currentOptions(p);
  if (!options) return null;
  let re: RegExp;
  try {
    // Compiled when the item arrives, with the ignore case of the letters seen so far (as regcomp is).
    re = posixRegExp(value, options.ignoreCase);
  } catch (error) {
    return `REGEX ${value} compile error. ERR=${error instanceof Error ? error.message : String(error)}`;
  }
  (subcode === 'D' ? options.regexDir : subcode === 'F' ? options.regexFile : options.regex).push(re);
  return null;
}

/** Split an item like bacula-fd: code, optional subcode (a space when none), one space, value. */
function splitItem(item: string): { code: string; subcode: string; value: string } {
  const code = item.slice(0, 1);
  let rest = item.slice(1);
  let subcode = ' ';
  if (rest.length > 0 && rest[0] !== ' ') {
    subcode = rest[0]!;
    rest = rest.slice(1);
  }
  if (rest.startsWith(' ')) rest = rest.slice(1);
  return { code, subcode, value: rest };
}

/** Parse the items of one `fileset` command (each a frame's text, trailing newline optional). */
export function parseFileSet(items: string[]): FileSet {
  const p: Parser = { fileset: { includes: [], excludes: [] }, blocks: [], current: null, options: null, state: 'none' };
  p.fileset.excludeBlocks = p.blocks;
  for (const raw of items) {
    // strip_trailing_junk: bacula-fd drops trailing ASCII white space (so also from file names).
    const item = raw.replace(/[ \t\n\v\f\r]+$/, '');
    if (item.length === 0) continue;
    const { code, subcode, value } = splitItem(item);
    const error = addItem(p, code, subcode, value);
    if (error) {
      p.fileset.error = error; // bacula-fd skips every later item and fails the job
      break;
    }
  }
  return p.fileset;
}

// ---------------------------------------------------------------- Bacula's fnmatch (lib/fnmatch.c)

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
  return matchBytes(Buffer.from(pattern, 'utf8'), 0, Buffer.from(string, 'utf8'), 0, flags);
}

// ---------------------------------------------------------------- POSIX extended regexes

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

/** A POSIX bracket expression starting past its `[`: backslash is literal, `]` first is literal. */
function bracket(chars: string[], start: number): { text: string; end: number } {
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
  return { text: `[${negate ? '^' : ''}${body}]`, end: i + 1 };
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
 * Approximations: classes, \w and case folding follow Unicode (glibc in a UTF-8 locale; in the C
 * locale glibc works on bytes and ASCII); no multi-character collating elements.
 */
export function posixRegExp(source: string, ignoreCase = false): RegExp {
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
      out += c;
      atom = -1;
    } else if (c === '.') emitAtom('.');
    else if (c === '[') {
      const b = bracket(chars, i);
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

// ---------------------------------------------------------------- which files (accept_file)

/** The outcome of one Options block for a path: its patterns matched (accept or reject), or not. */
function blockVerdict(fo: IncludeOptions, path: string, isDirectory: boolean): 'accept' | 'reject' | null {
  const flags: FnmatchFlags = { casefold: fo.ignoreCase, pathname: fo.enhancedWild };
  // Approximation: bacula-fd takes the base name when the previous entry's options had enhanced
  // wild; we ask this block's (the same whenever all blocks agree, and the 9.6 Director never sends W).
  const base = fo.enhancedWild ? path.slice(path.lastIndexOf('/') + 1) : path;
  const verdict = fo.exclude ? 'reject' : 'accept';
  const wild = (patterns: string[], name: string) => patterns.some((w) => baculaFnmatch(w, name, flags));
  const regex = (patterns: RegExp[]) => patterns.some((re) => re.test(path));
  // The order of accept_file: wilddir | wildfile, wildbase; wild; regexdir | regexfile; regex.
  if (isDirectory ? wild(fo.wildDir, path) : wild(fo.wildFile, path) || wild(fo.wildBase, base)) return verdict;
  if (wild(fo.wild, path)) return verdict;
  if (regex(isDirectory ? fo.regexDir : fo.regexFile) || regex(fo.regex)) return verdict;
  return null;
}

function hasPatterns(fo: IncludeOptions): boolean {
  const lists = [fo.wild, fo.wildDir, fo.wildFile, fo.wildBase, fo.regex, fo.regexDir, fo.regexFile];
  return lists.some((list) => list.length > 0);
}

/** Exclude { } blocks: their options' `W` wildcards, then their names, as wildcards on the full path. */
function excludedByBlocks(fileset: FileSet, path: string): boolean {
  const blocks = fileset.excludeBlocks ?? [{ options: [], files: fileset.excludes }];
  for (const block of blocks) {
    for (const fo of block.options) if (fo.wild.some((w) => baculaFnmatch(w, path, { casefold: fo.ignoreCase }))) return true;
    // The names fold case only if the block's last Options say so (the Director sends none).
    const casefold = block.options.at(-1)?.ignoreCase === true;
    if (block.files.some((name) => baculaFnmatch(name, path, { casefold }))) return true;
  }
  return false;
}

/**
 * The options an Include block without any Options ends up with: bacula-fd never resets its flags
 * between Include blocks, so such a block keeps what the walk before it left, which is (but for the
 * last entry's own match) the last Options of the nearest earlier Include block that has some.
 */
function inheritedOptions(fileset: FileSet, block: IncludeBlock): IncludeOptions {
  const at = fileset.includes.indexOf(block);
  for (let i = (at < 0 ? fileset.includes.length : at) - 1; i >= 0; i--) {
    const last = fileset.includes[i]!.options.at(-1);
    if (last) return last;
  }
  return defaultOptions();
}

/**
 * Is `path`, found while walking below a File entry of `block`, saved, and with which options?
 * Bacula 9.6's accept_file: the Options blocks in order; the first whose patterns match decides
 * (its options, or null when it has `exclude = yes`), and a match skips the Exclude { } blocks;
 * an `exclude = yes` block without any pattern rejects whatever reaches it; when nothing matched,
 * the Exclude { } blocks may reject, else the LAST Options block's options apply (not the first:
 * `Options { signature = MD5 } Options { wildfile = "*.tmp"; exclude = yes }` saves everything but
 * *.tmp without digests). A block without Options inherits (see inheritedOptions), else defaults.
 *
 * `path` is the name as bacula-fd builds it: parent, `/`, entry name; a directory without a
 * trailing slash. Not for the File entries themselves (see topLevelOptions): bacula-fd never
 * filters those. A rejected directory is neither saved nor descended into; for an accepted one,
 * the options returned also decide recursion (noRecursion) and crossing file systems.
 */
export function acceptFile(block: IncludeBlock, fileset: FileSet, path: string, isDirectory: boolean): IncludeOptions | null {
  return traceAcceptFile(block, fileset, path, isDirectory).options;
}

/**
 * acceptFile, and the Options block whose settings bacula-fd's flags hold afterwards: accept_file
 * copies each block's options into the walk's flags as it tries it, so the block it stopped at
 * (or the last one) stays in force. bacula-fd uses those left-over flags for the next File entry
 * of the Include block (find_files computes the OR of all blocks only once, before the first),
 * which is why the walk needs them. null when the block has no Options (nothing is copied).
 */
export function traceAcceptFile(block: IncludeBlock, fileset: FileSet, path: string, isDirectory: boolean): { options: IncludeOptions | null; left: IncludeOptions | null } {
  for (const fo of block.options) {
    const verdict = blockVerdict(fo, path, isDirectory);
    if (verdict) return { options: verdict === 'accept' ? fo : null, left: fo };
    if (fo.exclude && !hasPatterns(fo)) return { options: null, left: fo };
  }
  const left = block.options.at(-1) ?? null;
  if (excludedByBlocks(fileset, path)) return { options: null, left };
  return { options: left ?? inheritedOptions(fileset, block), left };
}

/**
 * The options of a block's File entries themselves (find_files, which ORs the flags of all the
 * block's Options and takes the compression of the last one that has some): a File entry is saved
 * whatever the patterns say, even `exclude = yes` ones, and whatever the Exclude { } blocks say.
 * Approximation: bacula-fd starts the OR from the flags the previous entry left behind; we start
 * from nothing (but a block without Options inherits, given the FileSet: see inheritedOptions).
 */
export function topLevelOptions(block: IncludeBlock, fileset?: FileSet): IncludeOptions {
  if (block.options.length === 0 && fileset) return inheritedOptions(fileset, block);
  const merged = defaultOptions();
  for (const fo of block.options) {
    if (fo.digest) addDigest(merged, fo.digest);
    if (fo.gzip !== null) merged.gzip = fo.gzip;
    merged.exclude ||= fo.exclude;
    merged.crossFilesystems ||= fo.crossFilesystems;
    merged.noRecursion ||= fo.noRecursion;
    merged.sparse ||= fo.sparse;
    merged.hardlinks &&= fo.hardlinks;
    merged.readFifo ||= fo.readFifo;
    merged.keepAtime ||= fo.keepAtime;
    merged.noAtime ||= fo.noAtime;
    merged.mtimeOnly ||= fo.mtimeOnly;
    merged.honorNodump ||= fo.honorNodump;
    merged.ignoreCase ||= fo.ignoreCase;
    merged.acl ||= fo.acl;
    merged.xattr ||= fo.xattr;
    merged.enhancedWild ||= fo.enhancedWild;
  }
  return merged;
}

/** Old name of topLevelOptions: the options for a block's File entries. */
export function blockOptions(block: IncludeBlock): IncludeOptions {
  return topLevelOptions(block);
}

/**
 * What accurate mode compares for the files of a block (find.c): "mcs" (mtime, ctime, size) unless
 * one of its Options blocks says `accurate =`, the last such one winning.
 */
export function accurateOptions(block: IncludeBlock): string {
  return block.options.findLast((fo) => fo.accurate !== '')?.accurate ?? 'mcs';
}

/**
 * The block's Exclude Dir Containing name, or null. bacula-fd checks every directory it reaches,
 * the File entries included, before anything else: when `<dir>/<name>` exists (stat, following
 * links), the directory is skipped whole (no record, no descent).
 */
export function ignoreDirMarker(block: IncludeBlock): string | null {
  return block.ignoreDir;
}
