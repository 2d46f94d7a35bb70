/**
 * The filesystem agent's I/O thread (started by io.ts, one per backup): batches of lstat, and of
 * whole small-file reads, done with synchronous calls. On a thread of its own a synchronous call
 * costs the main thread nothing, and the batch costs one message each way, where the thread pool
 * would cost a hand-off per call (several per file): with many small files those hand-offs, not
 * the disk, were the limit.
 *
 * Every file this thread opens is closed before its reply is sent: between requests it holds no
 * file descriptor, so stopping it once no request is pending leaks nothing.
 */
import { closeSync, fstatSync, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { READ_FLAGS } from './file-stream.js';
import { STAT_FIELDS, type ReadReply, type ReadRequest, type ReadResult, type StatReply, type StatRequest, type WireError } from './io-protocol.js';
import { readWinAttributes } from './win-attributes.js';
import { fsPath } from '../../platform/byte-names.js';

function wire(error: unknown): WireError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return { code: typeof code === 'string' ? code : null, message: error instanceof Error ? error.message : String(error) };
}

function statMany(request: StatRequest): StatReply {
  const { paths } = request;
  const fields = new BigInt64Array(paths.length * STAT_FIELDS);
  const errors: (WireError | null)[] = [];
  const targets: (Uint8Array | null)[] = [];
  const winAttributes = new Uint32Array(paths.length);
  const winAttributesProblems: (string | null)[] = paths.map(() => null);
  paths.forEach((osPath, i) => {
    try {
      const st = lstatSync(fsPath(osPath), { bigint: true });
      const at = i * STAT_FIELDS;
      fields[at] = st.mode;
      fields[at + 1] = st.size;
      fields[at + 2] = st.mtimeNs;
      fields[at + 3] = st.ctimeNs;
      fields[at + 4] = st.dev;
      fields[at + 5] = st.ino;
      const target = st.isSymbolicLink() ? readlinkSync(fsPath(osPath), { encoding: 'buffer' }) : null;
      targets.push(target);
      errors.push(null);
      if (st.isFile() || st.isDirectory()) {
        // A failure here costs the attributes only, not the entry: the walk warns and saves it.
        try {
          winAttributes[i] = readWinAttributes(osPath);
        } catch (error) {
          winAttributesProblems[i] = error instanceof Error ? error.message : String(error);
        }
      }
    } catch (error) {
      targets.push(null);
      errors.push(wire(error));
    }
  });
  return { id: request.id, fields, errors, targets, winAttributes, winAttributesProblems };
}

/** file-stream.ts preloadFile, synchronously: the same checks, the same outcomes. */
function readOne(file: ReadRequest['files'][number]): ReadResult {
  let fd: number;
  try {
    fd = openSync(fsPath(file.osPath), READ_FLAGS);
  } catch (error) {
    return { early: { kind: 'open', ...wire(error) }, buffer: null, length: 0, late: null };
  }
  const result: ReadResult = { early: null, buffer: null, length: 0, late: null };
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.dev !== file.dev || st.ino !== file.ino) {
      result.early = { kind: 'replaced', code: null, message: 'replaced' };
    } else {
      const buffer = new Uint8Array(file.size + 1);
      let total = 0;
      try {
        for (;;) {
          const bytesRead = readSync(fd, buffer, total, buffer.length - total, total);
          total += bytesRead;
          // As in preloadFile: one byte short of what was asked, at the expected size, is the end.
          if (bytesRead === 0 || total >= file.size) break;
        }
      } catch (error) {
        result.late = wire(error);
      }
      result.buffer = buffer;
      result.length = total;
    }
  } catch (error) {
    result.early = { kind: 'error', ...wire(error) };
  } finally {
    try {
      closeSync(fd);
    } catch (error) {
      if (result.early === null) result.late = wire(error);
      else result.early = { kind: 'error', ...wire(error) };
    }
  }
  return result;
}

parentPort!.on('message', (request: StatRequest | ReadRequest) => {
  if (request.op === 'stat') {
    const reply = statMany(request);
    parentPort!.postMessage(reply, [reply.fields.buffer as ArrayBuffer, reply.winAttributes.buffer as ArrayBuffer]);
  } else {
    const results = request.files.map(readOne);
    const transfer = results.flatMap((r) => (r.buffer ? [r.buffer.buffer as ArrayBuffer] : []));
    parentPort!.postMessage({ id: request.id, results } satisfies ReadReply, transfer);
  }
});
