/** What a stream agentfd cannot decode is, for the error that fails its file. */
import { UNDECODABLE_STREAM_NAMES } from '../../attributes/lstat.js';
import { magicText } from '../lzo-records.js';

const STREAM_WIN32_COMPRESSED_DATA = 31;

/**
 * The stream's name, and for Win32 BackupRead data compressed (31) the algorithm its
 * comp_stream_header names (ch.h: a big-endian magic such as "LZOX").
 */
export function undecodableStream(stream: number, data: Buffer): string {
  const name = UNDECODABLE_STREAM_NAMES[stream];
  if (name === undefined) return `stream ${stream}, which this version of agentfd does not know`;
  if (stream === STREAM_WIN32_COMPRESSED_DATA && data.length >= 4) {
    const magic = magicText(data);
    return `stream ${stream} (${name}: Win32 BackupRead data, compressed with ${magic === '"LZOX"' ? 'LZO ("LZOX")' : magic}), which agentfd cannot decode`;
  }
  return `stream ${stream} (${name}), which agentfd cannot decode`;
}
