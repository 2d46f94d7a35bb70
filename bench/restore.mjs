/**
 * Restore benchmark: each backup the pipeline suite makes is restored right after it, in the same
 * run, by `node bin/agentfd.js restore --json` in a child process, through the same agent (the
 * Exchange sample writes <to>/SG1/Big.edb), into a scratch directory on the same disk.
 *
 * Throughput is plaintext bytes over the wall time around the child, and the ratio is restore over
 * backup of the same setting: a restore is the one job nobody can wait for, so the goal is that it
 * is at least as fast as the backup. The first restore of every setting is compared with the input
 * (SHA-256): a fast restore that writes the wrong bytes is worth nothing. The restored file and the
 * job's data are deleted after every run, so the disk does not fill.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { sha256File } from './inputs.mjs';
import { runAgentfd } from './pipeline.mjs';

/**
 * The restore case that follows `backup` (a case of the pipeline suite): `made.jobId` is the job
 * that backup made in this run, null when it failed.
 */
export function restoreCase({ ws, job, made, backup, encrypted, input, scratch }) {
  let verified = false;
  return {
    id: backup.id.replace(/^backup\//, 'restore/'),
    suite: 'restore',
    name: backup.name,
    input,
    baseline: backup.id,
    follows: backup.id,
    baselineLabel: 'backup',
    note: 'ratio: restore / backup, goal >= 1',
    run: async () => {
      if (made.jobId === null) throw new Error('nothing to restore: the backup of this run failed');
      const to = path.join(scratch, 'restored');
      rmSync(to, { recursive: true, force: true });
      try {
        const { json, seconds, peakRss } = await runAgentfd(ws.root, [
          'restore', '--config', job.config, '--job-id', String(made.jobId), '--to', to, ...ws.keyArgs(encrypted),
        ]);
        if (json.mode !== 'agent') throw new Error(`restore mode ${json.mode}, not "agent" (the same agent as the backup)`);
        if (json.bytes !== input.bytes) throw new Error(`restore wrote ${json.bytes} bytes, the input has ${input.bytes}`);
        if (!verified) {
          const digest = sha256File(input.restoredPath(to));
          if (digest !== input.sha256) throw new Error(`the restored ${input.name} input differs from the original (SHA-256 ${digest}, expected ${input.sha256})`);
          verified = true;
        }
        return { bytes: json.bytes, seconds, jobSeconds: json.seconds, peakRss, verified };
      } finally {
        rmSync(to, { recursive: true, force: true });
        made.jobId = null;
        job.reset();
      }
    },
  };
}
