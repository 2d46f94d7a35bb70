/**
 * Accurate mode: what disappeared, or moved, since the reference job. Only the daemon can tell
 * reliably (the seed discussion of agentfd says as much): an agent that declares "accurate" (the
 * filesystem agent, and native agents with the capability) reports every object that still exists,
 * sending the changed ones and marking the unchanged ones "seen". Whatever the reference job had
 * and this job neither sent nor saw was deleted; a new path whose content digests equal those of a
 * deleted path was renamed.
 *
 * For an agent without the capability nothing can be concluded from a missing file, so nothing is
 * recorded as deleted: its state carries forward (see chain.ts).
 */
import type { Catalog, FileRow } from '../catalog/catalog.js';
import type { AccurateRecord } from '../pipeline/records.js';

/** Paths a job left existing: what it sent or saw (accurate agents report everything). */
export function existingFiles(catalog: Catalog, jobId: number): FileRow[] {
  return catalog.files(jobId).filter((f) => f.status === 'ok');
}

/** The digest list of the latest saved version of `path` in `jobIds` (newest first), or null. */
function contentKey(catalog: Catalog, path: string, jobIds: number[]): string | null {
  const row = catalog.latestSaved(path, jobIds);
  return row ? streamKey(catalog.streams(row.id)) : null;
}

/** What identifies a file's content: its streams' names, sizes and digests; null for no content. */
export function streamKey(streams: { name: string; bytes: number; sha256: string | null }[]): string | null {
  if (streams.length === 0 || streams.every((s) => s.bytes === 0)) return null; // nothing to recognise it by
  return streams.map((s) => `${s.name}:${s.bytes}:${s.sha256}`).join('|');
}

/**
 * Compare this job's files with the reference job's. `current` maps each path this job reported to
 * the content key of what it sent (null when seen or empty). `referenceChain` lists the reference
 * job and the jobs it builds on, newest first.
 */
export function compareWithReference(
  catalog: Catalog,
  referenceChain: number[],
  current: ReadonlyMap<string, string | null>,
): AccurateRecord {
  const [reference] = referenceChain;
  if (reference === undefined) return { deleted: [], renamed: [] };
  const deleted = existingFiles(catalog, reference)
    .filter((f) => !current.has(f.path))
    .map((f) => ({ path: f.path, kind: f.kind }));
  const renamed: AccurateRecord['renamed'] = [];
  if (deleted.length > 0) {
    const referencePaths = new Set(existingFiles(catalog, reference).map((f) => f.path));
    const added = new Map<string, string>(); // content key -> new path
    for (const [path, key] of current) if (key && !referencePaths.has(path) && !added.has(key)) added.set(key, path);
    for (const gone of deleted) {
      const key = added.size > 0 ? contentKey(catalog, gone.path, referenceChain) : null;
      const to = key ? added.get(key) : undefined;
      if (to) {
        renamed.push({ from: gone.path, to });
        added.delete(key!);
      }
    }
  }
  return { deleted, renamed };
}
