/**
 * The job's loop over the files its agent hands out: each one saved (file-saver.ts) and ended in
 * the session, its catalog row held for the next batch, and noted for accurate mode.
 *
 * A file that failed is recorded as failed, never as good, and fails the job; the job goes on with
 * the next file only where that is safe (errors.ts). Whatever ends the loop early is its `fatal`
 * error: the job is then committed as nothing, only ended (committer.ts).
 */
import type { AgentFile, AgentIdentity } from '../../agents/agent.js';
import { messageOf } from '../../errors.js';
import type { SessionWriter } from '../../sink/session-writer.js';
import type { AccurateMode } from './accurate-mode.js';
import type { CatalogBatch } from './catalog-batch.js';
import { fileRow } from './catalog-rows.js';
import { goesOnAfter } from './errors.js';
import type { BackupProgress, FileSaver } from './file-saver.js';
import type { JobLog } from './job-log.js';

export interface FilesOutcome {
  /** Files the agent handed out, saved or not. */
  files: number;
  failedFiles: number;
  /** What ended the loop before the agent's last file, or null. */
  fatal: unknown;
}

export interface FileLoop {
  saver: FileSaver;
  writer: SessionWriter;
  batch: CatalogBatch;
  accurate: AccurateMode | null;
  agent: Pick<AgentIdentity, 'name' | 'version' | 'abi' | 'kind'>;
  log: JobLog;
  onProgress?: (progress: BackupProgress) => void;
}

export async function saveFiles(files: AsyncIterable<AgentFile>, loop: FileLoop): Promise<FilesOutcome> {
  const { saver, writer, batch, log } = loop;
  const outcome: FilesOutcome = { files: 0, failedFiles: 0, fatal: null };
  try {
    for await (const file of files) {
      const fileIndex = outcome.files++;
      try {
        const saved = await saver.save(file, fileIndex);
        if (!saved.whole) await writer.fileEnd(file.path, { fileIndex, status: 'ok', error: null });
        batch.add(saved.row);
        loop.accurate?.saved(file, saved.row.streams);
      } catch (e) {
        outcome.failedFiles++;
        const message = messageOf(e);
        log.log('error', message);
        await writer.fileEnd(file.path, { fileIndex, status: 'failed', error: message });
        batch.add(fileRow(loop.agent, file, fileIndex, 'failed', message, []));
        if (!goesOnAfter(loop.agent, e)) throw e;
      }
      await batch.writeIfFull();
      loop.onProgress?.({ files: outcome.files, bytes: saver.bytes, path: file.path });
    }
  } catch (e) {
    outcome.fatal = e;
    log.keepError(messageOf(e));
  }
  return outcome;
}
