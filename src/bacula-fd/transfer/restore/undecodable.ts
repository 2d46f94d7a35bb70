/** What a stream agentfd cannot decode is, for the error that fails its file. */
import { UNDECODABLE_STREAM_NAMES } from '../../attributes/lstat.js';

/**
 * The stream's name, and for the non-GZIP compressed streams the algorithm their
 * comp_stream_header names (ch.h: a big-endian magic such as "LZOX", after the 8-byte offset of a
 * sparse one).
 */
export function undecodableStream(stream: number, data: Buffer): string {
  const name = UNDECODABLE_STREAM_NAMES[stream];
  if (name === undefined) return `stream ${stream}, which this version of agentfd does not know`;
  const headerAt = stream === 30 ? 8 : 0;
  if (stream >= 29 && stream <= 31 && data.length >= headerAt + 4) {
    const magic = data.subarray(headerAt, headerAt + 4);
    const text = /^[\x20-\x7e]{4}$/.test(magic.toString('latin1')) ? `"${magic.toString('latin1')}"` : `0x${magic.toString('hex')}`;
    return `stream ${stream} (${name}, compressed with ${text === '"LZOX"' ? 'LZO ("LZOX")' : text}), which agentfd cannot decompress`;
  }
  return `stream ${stream} (${name}), which agentfd cannot decode`;
}
