/**
 * FileSet items and Bacula 9.6's file selection (filed/job.c add_fileset, findlib/find.c
 * accept_file, findlib/find_one.c).
 *
 * Where the expectations come from: the item lines are those a real 9.6.7 Director sent to the real
 * bacula-fd 9.6.7 (its `-d 500` log, `Fileset:` lines) for the FileSet shown with each case, the data
 * directory renamed /srv/data; the saved entries are that bacula-fd's `estimate listing` of the same
 * tree (TREE below); the digests are the MD5 column of its catalog after real backups. The fnmatch
 * table was run through libbac-9.6.7's own fnmatch (which bacula-fd binds to), the regex table
 * through glibc's regcomp(REG_EXTENDED)/regexec in C.UTF-8.
 */
import { describe, expect, it } from 'vitest';
import {
  acceptFile,
  blockOptions,
  defaultOptions,
  ignoreDirMarker,
  parseFileSet,
  topLevelOptions,
  type FileSet,
  type IncludeOptions,
} from '../../src/bacula-fd/fileset/fileset.js';
import { baculaFnmatch, type FnmatchFlags } from '../../src/bacula-fd/fileset/fnmatch.js';
import { posixRegExp } from '../../src/bacula-fd/fileset/posix-regex.js';

const ROOT = '/srv/data';

/** The lab's tree, below ROOT; directories end with a slash. */
const TREE = [
  'C.TMP', 'Mixed/', 'Mixed/File.JPG', 'Mixed/file.jpg', 'Mixed/other.png', 'Upper/', 'Upper/Z.txt', 'Upper/low.txt', 'a.txt', 'b.tmp',
  'cache/', 'cache/inner/', 'cache/inner/y.txt', 'cache/x.txt', 'dir.tmp/', 'dir.tmp/inner.txt', 'keep.log', 'logs/', 'logs/1.log',
  'logs/2.log', 'logs/deep/', 'logs/deep/3.log', 'logs/notes.txt', 'nob/', 'nob/.nobackup', 'nob/y.txt', 'sub/', 'sub/c.txt', 'sub/d.tmp',
  'sub/deeper/', 'sub/deeper/f.txt', 'sub/e.log',
];
const ALL = ['.', ...TREE.map((e) => e.replace(/\/$/, ''))];

const rel = (p: string) => (p === ROOT ? '.' : p.slice(ROOT.length + 1));
const isDirectory = (p: string) => p === ROOT || TREE.includes(`${rel(p)}/`);
const exists = (p: string) => p === ROOT || TREE.includes(rel(p)) || TREE.includes(`${rel(p)}/`);
const children = (dir: string) =>
  TREE.map((e) => e.replace(/\/$/, '')).filter((e) => (dir === ROOT ? !e.includes('/') : e.startsWith(`${rel(dir)}/`) && !e.slice(rel(dir).length + 1).includes('/')));

/**
 * Walk TREE the way find_one.c does, with the module's API: what is saved, with which options.
 * File entries: never filtered, options from topLevelOptions, always descended. Every directory:
 * Exclude Dir Containing first (skipped whole), then acceptFile (null: neither saved nor
 * descended), then descended unless its options say noRecursion. Other entries: acceptFile.
 */
function walk(fileset: FileSet): Map<string, IncludeOptions> {
  const saved = new Map<string, IncludeOptions>();
  for (const block of fileset.includes) {
    const marker = ignoreDirMarker(block);
    const visit = (p: string, top: boolean) => {
      const dir = isDirectory(p);
      if (dir && marker !== null && exists(`${p}/${marker}`)) return;
      const options = top ? topLevelOptions(block, fileset) : acceptFile(block, fileset, p, dir);
      if (!options) return;
      if (dir && (top || !options.noRecursion)) for (const child of children(p)) visit(`${p}/${child.split('/').pop()}`, false);
      saved.set(rel(p), options);
    };
    for (const file of block.files) visit(file, true);
  }
  return saved;
}

interface LabCase {
  name: string;
  /** The FileSet as written in bacula-dir.conf (File = /srv/data unless said). */
  conf: string;
  items: string[];
  /** What the real FD did not list, or (saved) all it listed. */
  missing?: string[];
  saved?: string[];
}

