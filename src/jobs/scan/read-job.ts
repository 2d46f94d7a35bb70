/**
 * The second pass of a scan, for one session: its records read through the session reader
 * (metadata only; CRCs, sequence, tags, the manifest and its signature are still checked) into
 * what the catalog keeps of a job: its start, info and end, its files with their streams' digests,
 * its accurate-mode record and its agent state.
 */
import type { NewFile } from '../../catalog/catalog.js';
import type { UnwrapSecrets } from '../../crypto/envelope.js';
import { AgentfdError, messageOf } from '../../errors.js';
import { isNanoseconds, type AccurateRecord, type FileRecord, type SessionEnd, type SessionInfo, type SessionStart } from '../../pipeline/records.js';
import { readSession, type SessionEvent } from '../../sink/session-reader.js';
import type { FoundSession } from './find-sessions.js';

export interface ScannedJob {
  start: SessionStart | null;
  info: SessionInfo | null;
  /** Null: the session has no end (the job was interrupted), or reading it failed before. */
  end: SessionEnd | null;
  /** The signer whose signature the end carried and the reader checked. */
  verifiedSigner: string | null;
  state: Buffer | null;
  files: NewFile[];
  accurate: AccurateRecord;
  /** Why reading stopped early, or null. */
  error: string | null;
}

/**
 * Read `found` (metadata only). A wrong key throws E_WRONG_KEY (the job cannot be added); any
 * other failure keeps what was read, with its error.
 */
export async function readJob(found: FoundSession, secrets: UnwrapSecrets): Promise<ScannedJob> {
  const job: ScannedJob = { start: null, info: null, end: null, verifiedSigner: null, state: null, files: [], accurate: { deleted: [], renamed: [] }, error: null };
  const files = new FileCollector(job.files);
  try {
    for await (const event of readSession({ jobId: found.jobId, placements: found.placements, secrets, data: false, what: `job ${found.jobId}` })) {
      if (event.kind === 'start') job.start = event.start;
      else if (event.kind === 'info') job.info = event.info;
      else if (event.kind === 'accurate') job.accurate = event.record;
      else if (event.kind === 'state') job.state = event.blob;
      else if (event.kind === 'end') {
        job.end = event.end;
        job.verifiedSigner = event.signer;
      } else files.event(event);
    }
  } catch (error) {
    if (error instanceof AgentfdError && error.code === 'E_WRONG_KEY') throw error;
    job.error = messageOf(error);
  }
  return job;
}

/** The files of a session as the catalog enters them: each at its FILE_END, with its streams' digests. */
class FileCollector {
  private file: FileRecord | null = null;
  private streams: NewFile['streams'] = [];

  constructor(private readonly files: NewFile[]) {}

  event(event: SessionEvent): void {
    if (event.kind === 'file') {
      this.file = event.file;
      this.streams = [];
    } else if (event.kind === 'streamEnd' && this.file) {
      const s = this.file.streams[event.end.streamIndex]!;
      this.streams.push({ index: s.index, name: s.name, type: s.type, rawRestorable: s.rawRestorable, bytes: event.end.bytes, sha256: event.end.sha256 });
    } else if (event.kind === 'fileEnd' && this.file) {
      const file = this.file;
      if (!isNanoseconds(file.mtimeNs)) {
        throw new AgentfdError('E_VOLUME_CORRUPT', `the record of file ${file.fileIndex} (${file.path}) is damaged: its field "mtimeNs" is ${JSON.stringify(file.mtimeNs)}, not a time in nanoseconds`);
      }
      this.files.push({
        fileIndex: file.fileIndex, path: file.path, kind: file.kind, mode: file.mode, mtimeNs: BigInt(file.mtimeNs), size: file.size,
        seen: file.seen, linkTarget: file.linkTarget, agent: file.agent.name, agentVersion: file.agent.version, agentAbi: file.agent.abi,
        status: event.end.status, error: event.end.error, streams: this.streams, winAttributes: file.winAttributes,
      });
      this.file = null;
    }
  }
}
