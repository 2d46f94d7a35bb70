/** Volumes: append-only files of framed, checksummed records (see format.ts for the layout). */
export * from './format.js';
export { findVolumes, readRecordAt, readRecords, readRecordsPastDamage, readVolumeHeader, VolumeReader, type ReadRecordsOptions, type VolumeHeader, type VolumeRecord } from './reader.js';
export {
  MIN_VOLUME_BYTES,
  VOLUME_END_RESERVE,
  VolumeWriter,
  WRITE_BUFFER_BYTES,
  type AbandonedVolume,
  type AppendRecord,
  type AppendResult,
  type RecoveredTail,
  type VolumeWriterOptions,
} from './writer.js';
export { REPOSITORY_FILE, storageRepository } from './repository.js';
export { findSoundRecord } from './recover.js';
