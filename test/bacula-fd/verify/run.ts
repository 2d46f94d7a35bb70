/** A Verify run for the stage tests: what it sends the Director, its job messages and log kept. */
import type { FileSet } from '../../../src/bacula-fd/fileset/fileset.js';
import { newVerifyTotals, type VerifyRun } from '../../../src/bacula-fd/transfer/verify.js';

export function recordingVerify(fileset: FileSet, isCancelled = () => false) {
  const sent: Buffer[] = [];
  const infos: string[] = [];
  const logs: string[] = [];
  const run: VerifyRun = {
    director: { send: async (message) => void sent.push(Buffer.from(message)) },
    fileset,
    log: (level, message) => logs.push(`${level}: ${message}`),
    info: async (message) => void infos.push(message),
    isCancelled,
  };
  return { run, totals: newVerifyTotals(), sent, infos, logs, texts: () => sent.map((m) => m.toString('latin1')) };
}
