/**
 * The stages of a scan on their own, on a real session in real volumes: find-sessions finds it
 * (and refuses a volume of another repository), read-job reads its files with their digests, and
 * enter-job enters it into an empty catalog as the backup had entered it; a session without an
 * end is entered as aborted.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../../src/catalog/catalog.js';
import { FileSaver } from '../../../src/jobs/backup/file-saver.js';
import { enterJob } from '../../../src/jobs/scan/enter-job.js';
import { findSessions } from '../../../src/jobs/scan/find-sessions.js';
import { readJob } from '../../../src/jobs/scan/read-job.js';
import { parseCompression } from '../../../src/pipeline/codecs.js';
import { tempDir } from '../../helpers/native.js';
import { describedFile, filesystemAgent } from '../backup/agent-files.js';
import { openStageSession, type StageSession } from '../backup/stage-session.js';

const TRUST_NONE = { all: new Map(), byJob: new Map(), problems: [] };

/** A session of two files; ended as committed unless `ended` is false. */
async function sessionOfTwoFiles(ended = true): Promise<{ session: StageSession; volumes: string[]; uuid: string }> {
  const session = await openStageSession({ agent: filesystemAgent, jobName: 'scanned' });
  const saver = new FileSaver(session.writer, filesystemAgent, parseCompression('none'));
  const files = [
    describedFile('/a.txt', [{ sizeHint: 5, pieces: [Buffer.from('first')] }]), // whole: one FILE_WHOLE record
    describedFile('/b.txt', [{ sizeHint: null, pieces: [Buffer.from('sec'), Buffer.from('ond')] }]), // streamed: ended by the job
  ];
  for (const [index, file] of files.entries()) {
    if (!(await saver.save(file, index)).whole) await session.writer.fileEnd(file.path, { fileIndex: index, status: 'ok', error: null });
  }
  await saver.close();
  if (ended) await session.writer.end({ status: 'committed', endedNs: '2', files: 2, bytes: 11, failedFiles: 0, error: null }, null);
  await session.volumes.sync();
  return { session, volumes: session.writer.placements.map((p) => p.path), uuid: session.catalog.job(session.jobId)!.uuid };
}

describe('the stages of a scan (jobs/scan/)', () => {
  it('finds the session, reads its files with their digests, and enters it as the backup did', async () => {
    const { session, volumes, uuid } = await sessionOfTwoFiles();
    try {
      const errors: string[] = [];
      const found = await findSessions(volumes, null, errors);
      expect(errors).toEqual([]);
      expect(found.map((f) => [f.jobId, f.uuid])).toEqual([[session.jobId, uuid]]);
      expect(found[0]!.placements[0]!.path).toBe(volumes[0]);

      const job = await readJob(found[0]!, {});
      expect(job.error, job.error ?? "").toBeNull();
      expect(job.end?.status).toBe('committed');
      expect(job.files.map((f) => [f.path, f.status, f.streams[0]!.bytes])).toEqual([['/a.txt', 'ok', 5], ['/b.txt', 'ok', 6]]);
      const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
      expect(job.files.map((f) => f.streams[0]!.sha256)).toEqual([sha256('first'), sha256('second')]);

      const fresh = Catalog.open(path.join(tempDir('scan-stage'), 'data'));
      try {
        const entered = enterJob(fresh, found[0]!, { ...job, start: job.start! }, TRUST_NONE);
        expect(entered).toEqual({ status: 'committed', files: 2, warning: null });
        const row = fresh.job(session.jobId)!;
        expect([row.uuid, row.name, row.status, row.files]).toEqual([uuid, 'scanned', 'committed', 2]);
        expect(fresh.jobVolumes(session.jobId).map((v) => v.path)).toEqual(volumes);
      } finally {
        fresh.close();
      }
    } finally {
      await session.close();
    }
  });

  it('a session without an end is entered as aborted, with the reason', async () => {
    const { session, volumes } = await sessionOfTwoFiles(false);
    try {
      const found = await findSessions(volumes, null, []);
      const job = await readJob(found[0]!, {});
      expect(job.end).toBeNull();
      const fresh = Catalog.open(path.join(tempDir('scan-stage'), 'data'));
      try {
        expect(enterJob(fresh, found[0]!, { ...job, start: job.start! }, TRUST_NONE).status).toBe('aborted');
        expect(fresh.job(session.jobId)!.error).toMatch(/interrupted|no end|ended/);
      } finally {
        fresh.close();
      }
    } finally {
      await session.close();
    }
  });

  it('does not scan a volume of another repository: its labels would be taken for this catalog’s', async () => {
    const { session, volumes } = await sessionOfTwoFiles();
    try {
      const errors: string[] = [];
      expect(await findSessions(volumes, 'some-other-repository', errors)).toEqual([]);
      expect(errors.join('\n')).toMatch(/was not scanned: it belongs to repository \S+ \(another storage directory\), and this catalog indexes repository some-other-repository/);
    } finally {
      await session.close();
    }
  });
});
