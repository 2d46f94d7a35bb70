/**
 * Bacula's file attributes: the LStat string (findlib/attribs.c encode_stat/decode_stat) and the
 * attribute record the FD sends to the SD per file (filed/backup.c), which the SD hands back
 * unchanged on restore. The Director stores LStat verbatim in its catalog and compares it in
 * incremental and accurate jobs, so the encoding must match the C FD's character for character.
 */
import type { BigIntStats } from 'node:fs';
import { baculaBase64FromInt, baculaBase64ToInt } from '../wire/base64.js';
import { decodeName, encodeName } from '../../platform/byte-names.js';

/** File types (FT_* in findlib/find.h), the second field of an attribute record. */
export const FT = {
  LNKSAVED: 1,
  REGE: 2,
  REG: 3,
  LNK: 4,
  DIREND: 5,
  SPEC: 6,
  NOACCESS: 7,
  NOFOLLOW: 8,
  NOSTAT: 9,
  NOCHG: 10,
  DIRNOCHG: 11,
  ISARCH: 12,
  NORECURSE: 13,
  NOFSCHG: 14,
  NOOPEN: 15,
  RAW: 16,
  FIFO: 17,
  DIRBEGIN: 18,
  INVALIDFS: 19,
  INVALIDDT: 20,
  REPARSE: 21,
  PLUGIN: 22,
  DELETED: 23,
  BASE: 24,
  RESTORE_FIRST: 25,
  JUNCTION: 26,
  PLUGIN_CONFIG: 27,
  PLUGIN_CONFIG_FILLED: 28,
} as const;

/**
 * The type field may carry flag bits above the type (AR_DATA_STREAM); Bacula masks with this
 * before comparing. decodeAttributes keeps the raw value so a record re-encodes identically.
 */
export const FT_MASK = 0xffff;

/** Stream numbers (src/streams.h); they are written to volumes, so they never change. */
export const STREAM = {
  UNIX_ATTRIBUTES: 1,
  FILE_DATA: 2,
  MD5_DIGEST: 3,
  GZIP_DATA: 4,
  SPARSE_DATA: 6,
  SPARSE_GZIP_DATA: 7,
  SHA1_DIGEST: 10,
  /** A Windows FD's attribute records: as stream 1, with its Windows attributes in attribsEx (windows.ts). */
  UNIX_ATTRIBUTES_EX: 5,
  SHA256_DIGEST: 17,
  SHA512_DIGEST: 18,
  SIGNED_DIGEST: 19,
  PLUGIN_NAME: 26,
  /** compression = LZO: each record a comp_stream_header then an LZO1X-1 block (transfer/lzo-records.ts). */
  COMPRESSED_DATA: 29,
  /** The same with sparse = yes: the block's 8-byte offset first. */
  SPARSE_COMPRESSED_DATA: 30,
} as const;

/**
 * Streams a bacula-fd may write that agentfd serve cannot restore (yet), by number, for messages
 * that say what the volume holds: Win32 BackupRead data (11, 12, and 31: compressed, a
 * comp_stream_header naming the algorithm), encryption (20-25, 32, 33), Mac forks, program data,
 * plugin data and restore objects. (LZO, 29 and 30, is decoded: STREAM above.)
 */
export const UNDECODABLE_STREAM_NAMES: Readonly<Record<number, string>> = {
  8: 'STREAM_PROGRAM_NAMES',
  9: 'STREAM_PROGRAM_DATA',
  11: 'STREAM_WIN32_DATA',
  12: 'STREAM_WIN32_GZIP_DATA',
  13: 'STREAM_MACOS_FORK_DATA',
  14: 'STREAM_HFSPLUS_ATTRIBUTES',
  20: 'STREAM_ENCRYPTED_FILE_DATA',
  21: 'STREAM_ENCRYPTED_WIN32_DATA',
  22: 'STREAM_ENCRYPTED_SESSION_DATA',
  23: 'STREAM_ENCRYPTED_FILE_GZIP_DATA',
  24: 'STREAM_ENCRYPTED_WIN32_GZIP_DATA',
  25: 'STREAM_ENCRYPTED_MACOS_FORK_DATA',
  27: 'STREAM_PLUGIN_DATA',
  28: 'STREAM_RESTORE_OBJECT',
  31: 'STREAM_WIN32_COMPRESSED_DATA',
  32: 'STREAM_ENCRYPTED_FILE_COMPRESSED_DATA',
  33: 'STREAM_ENCRYPTED_WIN32_COMPRESSED_DATA',
};

