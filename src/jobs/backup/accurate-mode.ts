/**
 * Accurate mode in a backup (see ../accurate.ts): the job notes every path its agent reported, with
 * what it sent, and once the files are done compares them with its reference job: what the
 * reference had and this job neither sent nor saw was deleted, and a new path with a deleted one's
 * content was renamed. Only an agent that reports every file it still has (the capability
 * "accurate") can tell, and only against a reference, so a full backup never is accurate.
 */
import type { AgentFile, AgentIdentity, BackupRun } from '../../agents/agent.js';
import type { Level } from '../../agents/types.js';
import type { Catalog, JobRow, NewFile } from '../../catalog/catalog.js';
import type { AccurateRecord } from '../../pipeline/records.js';
import { compareWithReference, existingFiles, streamKey } from '../accurate.js';
import { restoreChain } from '../chain.js';

export const NO_CHANGES: AccurateRecord = { deleted: [], renamed: [] };

export class AccurateMode {
  /** Every path this job reported, with the content key of what it sent (null: seen, or no content). */
  private readonly reported = new Map<string, string | null>();

  private constructor(
    private readonly catalog: Catalog,
    private readonly reference: JobRow,
  ) {}

  /** The accurate mode of a backup, or null when the backup cannot be one. */
  static of(catalog: Catalog, agent: Pick<AgentIdentity, 'capabilities'>, level: Level, reference: JobRow | null): AccurateMode | null {
    return level !== 'full' && reference && agent.capabilities.includes('accurate') ? new AccurateMode(catalog, reference) : null;
  }

  /** Note a file the job saved (its streams as they go into the catalog). */
  saved(file: AgentFile, streams: NewFile['streams']): void {
    this.reported.set(file.path, file.seen ? null : streamKey(streams));
  }

  /** What was deleted and renamed since the reference job; call it once the job's files are done. */
  async changes(run: Pick<BackupRun, 'stillExisting'>): Promise<AccurateRecord> {
    const referenceIds = restoreChain(this.catalog, this.reference.id).map((j) => j.id).reverse();
    // An agent that does not report every file it still has (a Bacula plugin) is asked about
    // the ones it did not report, as bacula-fd asks checkFile(); those it keeps carry forward.
    if (run.stillExisting) {
      const unreported = existingFiles(this.catalog, this.reference.id).map((f) => f.path).filter((p) => !this.reported.has(p));
      if (unreported.length > 0) for (const kept of await run.stillExisting(unreported)) this.reported.set(kept, null);
    }
    return compareWithReference(this.catalog, referenceIds, this.reported);
  }
}
