/**
 * agentfd scan: rebuild the catalog from volumes alone (Bacula's bscan), in three stages under
 * scan/: find-sessions (every volume's records, for the sessions in them), read-job (each session
 * through the session reader, metadata only: CRCs, sequence, tags, the manifest and its signature
 * are still checked) and enter-job (the job entered with its original job id, files, agents,
 * digests and agent state). Jobs already in the catalog (same UUID) are left as they are. A session without an
 * end is entered as aborted, so nothing restores it as complete. A signature is only as good as the
 * key behind it, and anyone can make a key: a job signed by a key not among the trusted signers is
 * entered as untrusted, which restore and verify refuse (signatures.ts).
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Catalog } from '../catalog/catalog.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError, messageOf } from '../errors.js';
import { parseVolumeFileName } from '../volume/index.js';
import { enterJob } from './scan/enter-job.js';
import { findSessions } from './scan/find-sessions.js';
import { readJob, type ScannedJob } from './scan/read-job.js';
import type { TrustedSigners } from './signatures.js';

export interface ScanReport {
  volumes: string[];
  added: { jobId: number; name: string; status: string; files: number }[];
  present: number[];
  errors: string[];
  /** Jobs entered but not to be trusted as they are (signed by a key not trusted). */
  warnings: string[];
}

/** Volumes in set and sequence order, so sessions that span volumes are read in order. */
function orderVolumes(files: string[]): string[] {
  return [...files].map((f) => path.resolve(f)).sort((a, b) => {
    const pa = parseVolumeFileName(path.basename(a));
    const pb = parseVolumeFileName(path.basename(b));
    if (pa && pb && pa.set === pb.set) return pa.sequence - pb.sequence;
    return a.localeCompare(b);
  });
}

/**
 * Refuses, before anything is read, a path that is not a regular file: opening a FIFO would wait
 * for a writer forever, and a device or socket is no volume.
 */
function refuseNonFiles(volumes: string[]): void {
  for (const volume of volumes) {
    let stat;
    try {
      stat = statSync(volume);
    } catch {
      continue; // a missing or unreadable file is reported when it is read, with the reader's message
    }
    if (stat.isFile()) continue;
    const kind = stat.isFIFO() ? 'a FIFO (named pipe)' : stat.isDirectory() ? 'a directory' : stat.isSocket() ? 'a socket' : stat.isCharacterDevice() || stat.isBlockDevice() ? 'a device' : 'not a regular file';
    throw new AgentfdError(
      'E_VOLUME_NOT_FILE',
      `cannot scan ${volume}: it is ${kind}, not a volume file; nothing was scanned. Give the paths of volume files (<set>-<number>.afv), e.g. agentfd scan ${path.join('STORAGE_DIR', '*.afv')}`,
    );
  }
}

export async function runScan(options: { catalog: Catalog; volumes: string[]; secrets: UnwrapSecrets; trusted?: TrustedSigners }): Promise<ScanReport> {
  const { catalog } = options;
  const volumes = orderVolumes(options.volumes);
  refuseNonFiles(volumes);
  const trusted: TrustedSigners = options.trusted ?? { all: new Map(), byJob: new Map(), problems: [] };
  const report: ScanReport = { volumes, added: [], present: [], errors: [], warnings: [...trusted.problems] };
  // One repository per catalog: a catalog that indexes one already scans only its volumes.
  const repositories = [...new Set(catalog.repositories())];
  const sessions = await findSessions(volumes, repositories.length === 1 ? repositories[0]! : null, report.errors);
  for (const found of sessions) {
    if (catalog.jobByUuid(found.uuid)) {
      report.present.push(found.jobId);
      continue;
    }
    const clash = catalog.job(found.jobId);
    if (clash) {
      report.errors.push(`job ${found.jobId} (${found.uuid}) in the volumes has the id of another job in the catalog (${clash.uuid}); scan into an empty data directory to rebuild this catalog`);
      continue;
    }
    let job: ScannedJob;
    try {
      job = await readJob(found, options.secrets);
    } catch (error) {
      report.errors.push(`job ${found.jobId} is encrypted and was not added: ${messageOf(error)}`); // E_WRONG_KEY: nothing could be read
      continue;
    }
    if (job.error !== null) report.errors.push(`job ${found.jobId}: ${job.error}`);
    const { start } = job;
    if (!start) continue;
    const entered = enterJob(catalog, found, { ...job, start }, trusted);
    if (entered.warning) report.warnings.push(entered.warning);
    report.added.push({ jobId: found.jobId, name: job.info?.jobName ?? '(unknown)', status: entered.status, files: entered.files });
  }
  return report;
}
