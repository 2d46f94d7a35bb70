/**
 * The Verify levels that read the job's data from the Storage Daemon (filed/verify_vol.c):
 * VolumeToCatalog sends the Director each attributes record as the volume holds it (Verify options
 * "pinsug5") and each digest the volume holds; Data sends nothing per file but decodes every data
 * record, and reports as job messages the files whose digest or size differs (data-check.ts).
 */
import { FT, STREAM, STREAM_MASK } from '../../attributes/lstat.js';
import type { SdRecord } from '../storage-daemon.js';
import { DataCheck } from './data-check.js';
import { DIGEST_NAMES, attributesMessage, digestMessage, recordFields } from './director-records.js';
import type { VerifyRun, VerifyTotals } from './job.js';

/** What verify_vol.c sends as the Verify options of every record: the Director compares these. */
const VOLUME_VERIFY_OPTIONS = 'pinsug5';

function isAttributes(stream: number): boolean {
  return stream === STREAM.UNIX_ATTRIBUTES || stream === STREAM.UNIX_ATTRIBUTES_EX;
}

/** VolumeToCatalog: the volume's attributes and digests, to the Director. */
export async function verifyVolume(run: VerifyRun, records: AsyncIterable<SdRecord>, totals: VerifyTotals): Promise<void> {
  for await (const record of records) {
    if (run.isCancelled()) return;
    const stream = record.stream & STREAM_MASK;
    if (isAttributes(stream)) {
      const fields = recordFields(record.data);
      totals.files++;
      run.progress?.(totals);
      // A deleted file's record (accurate backups) goes with FileIndex 0, as verify_vol.c sends it.
      const index = (fields.type & 0xffff) === FT.DELETED ? 0 : totals.files;
      await run.director.send(attributesMessage(index, VOLUME_VERIFY_OPTIONS, fields.fname, fields.lstat, fields.link));
    } else if (DIGEST_NAMES.has(stream)) {
      await run.director.send(digestMessage(totals.files, stream, record.data));
    }
  }
}

/** Data: every record decoded, digests and sizes compared with what the volume says. */
export async function verifyData(run: VerifyRun, records: AsyncIterable<SdRecord>, totals: VerifyTotals): Promise<void> {
  const check = new DataCheck(run, totals);
  for await (const record of records) {
    if (run.isCancelled()) return;
    const stream = record.stream & STREAM_MASK;
    if (isAttributes(stream)) {
      await check.closeFile();
      check.openFile(recordFields(record.data));
      run.progress?.(totals);
    } else if (DIGEST_NAMES.has(stream)) {
      await check.digest(stream, record.data);
    } else if (!(await check.data(stream, record.data))) {
      return; // data that cannot be decoded ends the job, as in bacula-fd
    }
  }
  await check.closeFile();
}
