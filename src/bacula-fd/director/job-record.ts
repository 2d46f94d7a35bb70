/**
 * What `agentfd serve` keeps of a job, for `status client`, `cancel` and the %-codes of the
 * job's run scripts. Its own module because the Director conversation (director.ts), the server
 * and the run scripts all read it, and the run scripts are run by the conversation: kept in
 * director.ts it made run-scripts.ts import back up into the module that runs it.
 */

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
}
