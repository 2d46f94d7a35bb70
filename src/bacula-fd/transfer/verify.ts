/**
 * A Bacula Verify job, the File Daemon's part (filed/verify.c, verify_vol.c): after `verify
 * level=...` the FD either walks the FileSet and sends the Director each file's attributes and
 * digest (InitCatalog, Catalog, DiskToCatalog: verify/disk.ts), or reads the verified job's data
 * from the Storage Daemon and sends the Director the attributes and digests the volume holds
 * (VolumeToCatalog), or decodes and checks that data itself (Data: verify/volume.ts,
 * verify/data-check.ts). The Director compares what it gets with its catalog.
 *
 * The stages, in verify/: the records the Director reads (director-records.ts), the disk walk on
 * the backup's walker (disk.ts), the volume levels (volume.ts, data-check.ts), the shared state (job.ts).
 */
import { verifyDisk } from './verify/disk.js';
import { newVerifyTotals, type VerifyRun, type VerifyTotals } from './verify/job.js';
import { verifyData, verifyVolume } from './verify/volume.js';
import type { SdRecord } from './storage-daemon.js';

export { newVerifyTotals, type VerifyRun, type VerifyTotals } from './verify/job.js';

/** A level as `verify level=` names it: Bacula's job level letter, and what the FD reads. */
export interface VerifyLevel {
  code: string;
  reads: 'disk' | 'volume' | 'data';
}

const LEVELS: Readonly<Record<string, VerifyLevel>> = {
  init: { code: 'V', reads: 'disk' },
  catalog: { code: 'C', reads: 'disk' },
  disk_to_catalog: { code: 'd', reads: 'disk' },
  volume: { code: 'O', reads: 'volume' },
  data: { code: 'A', reads: 'data' },
};

/** The level of `verify level=<word>` (compared regardless of case, as bacula-fd), or null. */
export function verifyLevel(word: string): VerifyLevel | null {
  return LEVELS[word.toLowerCase()] ?? null;
}

/** The verified job's read session on the SD, for the levels that read a volume. */
export interface VolumeSession {
  open(): Promise<AsyncIterable<SdRecord>>;
  /** `complete`: every record was read (the session closes in order; otherwise it is dropped). */
  close(complete: boolean): Promise<void>;
}

/** Run the verify of `level`; the totals keep what was done if this throws. */
export async function runVerify(level: VerifyLevel, run: VerifyRun, volume: VolumeSession | null, totals: VerifyTotals = newVerifyTotals()): Promise<VerifyTotals> {
  if (level.reads === 'disk') {
    await verifyDisk(run, totals);
    return totals;
  }
  if (!volume) throw new Error('Storage command not issued before Verify.');
  const records = await volume.open();
  let complete = false;
  try {
    await (level.reads === 'volume' ? verifyVolume : verifyData)(run, records, totals);
    complete = !run.isCancelled() && !totals.failed;
  } finally {
    await volume.close(complete);
  }
  return totals;
}