/** Digests of a file's data: restores do not check them, as bacula-fd does not. */
// A PKI signature over a file's digest (19) is skipped like the digests: agentfd serve has no PKI
// keys to check it with, and the data it signs is restored and decoded like any other.
export const DIGEST_STREAMS: ReadonlySet<number> = new Set([STREAM.MD5_DIGEST, STREAM.SHA1_DIGEST, STREAM.SHA256_DIGEST, STREAM.SHA512_DIGEST, STREAM.SIGNED_DIGEST]);

/** Stream headers may carry flag bits (delta, plugin, portable) above these; mask them on read. */
export const STREAM_MASK = 0x7ff;

/** A stat as LStat carries it. Times are whole seconds, as in C's st_atime. */
export interface BaculaStat {
  dev: bigint;
  ino: bigint;
  mode: number;
  nlink: bigint;
  uid: number;
  gid: number;
  rdev: bigint;
  size: bigint;
  blksize: bigint;
  blocks: bigint;
  atime: bigint;
  mtime: bigint;
  ctime: bigint;
  linkFI: number;
  flags: number;
  dataStream: number;
}

/** The fields in LStat order. */
const LSTAT_FIELDS = [
  'dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'size', 'blksize', 'blocks',
  'atime', 'mtime', 'ctime', 'linkFI', 'flags', 'dataStream',
] as const satisfies readonly (keyof BaculaStat)[];

/** Records older than LinkFI/flags/data_stream stop after ctime. */
const MIN_LSTAT_FIELDS = 13;

/**
 * The C encoder casts every field to int64_t, so an unsigned value at or above 2^63 (a huge dev_t,
 * say) is written as a negative number; wrapping the same way keeps our LStat identical to the C FD's.
 */
function int64Field(value: bigint | number): bigint {
  return BigInt.asIntN(64, BigInt(value));
}

export function encodeLStat(stat: BaculaStat): string {
  return LSTAT_FIELDS.map((field) => baculaBase64FromInt(int64Field(stat[field]))).join(' ');
}

function smallField(name: string, value: bigint, text: string): number {
  if (value < BigInt(Number.MIN_SAFE_INTEGER) || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`LStat field ${name} is out of range in ${JSON.stringify(text)}`);
  }
  return Number(value);
}

/**
 * Parses an LStat string. Fields after data_stream are ignored (Win32 FDs append attributes there),
 * and records that end after ctime get LinkFI, flags and data_stream 0, as decode_stat does.
 */
export function decodeLStat(text: string): BaculaStat {
  const parts = text.trim().split(/ +/);
  if (text.trim() === '' || parts.length < MIN_LSTAT_FIELDS) {
    throw new SyntaxError(`LStat has ${text.trim() === '' ? 0 : parts.length} fields, expected at least ${MIN_LSTAT_FIELDS}: ${JSON.stringify(text)}`);
  }
  const values = LSTAT_FIELDS.map((field, i) => {
    const part = parts[i];
    if (part === undefined) return 0n;
    try {
      return baculaBase64ToInt(part);
    } catch {
      throw new SyntaxError(`LStat field ${field} (${JSON.stringify(part)}) is not Bacula base64 in ${JSON.stringify(text)}`);
    }
  });
  const at = (i: number): bigint => values[i] as bigint;
  return {
    dev: at(0),
    ino: at(1),
    mode: smallField('mode', at(2), text),
    nlink: at(3),
    uid: smallField('uid', at(4), text),
    gid: smallField('gid', at(5), text),
    rdev: at(6),
    size: at(7),
    blksize: at(8),
    blocks: at(9),
    atime: at(10),
    mtime: at(11),
    ctime: at(12),
    linkFI: smallField('LinkFI', at(13), text),
    flags: smallField('flags', at(14), text),
    dataStream: smallField('data_stream', at(15), text),
  };
}

/** Seconds from nanoseconds rounded toward minus infinity, as tv_sec is for times before 1970. */
function wholeSeconds(ns: bigint): bigint {
  const second = 1_000_000_000n;
  const quotient = ns / second;
  return ns % second < 0n ? quotient - 1n : quotient;
}

/**
 * A BaculaStat from lstat()/stat() with { bigint: true } (bigint so 64-bit inodes and device
 * numbers survive). flags is 0 as on Linux, which has no st_flags.
 */
