/** A serve backup job for the stage tests: its streams kept as the SD would get them, its log kept. */
import { decodeAttributes, decodeLStat, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { parseFileSet, type FileSet } from '../../../src/bacula-fd/fileset/fileset.js';
import { BackupJob, newTotals, type BackupRun, type StreamSink } from '../../../src/bacula-fd/transfer/backup/job.js';

export interface Sent {
  fileIndex: number;
  stream: number;
  length: bigint;
  frames: Buffer[];
}

/** A FileSet of one Include block: Options letters, then File lines (items as the Director sends them). */
export function filesetOf(letters: string, files: string[], more: string[] = []): FileSet {
  return parseFileSet(['I', `O ${letters}`, ...more, 'N', ...files.map((f) => `F ${f}`), 'N']);
}

/** A Storage Daemon that keeps every stream as it would get it: each one's file index, stream number, declared length and frames. */
export function recordingSd(): { sd: StreamSink; sent: Sent[] } {
  const sent: Sent[] = [];
  const sd: StreamSink = {
    async sendStream(fileIndex, stream, length, frames) {
      const got: Buffer[] = [];
      for await (const frame of frames) got.push(Buffer.from(frame));
      sent.push({ fileIndex, stream, length: BigInt(length), frames: got });
      return got.reduce((n, f) => n + f.length, 0);
    },
  };
  return { sd, sent };
}

/** The attributes records among `sent`, decoded, in order. */
export function sentAttributes(sent: readonly Sent[]) {
  return sent.filter((s) => s.stream === STREAM.UNIX_ATTRIBUTES).map((s) => {
    const record = decodeAttributes(s.frames[0]!);
    return { ...record, stat: decodeLStat(record.lstat) };
  });
}

export function recordingJob(run: Partial<BackupRun> = {}) {
  const { sd, sent } = recordingSd();
  const logs: string[] = [];
  const job = new BackupJob({ sd, fileset: filesetOf('', []), since: null, isCancelled: () => false, log: (level, m) => logs.push(`${level}: ${m}`), ...run }, newTotals());
  return { job, sent, logs, attributes: () => sentAttributes(sent) };
}
