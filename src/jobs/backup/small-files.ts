/**
 * Small files are read into memory and saved in one FILE_WHOLE record: one seal and one record
 * instead of four per file, which is what a backup of many small files spends its time on.
 */
import type { AgentFile, AgentStream } from '../../agents/agent.js';

/** A file whose streams declare at most this many bytes in all is saved whole. */
export const WHOLE_FILE_LIMIT = 64 * 1024;

/** A file read whole into memory, or, when it turned out larger than declared, how to stream it. */
export type Held = { whole: true; data: Uint8Array[] } | { whole: false; streams: AgentStream[] };

/** True when a file's streams all declare their sizes and fit a FILE_WHOLE record together. */
export function isSmall(file: AgentFile): boolean {
  let total = 0;
  for (const s of file.streams) {
    if (s.sizeHint === null) return false;
    total += s.sizeHint;
  }
  return total <= WHOLE_FILE_LIMIT;
}

/**
 * Read the streams of a small file into memory. If the agent delivers more than WHOLE_FILE_LIMIT
 * (a file that grew since it was listed), what was read is not lost: the streams are handed back
 * as replays of the bytes already read followed by the rest, for the streaming path.
 */
export async function holdSmallFile(file: AgentFile): Promise<Held> {
  const data: Uint8Array[] = [];
  let total = 0;
  for (const [i, stream] of file.streams.entries()) {
    const pieces: Uint8Array[] = [];
    const iterator = stream.data()[Symbol.asyncIterator]();
    for (let step = await iterator.next(); !step.done; step = await iterator.next()) {
      pieces.push(step.value);
      total += step.value.length;
      if (total > WHOLE_FILE_LIMIT) {
        const replay = (held: Uint8Array[], rest: AsyncIterator<Uint8Array> | null): AgentStream['data'] => async function* () {
          yield* held;
          if (rest) for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
        };
        const streams = file.streams.map((s, j): AgentStream => {
          if (j < i) return { ...s, data: replay([data[j]!], null) };
          if (j === i) return { ...s, data: replay(pieces, iterator) };
          return s;
        });
        return { whole: false, streams };
      }
    }
    data.push(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces));
  }
  return { whole: true, data };
}