const LAB: LabCase[] = [
  {
    name: 'wildfile exclude, then the options for the rest',
    conf: 'Options { wildfile = "*.tmp"; exclude = yes } Options { signature = MD5 }',
    items: ['I', 'O e', 'WF *.tmp', 'N', 'O M', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['b.tmp', 'sub/d.tmp'], // C.TMP stays: case matters; dir.tmp stays: wildfile is for files only
  },
  {
    name: 'wildfile exclude with ignore case',
    conf: 'Options { wildfile = "*.tmp"; exclude = yes; ignore case = yes } Options { signature = MD5 }',
    items: ['I', 'O ei', 'WF *.tmp', 'N', 'O M', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['C.TMP', 'b.tmp', 'sub/d.tmp'],
  },
  {
    name: 'the exclude block last',
    conf: 'Options { signature = MD5 } Options { wildfile = "*.tmp"; exclude = yes }',
    items: ['I', 'O M', 'N', 'O e', 'WF *.tmp', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['b.tmp', 'sub/d.tmp'],
  },
  {
    name: 'a wildfile with a path: * crosses /',
    conf: 'Options { wildfile = "/srv/data/sub/*"; exclude = yes }',
    items: ['I', 'O e', 'WF /srv/data/sub/*', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['sub/c.txt', 'sub/d.tmp', 'sub/deeper/f.txt', 'sub/e.log'], // sub/deeper (a directory) stays
  },
  {
    name: 'wilddir exclude: the directory and all below it',
    conf: 'Options { wilddir = "*/cache"; exclude = yes } Options { signature = MD5 }',
    items: ['I', 'O e', 'WD */cache', 'N', 'O M', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['cache', 'cache/inner', 'cache/inner/y.txt', 'cache/x.txt'],
  },
  {
    name: 'wild matches directories too',
    conf: 'Options { wild = "*.tmp"; exclude = yes }',
    items: ['I', 'O e', 'W *.tmp', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['b.tmp', 'dir.tmp', 'dir.tmp/inner.txt', 'sub/d.tmp'],
  },
  {
    name: 'regexfile exclude',
    conf: 'Options { regexfile = "\\\\.log$"; exclude = yes }',
    items: ['I', 'O e', String.raw`RF \.log$`, 'N', 'F /srv/data', 'N', 'N'],
    missing: ['keep.log', 'logs/1.log', 'logs/2.log', 'logs/deep/3.log', 'sub/e.log'],
  },
  {
    name: 'regexdir exclude',
    conf: 'Options { regexdir = "/(cache|nob)$"; exclude = yes }',
    items: ['I', 'O e', 'RD /(cache|nob)$', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['cache', 'cache/inner', 'cache/inner/y.txt', 'cache/x.txt', 'nob', 'nob/.nobackup', 'nob/y.txt'],
  },
  {
    name: 'regex with ignore case',
    conf: 'Options { regex = "\\\\.JPG$"; ignore case = yes; exclude = yes }',
    items: ['I', 'O ie', String.raw`R \.JPG$`, 'N', 'F /srv/data', 'N', 'N'],
    missing: ['Mixed/File.JPG', 'Mixed/file.jpg'],
  },
  {
    name: 'include only *.txt (then exclude every other file)',
    conf: 'Options { wildfile = "*.txt"; signature = MD5 } Options { exclude = yes; regexfile = ".*" }',
    items: ['I', 'O M', 'WF *.txt', 'N', 'O e', 'RF .*', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['C.TMP', 'Mixed/File.JPG', 'Mixed/file.jpg', 'Mixed/other.png', 'b.tmp', 'keep.log', 'logs/1.log', 'logs/2.log', 'logs/deep/3.log', 'nob/.nobackup', 'sub/d.tmp', 'sub/e.log'],
  },
  {
    name: 'an Options block with only exclude = yes rejects whatever reaches it',
    conf: 'Options { wilddir = "*/sub" } Options { exclude = yes }',
    items: ['I', 'O', 'WD */sub', 'N', 'O e', 'N', 'F /srv/data', 'N', 'N'],
    saved: ['.', 'sub'],
  },
  {
    name: 'only exclude = yes: the File entry alone',
    conf: 'Options { exclude = yes }',
    items: ['I', 'O e', 'N', 'F /srv/data', 'N', 'N'],
    saved: ['.'],
  },
  {
    name: 'an Exclude block: names are wildcards on the full path, File entries are never excluded',
    conf: 'Include { Options { signature = MD5 } File = /srv/data } Exclude { File = "/srv/data/logs/*.log"; File = /srv/data/cache; File = /srv/data }',
    items: ['I', 'O M', 'N', 'F /srv/data', 'N', 'N', 'E', 'F /srv/data/logs/*.log', 'F /srv/data/cache', 'F /srv/data', 'N', 'N'],
    missing: ['cache', 'cache/inner', 'cache/inner/y.txt', 'cache/x.txt', 'logs/1.log', 'logs/2.log', 'logs/deep/3.log'],
  },
  {
    name: 'Exclude Dir Containing',
    conf: 'Options { signature = MD5 } Exclude Dir Containing = .nobackup',
    items: ['I', 'Z .nobackup', 'O M', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['nob', 'nob/.nobackup', 'nob/y.txt'],
  },
  {
    name: "the matched block's recurse = no",
    conf: 'Options { wilddir = "*/sub"; recurse = no } Options { signature = MD5 }',
    items: ['I', 'O h', 'WD */sub', 'N', 'O M', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['sub/c.txt', 'sub/d.tmp', 'sub/deeper', 'sub/deeper/f.txt', 'sub/e.log'],
  },
  {
    name: 'File entries matching an exclude pattern are saved all the same',
    conf: 'Options { wildfile = "*.txt"; exclude = yes } Options { signature = MD5 } File = /srv/data/a.txt; File = /srv/data/sub',
    items: ['I', 'O e', 'WF *.txt', 'N', 'O M', 'N', 'F /srv/data/a.txt', 'F /srv/data/sub', 'N', 'N'],
    saved: ['a.txt', 'sub', 'sub/d.tmp', 'sub/deeper', 'sub/e.log'],
  },
  {
    name: 'wildfile with ignore case',
    conf: 'Options { wildfile = "*.jpg"; ignore case = yes; exclude = yes }',
    items: ['I', 'O ie', 'WF *.jpg', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['Mixed/File.JPG', 'Mixed/file.jpg'],
  },
  {
    name: 'enhancedwild = yes: the 9.6 Director sends K, so * still crosses /',
    conf: 'Options { enhancedwild = yes; wildfile = "*.tmp"; exclude = yes }',
    items: ['I', 'O Ke', 'WF *.tmp', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['b.tmp', 'sub/d.tmp'],
  },
  {
    name: 'bracket classes',
    conf: 'Options { wildfile = "*/[A-Z]*"; exclude = yes } Options { wild = "*/[!a-z]*"; exclude = yes }',
    items: ['I', 'O e', 'WF */[A-Z]*', 'N', 'O e', 'W */[!a-z]*', 'N', 'F /srv/data', 'N', 'N'],
    missing: ['C.TMP', 'Mixed', 'Mixed/File.JPG', 'Mixed/file.jpg', 'Mixed/other.png', 'Upper', 'Upper/Z.txt', 'Upper/low.txt', 'logs/1.log', 'logs/2.log', 'logs/deep/3.log', 'nob/.nobackup'],
  },
  {
    name: 'an accepting match skips the Exclude blocks',
    conf: 'Include { Options { wildfile = "*.log" } Options { signature = MD5 } File = /srv/data } Exclude { File = "/srv/data/logs/*.log" }',
    items: ['I', 'O', 'WF *.log', 'N', 'O M', 'N', 'F /srv/data', 'N', 'N', 'E', 'F /srv/data/logs/*.log', 'N', 'N'],
    missing: [],
  },
  {
    name: 'an Exclude name with a trailing slash matches nothing',
    conf: 'Include { Options { signature = MD5 } File = /srv/data } Exclude { File = "/srv/data/cache/" }',
    items: ['I', 'O M', 'N', 'F /srv/data', 'N', 'N', 'E', 'F /srv/data/cache/', 'N', 'N'],
    missing: [],
  },
  {
    name: 'two Include blocks, the second without Options',
    conf: 'Include { Options { signature = MD5 } File = /srv/data/sub } Include { File = /srv/data/Upper }',
    items: ['I', 'O M', 'N', 'F /srv/data/sub', 'N', 'N', 'I', 'F /srv/data/Upper', 'N', 'N'],
    saved: ['Upper', 'Upper/Z.txt', 'Upper/low.txt', 'sub', 'sub/c.txt', 'sub/d.tmp', 'sub/deeper', 'sub/deeper/f.txt', 'sub/e.log'],
  },
  {
    name: 'Exclude Dir Containing applies to File entries too',
    conf: 'Exclude Dir Containing = .nobackup; File = /srv/data/nob; File = /srv/data/sub',
    items: ['I', 'Z .nobackup', 'F /srv/data/nob', 'F /srv/data/sub', 'N', 'N'],
    saved: ['sub', 'sub/c.txt', 'sub/d.tmp', 'sub/deeper', 'sub/deeper/f.txt', 'sub/e.log'],
  },
  {
    name: 'recurse = no still descends into the File entry',
    conf: 'Options { recurse = no }',
    items: ['I', 'O h', 'N', 'F /srv/data', 'N', 'N'],
    saved: ['.', 'C.TMP', 'Mixed', 'Upper', 'a.txt', 'b.tmp', 'cache', 'dir.tmp', 'keep.log', 'logs', 'nob', 'sub'],
  },
  {
    name: 'an Exclude naming the File entries themselves',
    conf: 'Include { File = /srv/data/a.txt; File = /srv/data/logs } Exclude { File = /srv/data/a.txt; File = /srv/data/logs }',
    items: ['I', 'F /srv/data/a.txt', 'F /srv/data/logs', 'N', 'N', 'E', 'F /srv/data/a.txt', 'F /srv/data/logs', 'N', 'N'],
    saved: ['a.txt', 'logs', 'logs/1.log', 'logs/2.log', 'logs/deep', 'logs/deep/3.log', 'logs/notes.txt'],
  },
];

const lab = (name: string): string[] => LAB.find((c) => c.name.startsWith(name))!.items;

describe('which files a FileSet saves (as bacula-fd 9.6.7 listed them)', () => {
  it.each(LAB)('$name', ({ items, missing, saved }) => {
    const fileset = parseFileSet(items);
    expect(fileset.error).toBeUndefined();
    const expected = saved ?? ALL.filter((e) => !missing!.includes(e));
    expect([...walk(fileset).keys()].sort()).toEqual([...expected].sort());
  });
});

describe('which options apply (as the catalog of real backups shows)', () => {
  const digests = (items: string[]) => {
    const saved = walk(parseFileSet(items));
    return (path: string) => saved.get(path)?.digest;
  };

  it('files no pattern matched get the LAST Options block', () => {
    const first = digests(lab('wildfile exclude, then')); // exclude block, then signature = MD5
    for (const file of ['a.txt', 'C.TMP', 'sub/c.txt', 'dir.tmp/inner.txt']) expect(first(file)).toBe('md5');
    const last = digests(lab('the exclude block last')); // signature = MD5, then the exclude block: no digests at all
    for (const file of ['a.txt', 'C.TMP', 'sub/c.txt', 'dir.tmp/inner.txt']) expect(last(file)).toBeNull();
  });

  it('a matching block gives its own options', () => {
    const includeOnly = digests(lab('include only'));
    for (const file of ['a.txt', 'Upper/Z.txt', 'cache/x.txt', 'sub/deeper/f.txt']) expect(includeOnly(file)).toBe('md5');
  });

  it('a File entry gets the flags of all the Options blocks', () => {
    const top = digests(lab('File entries matching'));
    expect(top('a.txt')).toBe('md5'); // matched exclude, saved as a File entry, digest from the other block
    expect(top('sub/d.tmp')).toBe('md5');
  });

  it('an Include block without Options carries on with the options of the block before', () => {
    const carried = digests(lab('two Include blocks'));
    expect(carried('Upper/Z.txt')).toBe('md5');
    expect(carried('sub/c.txt')).toBe('md5');
  });
});

describe('acceptFile', () => {
  const file = (items: string[], path: string, dir = false) => {
    const fileset = parseFileSet(items);
    return acceptFile(fileset.includes[0]!, fileset, path, dir);
  };

  it('returns the options object of the block that decided', () => {
    const fileset = parseFileSet(['I', 'O MZ6', 'WF *.txt', 'N', 'O S3', 'N', 'F /srv/data', 'N', 'N']);
    const [txt, rest] = fileset.includes[0]!.options;
    expect(acceptFile(fileset.includes[0]!, fileset, '/srv/data/a.txt', false)).toBe(txt);
    expect(acceptFile(fileset.includes[0]!, fileset, '/srv/data/b.tmp', false)).toBe(rest);
    expect(txt).toMatchObject({ digest: 'md5', gzip: 6 });
    expect(rest).toMatchObject({ digest: 'sha512', gzip: null });
  });

  it('wilddir is for directories, wildfile for the rest', () => {
    const items = ['I', 'O e', 'WD */cache', 'WF */b.tmp', 'N', 'F /srv/data', 'N', 'N'];
    expect(file(items, '/srv/data/cache', true)).toBeNull();
    expect(file(items, '/srv/data/cache', false)).not.toBeNull(); // a file named cache
    expect(file(items, '/srv/data/b.tmp', false)).toBeNull();
    expect(file(items, '/srv/data/b.tmp', true)).not.toBeNull(); // a directory named b.tmp
  });

  it('enhanced wild (W): FNM_PATHNAME, and WB against the base name', () => {
    const enhanced = ['I', 'O We', 'WF /srv/*.tmp', 'WB d.*', 'N', 'F /srv/data', 'N', 'N'];
    expect(file(enhanced, '/srv/data/b.tmp')).not.toBeNull(); // * does not cross /
    expect(file(enhanced, '/srv/data/sub/d.tmp')).toBeNull(); // base name d.tmp
    expect(file(enhanced, '/srv/data/d.dir', true)).not.toBeNull(); // WB: files only
    const plain = ['I', 'O e', 'WF /srv/*.tmp', 'N', 'F /srv/data', 'N', 'N'];
    expect(file(plain, '/srv/data/b.tmp')).toBeNull();
  });

  it('regexes find a match anywhere in the path (regexec, not a full match)', () => {
    const items = ['I', 'O e', 'R cache', 'N', 'F /srv/data', 'N', 'N'];
    expect(file(items, '/srv/data/cache/x.txt')).toBeNull();
    expect(file(items, '/srv/data/cache', true)).toBeNull();
    expect(file(items, '/srv/data/a.txt')).not.toBeNull();
  });

  it('a regex compiles with the ignore case seen before it', () => {
    const fileset = parseFileSet(['I', 'O e', String.raw`R \.JPG$`, 'O i', 'N', 'F /srv/data', 'N', 'N']);
    const block = fileset.includes[0]!;
    expect(block.options).toHaveLength(1);
    expect(block.options[0]!.ignoreCase).toBe(true);
    expect(acceptFile(block, fileset, '/srv/data/Mixed/File.JPG', false)).toBeNull();
    expect(acceptFile(block, fileset, '/srv/data/Mixed/file.jpg', false)).not.toBeNull();
  });

  it('a block without any Options and nothing before it: the defaults', () => {
    expect(file(['I', 'F /srv/data', 'N', 'N'], '/srv/data/a.txt')).toEqual(defaultOptions());
  });

  it('Exclude blocks: from a FileSet built by hand (excludes only) and with plugin-made options', () => {
    const legacy: FileSet = { includes: [{ options: [], files: [ROOT], plugins: [], ignoreDir: null }], excludes: ['/srv/data/*.log'] };
    expect(acceptFile(legacy.includes[0]!, legacy, '/srv/data/logs/1.log', false)).toBeNull();
    expect(acceptFile(legacy.includes[0]!, legacy, '/srv/data/logs', true)).not.toBeNull();
    // Options in an Exclude block (only plugins make those): their W wildcards, their ignore case for the names
    const withOptions = parseFileSet(['I', 'F /srv/data', 'N', 'N', 'E', 'O i', 'W *.TMP', 'N', 'F /SRV/DATA/KEEP.LOG', 'N', 'N']);
    const block = withOptions.includes[0]!;
    expect(acceptFile(block, withOptions, '/srv/data/b.tmp', false)).toBeNull();
    expect(acceptFile(block, withOptions, '/srv/data/keep.log', false)).toBeNull();
    expect(acceptFile(block, withOptions, '/srv/data/a.txt', false)).not.toBeNull();
  });
});

describe('parseFileSet', () => {
  it('reads the blocks of a real Director sequence', () => {
    const fileset = parseFileSet([
      'I\n', 'Z .nobackup\n', 'O eiM\n', 'WF *.tmp\n', 'WD */cache\n', 'W *~\n', String.raw`RF \.o$` + '\n', 'RD ^/srv/x$\n', 'R core\n', 'N\n',
      'O MZ6\n', 'N\n', 'F /srv/data\n', 'F /srv/other\n', 'N\n', 'P bpipe:/a:cat /x:cat >/y\n', 'N\n', 'E\n', 'F /srv/data/*.log\n', 'N\n', 'N\n',
    ]);
    expect(fileset.error).toBeUndefined();
    const [block] = fileset.includes;
    expect(block).toMatchObject({ files: ['/srv/data', '/srv/other'], plugins: ['bpipe:/a:cat /x:cat >/y'], ignoreDir: '.nobackup' });
    expect(block!.options).toHaveLength(2);
    const [patterns, rest] = block!.options;
    expect(patterns).toMatchObject({ exclude: true, ignoreCase: true, digest: 'md5', wildFile: ['*.tmp'], wildDir: ['*/cache'], wild: ['*~'] });
    expect(patterns!.regexFile.map((re) => re.flags)).toEqual(['isu']);
    expect(patterns!.regexDir).toHaveLength(1);
    expect(patterns!.regex).toHaveLength(1);
    expect(rest).toMatchObject({ exclude: false, digest: 'md5', gzip: 6, wildFile: [] });
    expect(fileset.excludeBlocks).toEqual([{ options: [], files: ['/srv/data/*.log'] }]);
    expect(fileset.excludes).toEqual(['/srv/data/*.log']);
  });

  it('an Options block lasts until N: several O lines add up, a pattern after N opens a new one', () => {
    const block = parseFileSet(['I', 'O M', 'O Z9', 'WF *.a', 'N', 'WF *.b', 'N', 'F /x', 'N', 'N']).includes[0]!;
    expect(block.options).toHaveLength(2);
    expect(block.options[0]).toMatchObject({ digest: 'md5', gzip: 9, wildFile: ['*.a'] });
    expect(block.options[1]).toMatchObject({ digest: null, gzip: null, wildFile: ['*.b'] });
  });

  it.each([
    ['M', { digest: 'md5' }],
    ['S', { digest: 'sha1' }], // what `signature = SHA1` sends
    ['Se', { digest: 'sha1', exclude: true }],
    ['S1', { digest: 'sha1' }],
    ['S2', { digest: 'sha256' }],
    ['S3', { digest: 'sha512' }],
    ['S3M', { digest: 'md5' }], // both flags set: bacula-fd computes MD5 first
    ['MZ6', { digest: 'md5', gzip: 6 }],
    ['Z9e', { gzip: 9, exclude: true }],
    ['Zo', { gzip: null, lzo: true }],
    ['ZoZ6', { gzip: 6, lzo: false }],
    ['fhsHrkKmNiAXW', { crossFilesystems: true, noRecursion: true, sparse: true, hardlinks: false, readFifo: true, keepAtime: true, noAtime: true, mtimeOnly: true, honorNodump: true, ignoreCase: true, acl: true, xattr: true, enhancedWild: true }],
    ['P2:e', { exclude: true }],
    ['Vpins5:Cmcs:Jspug5:M', { digest: 'md5', accurate: 'mcs', verify: 'Vpins5' }],
    ['Cmcs5:M', { digest: 'md5', accurate: 'mcs5' }],
    ['', {}],
  ])('O %j', (letters, expected) => {
    const block = parseFileSet(['I', `O ${letters}`, 'N', 'F /x', 'N', 'N']).includes[0]!;
    expect(block.options[0]).toEqual({ ...defaultOptions(), ...expected });
  });

  it('keeps the other per-block items', () => {
    const block = parseFileSet(['I', 'O', 'X ext4', 'XD fixed', 'B basejob', 'G myplugin: a=b', 'D reader', 'T writer', 'WB *.o', 'N']).includes[0]!;
    expect(block.options).toHaveLength(1);
    expect(block.options[0]).toMatchObject({ fsTypes: ['ext4'], driveTypes: ['fixed'], base: ['basejob'], plugin: 'myplugin: a=b', wildBase: ['*.o'] });
  });

  it('strips trailing white space from items, as bacula-fd does', () => {
    expect(parseFileSet(['I', 'F /srv/data  \t\n', 'N', 'N']).includes[0]!.files).toEqual(['/srv/data']);
  });

  it.each([
    [['I', 'O e', 'R (unclosed', 'N', 'F /x', 'N', 'N'], /REGEX \(unclosed compile error/],
    [['I', 'Q what', 'F /x'], /Invalid FileSet command/],
    [['I', 'WQ *.x', 'F /x'], /Invalid FileSet item: WQ/],
    [['I', 'RX a', 'F /x'], /Invalid FileSet item: RX/],
  ])('rejects %j like bacula-fd, ignoring the items after', (items, message) => {
    const fileset = parseFileSet(items);
    expect(fileset.error).toMatch(message);
    expect(fileset.includes[0]!.files).toEqual([]);
  });

  it('blockOptions (for the File entries) ORs the flags of the block', () => {
    expect(blockOptions(parseFileSet(lab('wildfile exclude, then')).includes[0]!)).toMatchObject({ digest: 'md5', exclude: true, gzip: null });
    expect(blockOptions(parseFileSet(['I', 'O Z6', 'N', 'O M', 'N', 'F /x', 'N', 'N']).includes[0]!)).toMatchObject({ digest: 'md5', gzip: 6 });
    expect(blockOptions(parseFileSet(['I', 'O MZ6', 'N', 'F /x', 'N', 'N']).includes[0]!)).toMatchObject({ digest: 'md5', gzip: 6 });
    expect(blockOptions(parseFileSet(['I', 'F /x', 'N', 'N']).includes[0]!)).toEqual(defaultOptions());
  });
});

describe("Bacula's fnmatch (checked against libbac-9.6.7)", () => {
  const table: [string, string, FnmatchFlags, boolean][] = [
    ['*.tmp', '/srv/data/sub/d.tmp', {}, true],
    ['*.tmp', '/srv/data/sub/d.tmp', { pathname: true }, false],
    ['*/cache', '/srv/data/cache', {}, true],
    ['*/cache', '/srv/data/cache/inner', {}, false],
    ['/srv/data/sub/*', '/srv/data/sub/deeper/f.txt', {}, true],
    ['/srv/data/sub/*', '/srv/data/sub/deeper/f.txt', { pathname: true }, false],
    ['/srv/*/f.txt', '/srv/data/sub/deeper/f.txt', { pathname: true }, false],
    ['*.TMP', '/srv/data/b.tmp', {}, false],
    ['*.TMP', '/srv/data/b.tmp', { casefold: true }, true],
    ['*.jpg', '/srv/data/Mixed/File.JPG', { casefold: true }, true],
    ['*/[A-Z]*', '/srv/data/Upper/low.txt', {}, true],
    ['*/[!a-z]*', '/srv/data/Mixed', {}, true],
    ['*/[^a-z]*', '/srv/data/mixed', {}, false],
    ['[]]x', ']x', {}, true],
    ['[!]]x', ']x', {}, false],
    ['[a-]', '-', {}, true],
    ['[\\]]', ']', {}, true],
    ['\\*.log', '*.log', {}, true],
    ['\\*.log', 'a.log', {}, false],
    ['[a', '[a', {}, true],
    ['a[', 'a[', {}, true],
    ['?', '/', {}, true],
    ['?', '/', { pathname: true }, false],
    ['a?c', 'a/c', {}, true],
    ['[/]', '/', { pathname: true }, false],
    ['[/]', '/', {}, true],
    ['*', '', {}, true],
    ['', '', {}, true],
    ['x\\', 'x\\', {}, true],
    ['[A-Z]', '\u00e9', { casefold: true }, false],
    ['\u00e9', '\u00c9', { casefold: true }, false], // ASCII folding only
    ['[a-z]', '\u00e9', {}, false],
    ['[A-[]', 'a', { casefold: true }, false],
    ['[a-{]', 'A', { casefold: true }, true],
    ['/x/*.log', '/x/a/b.log', {}, true],
    ['/x/*.log', '/x/a/b.log', { pathname: true }, false],
    ['/x/*', '/x/', { pathname: true }, true],
    ['*.log', '/x/.hidden.log', {}, true], // no FNM_PERIOD
    ['/srv/data/cache/', '/srv/data/cache', {}, false],
    ['*cache*', '/srv/data/cache/x.txt', {}, true],
  ];
  it.each(table)('%j ~ %j %j: %j', (pattern, string, flags, expected) => {
    expect(baculaFnmatch(pattern, string, flags)).toBe(expected);
  });
});

describe('POSIX extended regexes (checked against glibc regcomp/regexec, C.UTF-8)', () => {
  const table: [string, boolean, string, boolean][] = [
    [String.raw`\.log$`, false, '/srv/data/logs/1.log', true],
    [String.raw`\.log$`, false, '/srv/data/logs/1.log.gz', false],
    [String.raw`\.JPG$`, true, '/srv/data/Mixed/file.jpg', true],
    [String.raw`\.JPG$`, false, '/srv/data/Mixed/file.jpg', false],
    ['/(cache|nob)$', false, '/srv/data/cache', true],
    ['/(cache|nob)$', false, '/srv/data/cache/inner', false],
    ['.*', false, '', true],
    ['^/srv/data/[^/]+$', false, '/srv/data/sub/c.txt', false],
    [String.raw`[[:digit:]]+\.log`, false, '/x/12.log', true],
    ['[[:upper:]]', false, '/x/abc', false],
    ['[]x]', false, 'a]', true], // ] first in a bracket is literal
    ['[\\]', false, 'a\\', true], // backslash is literal in a bracket
    ['a{,2}b', false, 'b', true],
    ['x{2}{2}', false, 'xxxx', true],
    ['a**', false, '', true],
    ['a)', false, 'a)', true], // an unmatched ) is literal
    [String.raw`\d`, false, 'd', true], // not a digit class: an escaped d
    [String.raw`\d`, false, '5', false],
    [String.raw`\w+\.txt`, false, '/\u00e9.txt', true],
    [String.raw`\<tmp\>`, false, '/x/tmp/y', true],
    [String.raw`\<tmp\>`, false, '/x/tmpy', false],
    [String.raw`\btmp\b`, false, '/a/tmp', true],
    ['^\\`/x', false, '/x', true],
    [String.raw`\.log\'`, false, 'a.log', true],
    [String.raw`(a)\1`, false, 'aa', true],
    [String.raw`\a`, true, 'a', false], // glibc: with REG_ICASE an escaped lower-case letter matches nothing
    [String.raw`\A`, true, 'a', true],
    ['\u00e9', true, '\u00c9', true],
    ['^.$', false, '\u00e9', true],
    ['a.b', false, 'a\nb', true],
  ];
  it.each(table)('%j (ignore case %j) in %j: %j', (source, ignoreCase, subject, expected) => {
    expect(posixRegExp(source, ignoreCase).test(subject)).toBe(expected);
  });

  it.each(['*a', '(a', '[a', 'a{1', 'a{2,1}', String.raw`\1`, String.raw`(a\1)`, '[[:foo:]]', 'a|*b', 'x\\', '[[:alpha:]-z]', '{1}'])(
    'rejects %j as regcomp does',
    (source) => {
      expect(() => posixRegExp(source)).toThrow();
    },
  );
});

describe('checkfilechanges', () => {
  it("is the letter c, as the Director sends `checkfilechanges = yes` (O Mc)", () => {
    const set = parseFileSet(['I', 'O Mc', 'N', 'F /data', 'N']);
    expect(set.includes[0]!.options[0]!.checkChanges).toBe(true);
    expect(parseFileSet(['I', 'O M', 'N', 'F /data', 'N']).includes[0]!.options[0]!.checkChanges).toBe(false);
  });
});
