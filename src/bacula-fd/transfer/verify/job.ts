/**
 * One serve Verify job's run and what it counts: the Director connection its records go to, the
 * FileSet, and the job's messages. Every stage of transfer/verify/ takes these.
 */
import type { FileSet } from '../../fileset/fileset.js';

/** Where a Verify job's attributes and digests go: the Director's connection. */
export interface DirectorSink {
  send(message: Buffer | string): Promise<void>;
}

export interface VerifyRun {
  director: DirectorSink;
  fileset: FileSet;
  /** Warnings and errors: the job's messages to the Director (and the serve log). */
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
  /** A job message of type M_INFO: how bacula-fd reports what a Data verify found different. */
  info: (message: string) => Promise<void>;
  isCancelled: () => boolean;
  /** Called as the counts grow, for `status client`. */
  progress?: (totals: VerifyTotals) => void;
}

export interface VerifyTotals {
  /** Entries examined: attributes records sent or read (JobFiles). */
  files: number;
  /** File bytes read (ReadBytes): from disk for a digest, or data records' bytes as the SD sent them. */
  readBytes: number;
  /** Bytes digested (JobBytes): the same from disk; the decoded data of a Data verify. */
  jobBytes: number;
  errors: string[];
  /** A Data verify found a digest or size that differs: the job ends "Verify Differences". */
  differences: boolean;
  /** The volume's data could not be read to its end (bad data): the job ends in error. */
  failed: boolean;
}

export function newVerifyTotals(): VerifyTotals {
  return { files: 0, readBytes: 0, jobBytes: 0, errors: [], differences: false, failed: false };
}
