/**
 * `estimate` (bconsole's estimate job=X [listing]): what a backup of the FileSet would save, found
 * by the backup's own walk with a sink that counts instead of sending, so the two cannot disagree.
 * File data is not read: a file counts with its size. Plugin lines are not run.
 */
import { sendBackup, type BackupRun, type StreamSink } from '../transfer/backup.js';
import { STREAM, decodeAttributes, decodeLStat } from '../attributes/lstat.js';
import { groupNameOf, userNameOf } from '../../platform/libc.js';
import { listingLine, type OwnerNames } from './listing.js';

/** The system's names, each id looked up once per estimate; a system without them (Windows) lists numbers. */
function systemNames(): OwnerNames {
  const users = new Map<number, string | null>();
  const groups = new Map<number, string | null>();
  const cached = (cache: Map<number, string | null>, id: number, look: (id: number) => string | null) => {
    if (!cache.has(id)) {
      let name: string | null = null;
      try {
        name = look(id);
      } catch {
        // no name service here: the number is listed
      }
      cache.set(id, name);
    }
    return cache.get(id) ?? null;
  };
  return { user: (uid) => cached(users, uid, userNameOf), group: (gid) => cached(groups, gid, groupNameOf) };
}

export interface Estimate {
  files: number;
  bytes: bigint;
  /** `ls -l`-like lines, as bacula-fd lists them (listing.ts). */
  listing: string[];
}

/** The streams that carry a file's data; each counts with the file's size, as bacula-fd counts. */
const DATA_STREAMS = new Set<number>([STREAM.FILE_DATA, STREAM.GZIP_DATA, STREAM.SPARSE_DATA, STREAM.SPARSE_GZIP_DATA, STREAM.COMPRESSED_DATA, STREAM.SPARSE_COMPRESSED_DATA]);

export async function estimate(run: Omit<BackupRun, 'sd' | 'skipPlugins'>): Promise<Estimate> {
  const result: Estimate = { files: 0, bytes: 0n, listing: [] };
  const names = systemNames();
  const sink: StreamSink = {
    async sendStream(_index, stream, expectedLength, frames) {
      if (stream === STREAM.UNIX_ATTRIBUTES) {
        for await (const frame of frames) {
          const attributes = decodeAttributes(frame);
          const stat = decodeLStat(attributes.lstat);
          result.files++;
          result.listing.push(listingLine({ ...stat, type: attributes.type, fname: attributes.fname, link: attributes.link }, names));
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
