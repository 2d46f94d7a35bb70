/**
 * The errors the volume module raises. Every one is an AgentfdError whose message names the file,
 * where in it the problem is, what is wrong and what to do:
 *
 * - E_VOLUME_CORRUPT   a volume's bytes are not what agentfd wrote (damaged, truncated, altered);
 * - E_VOLUME_FORMAT    a volume written in a format this agentfd does not know (a newer agentfd);
 * - E_VOLUME_MISSING   a volume file (or the storage directory) does not exist;
 * - E_VOLUME_READ      an I/O error while reading a volume;
 * - E_VOLUME_WRITE     an I/O error while writing a volume (disk full...): the writer is then unusable;
 * - E_VOLUME_RECORD / E_VOLUME_RECORD_TOO_LARGE   a record the caller asked to append is invalid;
 * - E_VOLUME_OPTIONS   invalid writer options (set name, label, size);
 * - E_VOLUME_CLOSED    a writer used after close().
 */
import path from 'node:path';
import { AgentfdError } from '../errors.js';
import { knownRecordTypeName } from './record-type.js';

/** Where a record is, for messages: the file, its header's byte offset, its ordinal and (when readable) its type. */
export interface RecordPlace {
  path: string;
  offset: number;
  /** e.g. "record 3" (counting the LABEL record as record 1). */
  ordinal: string;
  type?: number;
}

function describePlace(place: RecordPlace): string {
  let type = '';
  if (place.type !== undefined) {
    const name = knownRecordTypeName(place.type);
    type = name ? `, a ${name} record` : `, a record of unknown type ${place.type}`;
  }
  return `at byte ${place.offset} (${place.ordinal}${type})`;
}

/** A record that is not what agentfd wrote. `what` says what is wrong with it. */
export function corruptRecord(place: RecordPlace, what: string): AgentfdError {
  return new AgentfdError(
    'E_VOLUME_CORRUPT',
    `volume ${place.path} is corrupt ${describePlace(place)}: ${what}. ` +
      `The records before byte ${place.offset} are intact; restore this volume from a copy if you have one`,
  );
}

/** The file ends inside a record. */
export function truncatedRecord(place: RecordPlace, available: number, needed: number): AgentfdError {
  const into = needed > 24 && available >= 24 ? `its 24-byte header and ${needed - 24}-byte payload` : 'its 24-byte header';
  return new AgentfdError(
    'E_VOLUME_CORRUPT',
    `volume ${place.path} is corrupt ${describePlace(place)}: the volume is truncated: the last record is incomplete ` +
      `(the file ends ${available} bytes into it, but ${into} take ${needed} bytes). ` +
      `If agentfd was interrupted while writing this volume, the next backup to its set cuts the incomplete record off; ` +
      `otherwise restore the volume from a copy. The records before byte ${place.offset} are intact`,
  );
}

/** The 4096-byte text header (or the file as a whole) is not a valid volume start. */
export function corruptHeader(file: string, what: string): AgentfdError {
  return new AgentfdError(
    'E_VOLUME_CORRUPT',
    `volume ${file} is corrupt in its text header (bytes 0-4095): ${what}. Restore this volume from a copy if you have one`,
  );
}

export function newerFormat(file: string, format: number | string): AgentfdError {
  return new AgentfdError(
    'E_VOLUME_FORMAT',
    `volume ${file} says it is in volume format ${format}, which this agentfd (format 1) cannot read: it was written by a newer agentfd; ` +
      `upgrade agentfd to read it (if the volume should be in format 1, its text header was altered)`,
  );
}

export function volumeMissing(file: string): AgentfdError {
  return new AgentfdError(
    'E_VOLUME_MISSING',
    `volume ${file} is missing: there is no such file. Restore it from where volumes are kept (an offsite copy, a removable disk) ` +
      `into ${path.dirname(file)} under the name ${path.basename(file)}, or, if it is lost, restore from a job that does not use it`,
  );
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function readFailed(file: string, error: unknown): AgentfdError {
  if (error instanceof AgentfdError) return error;
  if (errorCode(error) === 'ENOENT') return volumeMissing(file);
  return new AgentfdError(
    'E_VOLUME_READ',
    `cannot read volume ${file}: ${errorText(error)}; check that the file is readable by agentfd and that its disk is healthy`,
    { cause: error },
  );
}

/**
 * The error a failed write leaves the writer in; every later call rejects with it. `action` says
 * what failed (default "write volume <file>").
 */
export function writeFailed(file: string, error: unknown, action = `write volume ${file}`): AgentfdError {
  if (error instanceof AgentfdError && error.code === 'E_VOLUME_WRITE') return error;
  const code = errorCode(error);
  let what: string;
  if (code === 'ENOSPC') {
    what = 'disk full (ENOSPC); free space on that disk (or keep fewer volumes there), then run the job again';
  } else if (code === 'EDQUOT') {
    what = 'disk quota exceeded (EDQUOT); raise the quota of the agentfd user or free space, then run the job again';
  } else if (code === 'EEXIST') {
    what = 'the file already exists, so another agentfd may be writing to this volume set; make sure only one writer uses the set, then run the job again';
  } else {
    what = `${errorText(error)}; check the storage directory and its disk, then run the job again`;
  }
  return new AgentfdError('E_VOLUME_WRITE', `cannot ${action}: ${what}; the job is not recorded as complete`, { cause: error });
}
