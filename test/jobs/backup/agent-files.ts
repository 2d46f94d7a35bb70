/**
 * Files as agents hand them to a backup job: from the built-in filesystem agent walking a real
 * directory, or described in place (`describedFile`) where a test needs a file the way no healthy
 * disk gives it: one that grows past the size it declared, or whose stream breaks off.
 */
import type { AgentFile, BackupRun } from '../../../src/agents/agent.js';
import { createFilesystemAgent } from '../../../src/agents/filesystem/index.js';
import type { Level } from '../../../src/agents/types.js';

export const filesystemAgent = createFilesystemAgent();

/** The filesystem agent's backup run over `dir`. */
export function filesystemRun(dir: string, level: Level = 'full', logs: string[] = []): Promise<BackupRun> {
  return filesystemAgent.backup({
    jobName: 'stage', jobId: 1, options: { paths: dir }, filesetCheck: () => true, log: (level, message) => void logs.push(`${level}: ${message}`),
    isCancelled: () => false, level, sinceNs: 0n, jobStartNs: BigInt(Date.now()) * 1_000_000n, referenceState: null,
  });
}

export interface DescribedStream {
  name?: string;
  /** What the stream declares it holds (null: unknown). */
  sizeHint: number | null;
  /** The pieces it delivers, in order; an Error among them is thrown at that point. */
  pieces: (Uint8Array | Error)[];
}

/** A regular file as an agent describes it, with streams that deliver exactly `pieces`. */
export function describedFile(path: string, streams: DescribedStream[], refused?: string): AgentFile {
  return {
    path, kind: 'regular', linkTarget: null, mode: 0o644, seen: false, mtimeNs: 1_700_000_000_000_000_000n, size: null, winAttributes: 0,
    ...(refused ? { refused } : {}),
    streams: streams.map((s, index) => ({
      index, type: 'data', name: s.name ?? (index === 0 ? 'data' : `s${index}`), sizeHint: s.sizeHint, rawRestorable: false,
      data: async function* () {
        for (const piece of s.pieces) {
          if (piece instanceof Error) throw piece;
          yield piece;
        }
      },
    })),
  };
}
