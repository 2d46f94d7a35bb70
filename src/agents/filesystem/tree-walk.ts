/**
 * The one tree walker of agentfd's two backups of a file tree: the filesystem agent's (walk.ts)
 * and agentfd serve's (bacula-fd/transfer/backup/include-walk.ts). Depth-first, one directory
 * at a time: the caller enters a directory with its names listed in the order it wants
 * (namesInByteOrder or namesInReaddirOrder), and the walk hands back each entry as the caller's
 * `probe` found it (lstat, never following a symlink), in that order; once a directory's entries
 * are all handed back, and those of the directories entered below it, it says so (a `leave` step).
 * Which entries to keep, and which directories to descend into, the caller decides as each entry
 * comes: it descends by calling enter() before it asks for the next step.
 *
 * What differs between the two callers stays with them, each with its reason:
 * - order: the agent sorts names by their bytes (two backups of one tree list it identically);
 *   serve keeps the directory's own order, as bacula-fd does (FileIndexes, the first of a file's
 *   hard links, the Options left over for the next File entry then match the real FD's).
 * - probing ahead: the agent probes `batch` entries per call on its I/O thread, `ahead` batches
 *   ahead of the walk, to hide each call's latency; serve does too, with lstat and small-file
 *   reads (bacula-fd/transfer/backup/look-ahead.ts), and lstats a hard-linked entry again when it
 *   reaches it, since what it did with an earlier name (reading it, putting back its access time)
 *   comes before that lstat in bacula-fd.
 * - what a probe is: the agent's is a compact lstat from its I/O thread, after the fileset was
 *   asked about the name; serve's is Node's whole BigIntStats, which Bacula's LStat needs (owner,
 *   atime, nlink, rdev, blocks), and its FileSet is asked after lstat (the patterns differ for
 *   directories).
 * - post-order: serve sends a directory's record after its contents (leave steps); the agent lists
 *   a directory before its contents and ignores leave steps.
 */
import { opendir, readdir } from 'node:fs/promises';
import { orderedMap } from './ordered-map.js';
import { decodeName, fsPath } from '../../platform/byte-names.js';

/** A directory's names sorted by their bytes (readdir's own order differs between systems). */
export async function namesInByteOrder(dirPath: string): Promise<Buffer[]> {
  const names = await readdir(fsPath(dirPath), { encoding: 'buffer' });
  return names.sort(Buffer.compare);
}

/**
 * A directory's names in the order the file system gives them (readdir(3)), as bacula-fd walks.
 * Through opendir: fs.readdir sorts them (libuv's scandir does). Each name as its bytes
 * (platform/byte-names.ts), so a name that is not UTF-8 is found again by lstat and open.
 */
export async function namesInReaddirOrder(dirPath: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of await opendir(fsPath(dirPath), { encoding: 'buffer' as BufferEncoding })) names.push(decodeName(entry.name as unknown as Buffer)); // Node's types lack 'buffer' here; it works
  return names;
}

export interface TreeWalkOptions<D, N, P> {
  /** What the caller needs of a batch of a directory's entries, one result per name, in order. */
  probe: (dir: D, names: N[]) => Promise<P[]>;
  /** Names per probe call. */
  batch: number;
  /** Batches of a directory probed ahead of the walk; 0: each batch when the walk reaches it. */
  ahead: number;
}

/** An entry of the directory `dir`, as probed; or the end of a directory entered. */
export type TreeStep<D, P> = { kind: 'entry'; dir: D; entry: P } | { kind: 'leave'; dir: D };

interface Frame<D, P> {
  dir: D;
  probes: AsyncGenerator<P[], void, undefined>;
  current: P[];
  next: number;
}

function* slices<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let at = 0; at < items.length; at += size) yield items.slice(at, at + size);
}

export class TreeWalk<D, N, P> {
  private readonly stack: Frame<D, P>[] = [];
  private readonly batch: number;

  constructor(private readonly options: TreeWalkOptions<D, N, P>) {
    this.batch = Math.max(1, Math.floor(options.batch));
  }

  /** Descend into `dir`, whose names are `names` in walk order: its entries are the next steps, then its leave step. */
  enter(dir: D, names: N[]): void {
    const batches = slices(names, this.batch);
    const probe = (slice: N[]) => this.options.probe(dir, slice);
    const probes = this.options.ahead >= 1 ? orderedMap(batches, probe, { window: this.options.ahead }) : inTurn(batches, probe);
    this.stack.push({ dir, probes, current: [], next: 0 });
  }

  /** The next step of the innermost directory entered, or null once every directory entered has been left. */
  async next(): Promise<TreeStep<D, P> | null> {
    for (;;) {
      const frame = this.stack[this.stack.length - 1];
      if (frame === undefined) return null;
      if (frame.next < frame.current.length) return { kind: 'entry', dir: frame.dir, entry: frame.current[frame.next++]! };
      const step = await frame.probes.next();
      if (step.done) {
        this.stack.pop();
        return { kind: 'leave', dir: frame.dir };
      }
      frame.current = step.value;
      frame.next = 0;
    }
  }

  /** Stop early (or after a failure): wait for the probes in flight, so nothing they opened stays open. */
  async close(): Promise<void> {
    while (this.stack.length > 0) await this.stack.pop()!.probes.return();
  }
}

/** Each batch probed when the walk asks for it, none ahead. */
async function* inTurn<N, P>(batches: Iterable<N[]>, probe: (slice: N[]) => Promise<P[]>): AsyncGenerator<P[], void, undefined> {
  for (const slice of batches) yield await probe(slice);
}
