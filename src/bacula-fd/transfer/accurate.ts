/**
 * Accurate mode as bacula-fd 9.6 runs it (filed/accurate.c). For an accurate incremental or
 * differential the Director sends, before `backup`, the files of the jobs it builds on:
 * `accurate files=N`, then per file one frame `path\0LStat\0checksum\0delta_seq` (directories end
 * in '/'), then EOD. The FD then decides per file by comparing with that list, not by the
 * since-time, and at the end reports every listed file it did not meet as FT_DELETED, so the
 * catalog knows it is gone and a restore of the latest state leaves it out.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { decodeName, fsPath } from '../../platform/byte-names.js';
import { baculaBase64FromBytes } from '../wire/base64.js';
import { BNET, type Bsock } from '../wire/bsock.js';
import { decodeLStat, type BaculaStat } from '../attributes/lstat.js';

/** What the file had in the jobs the incremental builds on. */
export interface AccurateEntry {
  lstat: string;
  /** The digest the catalog keeps (base64), or '' when the job saved none. */
  checksum: string;
  deltaSeq: number;
  seen: boolean;
}

/** The FileSet's `accurate =` letters when it gives none: mtime, ctime and size (find.c). */
export const DEFAULT_ACCURATE_OPTIONS = 'mcs';

/** How a file's digest is computed for the '5'/'1' options: the FileSet's signature algorithm. */
export type DigestAlgorithm = 'md5' | 'sha1' | 'sha256' | 'sha512';

export class AccurateList {
  private readonly files = new Map<string, AccurateEntry>();

  get size(): number {
    return this.files.size;
  }

  /** Reads the list that follows an `accurate files=N` command, up to its EOD. */
  static async receive(bsock: Bsock): Promise<AccurateList> {
    const list = new AccurateList();
    for (;;) {
      const item = await bsock.receive();
      if (item.kind === 'signal') {
        if (item.signal === BNET.EOD) return list;
        continue;
      }
      list.add(item.data);
    }
  }

  /** One frame of the list: NUL-separated path, LStat, checksum (may be missing), delta_seq. */
  add(frame: Buffer): void {
    const [path, lstat, checksum, deltaSeq] = decodeName(frame).split('\0'); // the path as its bytes (platform/byte-names.ts)
    if (!path || !lstat) return; // a frame without a path and an LStat carries nothing to compare
    this.files.set(path, { lstat, checksum: checksum ?? '', deltaSeq: Number(deltaSeq ?? 0) || 0, seen: false });
  }

  /**
   * Whether the file at `name` (a directory's with its trailing '/') must be saved: it is not in the
   * list, or one of the `options` letters finds it changed. It is marked seen either way, as
   * bacula-fd does in incremental and differential jobs.
   */
  async mustSave(name: string, st: BigIntStats, options: string, digest: DigestAlgorithm | null, isRegular: boolean): Promise<boolean> {
    const entry = this.files.get(name);
    if (!entry) return true;
    if (entry.seen) return false;
    entry.seen = true;
    const before = decodeLStat(entry.lstat);
    for (const letter of options) {
      if (changedBy(letter, before, st)) return true;
      if ((letter === '5' || letter === '1') && isRegular && digest) {
        // Without a saved checksum there is nothing to compare: bacula-fd saves the file (with a warning).
        if (!entry.checksum) return true;
        if ((await fileDigest(name, digest)) !== entry.checksum) return true;
      }
    }
    return false;
  }

  /** Marks a file as met without comparing (a file a Plugin line's agent reported). */
  markSeen(name: string): void {
    const entry = this.files.get(name);
    if (entry) entry.seen = true;
  }

  /** The listed files not met in this job, with the stat they had, for FT_DELETED records. */
  *unseen(): Generator<{ name: string; stat: BaculaStat }> {
    for (const [name, entry] of this.files) if (!entry.seen) yield { name, stat: decodeLStat(entry.lstat) };
  }
}

/** One of the stat letters of an `accurate =` option (i p n u g s a m c d); others are not stat tests. */
function changedBy(letter: string, before: BaculaStat, st: BigIntStats): boolean {
  const seconds = (ms: bigint) => ms / 1000n;
  switch (letter) {
    case 'i': return before.ino !== st.ino;
    case 'p': return before.mode !== Number(st.mode);
    case 'n': return before.nlink !== st.nlink;
    case 'u': return before.uid !== Number(st.uid);
    case 'g': return before.gid !== Number(st.gid);
    case 's': return before.size !== st.size;
    case 'a': return before.atime !== seconds(st.atimeMs);
    case 'm': return before.mtime !== seconds(st.mtimeMs);
    case 'c': return before.ctime !== seconds(st.ctimeMs);
    case 'd': return before.size > st.size; // only a shrinking file
    default: return false;
  }
}

/** A file's digest as the catalog keeps it: base64 of the digest bytes, without padding. */
async function fileDigest(path: string, algorithm: DigestAlgorithm): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(fsPath(path), { highWaterMark: 256 * 1024 })) hash.update(chunk as Buffer);
  return baculaBase64FromBytes(hash.digest(), true);
}
