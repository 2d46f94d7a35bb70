/**
 * The attributes record that opens each entry of a restore (stream 1, or 5 from a Windows FD:
 * restored as any other, as bacula-fd's restore.c does): its name, type, stat, link and, from a
 * Windows FD, the attribsEx that carries its Windows attributes (windows.ts).
 */
import { FT_MASK, STREAM, decodeAttributes, decodeLStat, type BaculaStat } from '../../attributes/lstat.js';

export interface EntryRecord {
  /** The name as backed up (absolute). */
  fname: string;
  /** The FT_* type, masked as create_file masks it. */
  type: number;
  /** The type as the record carries it (what a plugin's agent is told). */
  recordType: number;
  stat: BaculaStat;
  /** A symlink's target, or a hard link's first name. */
  link: string;
  /** Only from a stream 5 record: a Windows FD's attributes. */
  attribsEx: string;
}

export function isAttributesStream(stream: number): boolean {
  return stream === STREAM.UNIX_ATTRIBUTES || stream === STREAM.UNIX_ATTRIBUTES_EX;
}

export function readEntryRecord(stream: number, data: Buffer): EntryRecord {
  const attributes = decodeAttributes(data);
  return {
    fname: attributes.fname,
    type: attributes.type & FT_MASK,
    recordType: attributes.type,
    stat: decodeLStat(attributes.lstat),
    link: attributes.link,
    attribsEx: stream === STREAM.UNIX_ATTRIBUTES_EX ? attributes.attribsEx : '',
  };
}