export function statFromNode(s: BigIntStats, dataStream: number, linkFI = 0): BaculaStat {
  return {
    dev: s.dev,
    ino: s.ino,
    mode: Number(s.mode),
    nlink: s.nlink,
    uid: Number(s.uid),
    gid: Number(s.gid),
    rdev: s.rdev,
    size: s.size,
    blksize: s.blksize,
    blocks: s.blocks,
    atime: wholeSeconds(s.atimeNs),
    mtime: wholeSeconds(s.mtimeNs),
    ctime: wholeSeconds(s.ctimeNs),
    linkFI,
    flags: 0,
    dataStream,
  };
}

/** One attribute record: the payload of a STREAM_UNIX_ATTRIBUTES frame. */
export interface AttributeRecord {
  fileIndex: number;
  type: number;
  fname: string;
  lstat: string;
  link: string;
  attribsEx: string;
  deltaSeq: number;
}

function withoutNul(name: string, value: string): string {
  // A NUL would shift every later field for the SD, the Director and the restoring FD.
  if (value.includes('\0')) throw new RangeError(`attribute record ${name} contains a NUL: ${JSON.stringify(value)}`);
  return value;
}

/**
 * `"<FileIndex> <Type> <fname>\0<LStat>\0<link>\0<attribsEx>\0<delta_seq>\0"`: the two numbers and
 * the name share one field (separated by spaces), the rest are NUL-terminated. delta_seq is
 * decimal, not base64.
 */
export function encodeAttributes(r: AttributeRecord): Buffer {
  if (!Number.isSafeInteger(r.fileIndex) || !Number.isSafeInteger(r.type)) {
    throw new RangeError(`attribute record FileIndex and type must be integers, got ${r.fileIndex} and ${r.type}`);
  }
  if (!Number.isInteger(r.deltaSeq) || r.deltaSeq < 0 || r.deltaSeq > 0xffffffff) {
    throw new RangeError(`attribute record delta_seq must be an unsigned 32-bit integer, got ${r.deltaSeq}`);
  }
  const text =
    `${r.fileIndex} ${r.type} ${withoutNul('fname', r.fname)}\0` +
    `${withoutNul('LStat', r.lstat)}\0${withoutNul('link', r.link)}\0${withoutNul('attribsEx', r.attribsEx)}\0` +
    `${r.deltaSeq}\0`;
  return encodeName(text); // the name and link target as their bytes (platform/byte-names.ts)
}

/** Printable start of a bad record for error messages (it may be binary garbage). */
function preview(payload: Buffer): string {
  return JSON.stringify(payload.subarray(0, 80).toString('latin1'));
}

/**
 * Parses an attribute record. Fields are split on NUL bytes before UTF-8 decoding, which is safe
 * because no multi-byte UTF-8 sequence contains a 0 byte. The trailing NUL, delta_seq, attribsEx and
 * link may be missing (older or truncated senders; unpack_attributes_record reads them as empty),
 * but the header, the name and LStat must be there.
 */
export function decodeAttributes(payload: Buffer): AttributeRecord {
  const fields: Buffer[] = [];
  let start = 0;
  for (;;) {
    const nul = payload.indexOf(0, start);
    if (nul < 0) {
      if (start < payload.length) fields.push(payload.subarray(start));
      break;
    }
    fields.push(payload.subarray(start, nul));
    start = nul + 1;
  }
  if (fields.length < 2) {
    throw new SyntaxError(`attribute record has no LStat field: ${preview(payload)}`);
  }
  const head = decodeName(fields[0] as Buffer);
  const match = /^(-?\d+) (-?\d+) /.exec(head);
  if (!match) {
    throw new SyntaxError(`attribute record does not start with "<FileIndex> <Type> ": ${preview(payload)}`);
  }
  const deltaText = fields[4]?.toString('latin1') ?? '';
  if (deltaText !== '' && !/^\d+$/.test(deltaText)) {
    throw new SyntaxError(`attribute record delta_seq ${JSON.stringify(deltaText)} is not a number: ${preview(payload)}`);
  }
  return {
    fileIndex: Number(match[1]),
    type: Number(match[2]),
    fname: head.slice(match[0].length),
    lstat: (fields[1] as Buffer).toString('utf8'),
    link: fields[2] ? decodeName(fields[2]) : '',
    attribsEx: fields[3]?.toString('utf8') ?? '',
    deltaSeq: deltaText === '' ? 0 : Number(deltaText),
  };
}
