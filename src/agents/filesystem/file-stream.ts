/**
 * The "data" stream of a regular file: read lazily, 1 MiB at a time, only as fast as the engine
 * consumes it. A file that changes size while it is read still yields what was read, but the
 * stream then fails with E_SOURCE_CHANGED so the engine never records a torn file as good.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { AgentfdError } from '../../errors.js';

export const READ_CHUNK = 1024 * 1024;

// O_NOFOLLOW: the entry was lstat'ed as a regular file; if it has been swapped for a symlink since,
// reading through it could save another file (say /etc/shadow) under this name. O_NONBLOCK: a
// file swapped for a FIFO must not hang the job on open. Both are 0 where the OS lacks them.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

export interface ExpectedFile {
  osPath: string;
  agentPath: string;
  size: number;
  dev: bigint;
  ino: bigint;
}

export async function* readFileStream(file: ExpectedFile, isCancelled: () => boolean): AsyncGenerator<Uint8Array> {
  let handle;
  try {
    handle = await open(file.osPath, READ_FLAGS);
  } catch (error) {
    throw changed(file, `it can no longer be opened (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
  }
  try {
    const st = await handle.stat({ bigint: true });
    if (!st.isFile() || st.dev !== file.dev || st.ino !== file.ino) {
      throw changed(file, 'it was replaced by another file after it was listed');
    }
    let total = 0;
    for (;;) {
      if (isCancelled()) throw new AgentfdError('E_CANCELLED', `backup cancelled while reading ${file.osPath}`);
      // Never ask for more than one byte past the expected end: that byte, if it comes, proves
      // the file grew, and a file that keeps growing is not read forever.
      const room = Math.min(READ_CHUNK, file.size - total + 1);
      // A fresh buffer per read: the engine may still hold the previous chunk.
      const buffer = Buffer.alloc(room);
      const { bytesRead } = await handle.read(buffer, 0, room, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      yield bytesRead === room ? buffer : buffer.subarray(0, bytesRead);
      if (total > file.size) break;
    }
    if (total < file.size) throw changed(file, `it shrank while being read (${total} of ${file.size} bytes)`);
    if (total > file.size) throw changed(file, `it grew while being read (more than ${file.size} bytes)`);
  } finally {
    await handle.close();
  }
}

function changed(file: ExpectedFile, why: string, cause?: unknown): AgentfdError {
  return new AgentfdError(
    'E_SOURCE_CHANGED',
    `${file.osPath}: ${why}; the file is not saved in this job. Back it up when it is not being written (or from a snapshot)`,
    cause === undefined ? undefined : { cause },
  );
}
