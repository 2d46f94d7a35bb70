/**
 * Many small files: a full backup of 1,000,000 files of 1 KiB (quick mode: 200,000) made by the
 * native "SyntheticFiles" agent, isolated in its host process (the default), through the CLI in a
 * child process. The agent computes its files (it reads no disk), so what is measured is agentfd's
 * cost per file: the bridge calls, records, catalog rows, volume writes and its fdatasync.
 *
 * Reported: files per second over the wall time of the whole job, and the peak RSS of the daemon
 * plus the agent host (a million catalog rows must not mean a million objects in memory).
 * Compression is off: incompressible 1 KiB files would only add the codec's cost per call, which
 * the pipeline suite measures on large streams. Goal: >= 50,000 files/s, peak RSS <= 500 MiB.
 */
import { backupOnce } from './pipeline.mjs';

export const SMALL_FILE_BYTES = 1024;

export function smallFilesCases({ ws, files }) {
  const agent = ws.agents.SyntheticFiles;
  const job = agent.missing
    ? null
    : ws.job('small-files', {
        agent: 'SyntheticFiles', compression: 'none', options: { files, size: SMALL_FILE_BYTES, dirs: 1000, seed: 1 },
      });
  return [
    {
      id: 'small-files',
      suite: 'small files',
      name: 'SyntheticFiles, none + SHA-256, isolated',
      input: { label: `${files.toLocaleString('en-US')} × 1 KiB`, bytes: files * SMALL_FILE_BYTES },
      unit: 'files/s',
      note: 'goal: >= 50,000 files/s, peak RSS <= 500 MiB',
      run: async () => {
        if (!job) return { skipped: agent.missing };
        try {
          const sample = await backupOnce(ws, job, files * SMALL_FILE_BYTES);
          if (sample.files !== files) throw new Error(`the backup saved ${sample.files} files, not ${files}`);
          return sample;
        } finally {
          job.reset();
        }
      },
    },
  ];
}
