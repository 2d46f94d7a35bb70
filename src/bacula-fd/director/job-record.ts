/**
 * What `agentfd serve` keeps of a job, for `status client`, `cancel`, `setbandwidth` and the
 * %-codes of the job's run scripts. Its own module because the Director conversation
 * (director.ts), the server and the run scripts all read it, and the run scripts are run by the
 * conversation: kept in director.ts it made run-scripts.ts import back up into the module that runs it.
 */
import { BandwidthThrottle } from '../transfer/bandwidth.js';

/** What a running job has done so far, as `status client` shows it. */
export interface JobProgress {
  /** Files sent (backup) or restored. */
  files: number;
  /** Bytes sent to the SD (backup: after compression) or written (restore). */
  bytes: number;
  /** File bytes read (backup). */
  readBytes: number;
  /** Entries looked at (backup) or begun (restore). */
  examined: number;
  /** The file being processed. */
  lastFile: string;
  /** The Storage Daemon connection: messages read from it, and whether it is TLS; null once closed. */
  sd: { readSeqNo: number; tls: boolean } | null;
}

/** What the server keeps of a job, for `status` and `cancel`. */
export interface JobRecord {
  jobId: number;
  job: string;
  kind: 'backup' | 'restore' | 'verify' | 'status' | 'estimate' | 'unknown';
  level: string;
  started: Date;
  ended: Date | null;
  files: number;
  bytes: number;
  termCode: number | null;
  errors: string[];
  cancelled: boolean;
  /** The job's bandwidth limit towards the SD (`setbandwidth`, or [serve] max_bandwidth_per_job). */
  throttle?: BandwidthThrottle;
  /** While data moves: what was done so far. */
  progress?: () => JobProgress;
  /** A restore: the files the Director expects (its `restore files=N`), 0 when not said. */
  expectedFiles?: number;
  /** For the rate `status` shows: the bytes and time it last looked, and the smoothed rate then. */
  rate?: { at: number; bytes: number; smoothed: number };
}

/** A new job's record; `limit` is the bandwidth it starts with (bytes/s, 0: none). */
export function newJobRecord(jobId: number, job: string, limit: number): JobRecord {
  return {
    jobId, job, kind: 'unknown', level: '-', started: new Date(), ended: null, files: 0, bytes: 0, termCode: null, errors: [], cancelled: false,
    throttle: new BandwidthThrottle(limit),
  };
}
