/**
 * The FileSet a Director sends after `fileset`: one item per frame, until BNET_EOD (filed/job.c
 * add_fileset). Include blocks (`I`) hold options (`O <letters>`), files (`F <path>`) and plugin
 * command strings (`P <string>`); exclude blocks (`E`) hold files to leave out.
 */

export interface IncludeOptions {
  /** The digest the FileSet's `signature =` asks for, or null. */
  digest: 'md5' | 'sha1' | 'sha256' | 'sha512' | null;
  /** GZIP level (compression = GZIPn), or null for none. */
  gzip: number | null;
  /** `exclude = yes` options block: its wildcards exclude. */
  exclude: boolean;
  /** onefs = no (f): cross file systems. */
  crossFilesystems: boolean;
  /** recurse = no (h). */
  noRecursion: boolean;
  /** Wildcards (W/WD/WF) of this options block, as Bacula globs. */
  wild: string[];
}

export interface IncludeBlock {
  options: IncludeOptions[];
  files: string[];
  plugins: string[];
}

export interface FileSet {
  includes: IncludeBlock[];
  excludes: string[];
}

function parseOptions(letters: string): IncludeOptions {
  const options: IncludeOptions = { digest: null, gzip: null, exclude: false, crossFilesystems: false, noRecursion: false, wild: [] };
  for (let i = 0; i < letters.length; i++) {
    const c = letters[i]!;
    const next = letters[i + 1];
    if (c === 'M') options.digest = 'md5';
    else if (c === 'S') {
      options.digest = next === '1' ? 'sha1' : next === '2' ? 'sha256' : next === '3' ? 'sha512' : options.digest;
      i++;
    } else if (c === 'Z') {
      if (next !== undefined && /[0-9]/.test(next)) options.gzip = Number(next);
      i++; // Zo (LZO) is not written by agentfd: such data goes uncompressed
    } else if (c === 'e') options.exclude = true;
    else if (c === 'f') options.crossFilesystems = true;
    else if (c === 'h') options.noRecursion = true;
    else if (c === 'P' || c === 'V' || c === 'C' || c === 'J') {
      // Options with a value up to ':' (strip path, verify, accurate, basejob).
      const end = letters.indexOf(':', i);
      i = end < 0 ? letters.length : end;
    }
  }
  return options;
}

/** Parse the items of one `fileset` command (each a frame's text, trailing newline optional). */
export function parseFileSet(items: string[]): FileSet {
  const fileset: FileSet = { includes: [], excludes: [] };
  let block: IncludeBlock | null = null;
  let inExclude = false;
  for (const raw of items) {
    const item = raw.replace(/\n$/, '');
    if (item.length === 0) continue;
    const code = item[0]!;
    const value = item.slice(item.indexOf(' ') + 1);
    switch (code) {
      case 'I':
        block = { options: [], files: [], plugins: [] };
        fileset.includes.push(block);
        inExclude = false;
        break;
      case 'E':
        inExclude = true;
        block = null;
        break;
      case 'O':
        block?.options.push(parseOptions(item.slice(2)));
        break;
      case 'W': {
        const last = block?.options.at(-1);
        if (last) last.wild.push(value);
        break;
      }
      case 'F':
        if (inExclude) fileset.excludes.push(value);
        else block?.files.push(value);
        break;
      case 'P':
        if (!inExclude) block?.plugins.push(value);
        break;
      default:
        // N (end of block), R (regex), B, X, Z, G, D, T: not steering this implementation yet
        break;
    }
  }
  return fileset;
}

/** The options that apply to the files of a block: the first block of options (Bacula's default). */
export function blockOptions(block: IncludeBlock): IncludeOptions {
  return block.options.find((o) => !o.exclude) ?? { digest: null, gzip: null, exclude: false, crossFilesystems: false, noRecursion: false, wild: [] };
}
