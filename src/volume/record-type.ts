/** The record types of volume format 1 (the `type` byte of a record header). */
export const RecordType = {
  LABEL: 1,
  SESSION_START: 2,
  SESSION_INFO: 3,
  FILE: 4,
  CHUNK: 5,
  STREAM_END: 6,
  FILE_END: 7,
  STATE: 8,
  SESSION_END: 9,
  VOLUME_END: 10,
  SESSION_CONTINUE: 11,
  /** Accurate mode: the paths the job found deleted or renamed since its reference job. */
  ACCURATE: 12,
  /**
   * A small file in one record: what FILE, its streams' CHUNKs and STREAM_ENDs, and FILE_END say
   * (session format 2). Four records and four seals per file dominated backups of many small files.
   */
  FILE_WHOLE: 13,
} as const;

export type RecordTypeName = keyof typeof RecordType;
/** A type this agentfd knows. Records of other types (from a newer agentfd) are still read, as plain numbers. */
export type KnownRecordType = (typeof RecordType)[RecordTypeName];

const NAMES = new Map<number, RecordTypeName>(Object.entries(RecordType).map(([name, value]) => [value, name as RecordTypeName]));

/** "CHUNK" for a known type, undefined for another number. */
export function knownRecordTypeName(type: number): RecordTypeName | undefined {
  return NAMES.get(type);
}

/** "CHUNK", or "unknown type 200" for a type this agentfd does not know. */
export function recordTypeName(type: number): string {
  return NAMES.get(type) ?? `unknown type ${type}`;
}

/** The `codec` byte: which compression a payload uses. Only stored by the volume module. */
export const Codec = { NONE: 0, GZIP: 1, ZSTD: 2 } as const;
/** The `cipher` byte: which encryption a payload uses. Only stored by the volume module. */
export const Cipher = { NONE: 0, AES_256_GCM: 1 } as const;
