/**
 * `estimate` (bconsole's estimate job=X [listing]): what a backup of the FileSet would save, found
 * by the backup's own walk with a sink that counts instead of sending, so the two cannot disagree.
 * File data is not read: a file counts with its size. Plugin lines are not run.
 */
import { sendBackup, type BackupRun, type StreamSink } from '../transfer/backup.js';
import { STREAM, decodeAttributes, decodeLStat } from '../attributes/lstat.js';

export interface Estimate {
  files: number;
  bytes: bigint;
  /** `ls -l`-like lines, as bacula-fd lists them. */
  listing: string[];
}

function modeText(mode: number): string {
  const type = (mode & 0o170000) === 0o040000 ? 'd' : (mode & 0o170000) === 0o120000 ? 'l' : '-';
  const bits = 'rwxrwxrwx'.split('').map((c, i) => ((mode >> (8 - i)) & 1 ? c : '-')).join('');
  return type + bits;
}

/** The streams that carry a file's data; each counts with the file's size, as bacula-fd counts. */
const DATA_STREAMS = new Set<number>([STREAM.FILE_DATA, STREAM.GZIP_DATA, STREAM.SPARSE_DATA, STREAM.SPARSE_GZIP_DATA, STREAM.COMPRESSED_DATA, STREAM.SPARSE_COMPRESSED_DATA]);

export async function estimate(run: Omit<BackupRun, 'sd' | 'skipPlugins'>): Promise<Estimate> {
  const result: Estimate = { files: 0, bytes: 0n, listing: [] };
  const sink: StreamSink = {
    async sendStream(_index, stream, expectedLength, frames) {
      if (stream === STREAM.UNIX_ATTRIBUTES) {
        for await (const frame of frames) {
          const attributes = decodeAttributes(frame);
          const stat = decodeLStat(attributes.lstat);
          result.files++;
          const date = new Date(Number(stat.mtime) * 1000).toISOString().replace('T', ' ').slice(0, 19);
          result.listing.push(`${modeText(stat.mode)} ${String(stat.nlink).padStart(2)} ${String(stat.uid).padEnd(8)} ${String(stat.gid).padEnd(8)} ${String(stat.size).padStart(10)} ${date} ${attributes.fname}\n`);
        }
      } else if (DATA_STREAMS.has(stream)) {
        result.bytes += BigInt(expectedLength);
      }
      return 0; // nothing read, nothing sent
    },
  };
  await sendBackup({ ...run, sd: sink, skipPlugins: true });
  return result;
}
