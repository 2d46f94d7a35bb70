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
import { baculaFnmatch, type FnmatchFlags } from './fnmatch.js';
import { posixRegExp } from './posix-regex.js';

export type Digest = 'md5' | 'sha1' | 'sha256' | 'sha512';

export interface IncludeOptions {
  /** The digest the FileSet's `signature =` asks for, or null. */
  digest: Digest | null;
  /** GZIP level (compression = GZIPn), or null for none. */
  gzip: number | null;
  /** compression = LZO (Zo): LZO1X-1 (streams 29, 30). At most one of gzip and lzo is set. */
  lzo: boolean;
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
  /** checkfilechanges = yes (c): a file is stat'ed again once sent, and a change is reported. */
  checkChanges: boolean;
  /** ignore case = yes (i): patterns match regardless of case. */
  ignoreCase: boolean;
  /** aclsupport / xattrsupport (A, X): save POSIX ACLs and extended attributes (xacl.ts). */
  acl: boolean;
  xattr: boolean;
  /** Enhanced wild (W): wildcards match with FNM_PATHNAME, WB ones against the base name. */
  enhancedWild: boolean;
  /** `accurate =` letters (C...:), what accurate mode compares; '' when the block says none. */
  accurate: string;
  /** `verify =` letters as bacula-fd keeps them, the V included (`Vpins5`); '' when the block says none. */
  verify: string;
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
    digest: null, gzip: null, lzo: false, exclude: false, crossFilesystems: false, noRecursion: false, sparse: false, hardlinks: true, readFifo: false,
    keepAtime: false, noAtime: false, mtimeOnly: false, honorNodump: false, checkChanges: false, ignoreCase: false, acl: false, xattr: false, enhancedWild: false, accurate: '', verify: '',
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

/** Whether any Options block asks for compression = LZO. */
export function asksForLzo(fileset: FileSet): boolean {
  return fileset.includes.some((block) => block.options.some((o) => o.lzo));
}

/** The FileSet with LZO taken out of its Options (their files then go uncompressed), all else the same. */
export function withoutLzo(fileset: FileSet): FileSet {
  const plain = (o: IncludeOptions): IncludeOptions => (o.lzo ? { ...o, lzo: false } : o);
  return { ...fileset, includes: fileset.includes.map((block) => ({ ...block, options: block.options.map(plain) })) };
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
      if (next !== undefined && next >= '0' && next <= '9') [options.gzip, options.lzo] = [Number(next), false];
      else if (next === 'o') [options.gzip, options.lzo] = [null, true];
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
    else if (c === 'c') options.checkChanges = true;
    else if (c === 'i') options.ignoreCase = true;
    else if (c === 'A') options.acl = true;
    else if (c === 'X') options.xattr = true;
    else if (c === 'W') options.enhancedWild = true;
    else if (c === 'P' || c === 'V' || c === 'C' || c === 'J') {
      // Options with a value up to ':' (strip path, verify, accurate, basejob).
      const end = letters.indexOf(':', i);
      if (c === 'C') options.accurate = letters.slice(i + 1, end < 0 ? letters.length : end);
      if (c === 'V') options.verify = letters.slice(i, end < 0 ? letters.length : end);
      i = end < 0 ? letters.length : end;
    }
    // a, 0, n, w, p, R and unknown letters: nothing that selects or reads files.
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
    if (fo.gzip !== null || fo.lzo) [merged.gzip, merged.lzo] = [fo.gzip, fo.lzo];
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
 * The Verify options a Verify job sends with each file of a block (find.c find_files): "V", then
 * the `verify =` letters of each of its Options blocks in turn ("VVpins5" for one block saying
 * pins5); bacula-fd keeps them for the whole block, whichever Options block a file matched.
 */
export function verifyOptions(block: IncludeBlock): string {
  return `V${block.options.map((fo) => fo.verify).join('')}`;
}

/**
 * The block's Exclude Dir Containing name, or null. bacula-fd checks every directory it reaches,
 * the File entries included, before anything else: when `<dir>/<name>` exists (stat, following
 * links), the directory is skipped whole (no record, no descent).
 */
export function ignoreDirMarker(block: IncludeBlock): string | null {
  return block.ignoreDir;
}
