/**
 * The wire protocol between agentfd and an agent host process, on a pipe. Compact and binary:
 * every frame is an 8-byte header (u32 payload length, u8 type, u8 flags, u16 reserved; little
 * endian) and a payload. Control frames carry JSON; data frames carry bytes as they are, so a
 * stream's data crosses the pipe with one copy and no encoding.
 *
 * Flow control is the pipe's own: the host writes DATA frames with blocking writes, and the daemon
 * stops reading the pipe while more than a few frames wait for its consumer. The pipe fills, the
 * host's write waits, and the agent is not called again: a slow sink stops the agent itself, as
 * in-process pull-based reading does.
 */
import { AgentfdError } from '../errors.js';

export const FRAME_HEADER = 8;
/** Far above any frame we send (1 MiB data + a little); a length beyond it means a broken stream. */
export const MAX_FRAME = 64 * 1024 * 1024;

export const Frame = {
  // daemon -> host
  LOAD: 1, // {kind, file, preload}
  BACKUP_OPEN: 2, // {job context, level, sinceNs, jobStartNs, referenceState, fileset}
  BACKUP_RUN: 3, // the host sends every file: FILE, then per stream DATA/DATA_SLOT frames and STREAM_END; FILE null ends
  BACKUP_FINISH: 7, // {committed}
  BACKUP_STILL_EXISTING: 17,
  BACKUP_ESTIMATE: 19, // instead of BACKUP_RUN: the agent's estimate() (answered OK {files, bytes})
  BACKUP_STOP: 18, // no payload, no answer: the daemon gave up on the run (a write error); stop at the next read or file and wait for BACKUP_FINISH // {paths}: accurate mode, which of these unreported paths still exist (answered OK {paths})
  RESTORE_OPEN: 8, // {job context, target, sourceAbi, sourceAgentVersion}
  RESTORE_START_FILE: 9, // {file}
  RESTORE_WRITE: 10, // u32 stream index + bytes; no answer (a failure answers the file's RESTORE_END_FILE)
  RESTORE_END_FILE: 11, // {ok}
  RESTORE_FINISH: 12,
  CLOSE: 14,
  SLOT_FREE: 15, // u32 slot: the daemon has copied a shared-memory slot out; the host may reuse it
  RESTORE_WRITE_SLOT: 16, // u32 stream index, u32 slot, u32 length: a restore write from shared memory; the host gives the slot back with SLOT_DONE (a failure answers the file's RESTORE_END_FILE)
  // host -> daemon
  LOADED: 40, // {descriptor}
  OK: 41, // {result}
  ERROR: 42, // {code, message, call}
  FILE: 43, // {file} or null when there are no more
  DATA: 44, // bytes
  STREAM_END: 45,
  LOG: 46, // {level, message}
  CALL: 47, // {call}: the agent entry point the host is entering (for crash reports; without shared memory)
  STATE: 48, // the agent's state blob (bytes), sent before the run's last FILE (null)
  DATA_SLOT: 49, // u32 slot, u32 length: a chunk the agent read into shared memory (shared-memory.ts)
  FILE_REFUSED: 51, // {message}: in place of a stream's STREAM_END, a stream broke a rule (size_hint); the file was ended, the next FILE follows
  SLOT_DONE: 50, // u32 slot: the agent has written a restore slot out; the daemon may reuse it
} as const;
export type FrameType = (typeof Frame)[keyof typeof Frame];

/**
 * After its data slots, a backup's or restore's shared-memory region holds the name of the agent entry point
 * the host is in (a length byte, then ASCII): written before every call, read by the daemon only
 * if the host dies, so a crash report names the call without a frame per call.
 */
export const CALL_STATUS_BYTES = 64;

/** The entry point recorded at `offset` of a shared region (see CALL_STATUS_BYTES), or null. */
export function readCallStatus(bytes: Uint8Array, offset: number): string | null {
  const length = bytes[offset] ?? 0;
  if (length === 0 || length >= CALL_STATUS_BYTES || offset + 1 + length > bytes.length) return null;
  return String.fromCharCode(...bytes.subarray(offset + 1, offset + 1 + length));
}

export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer[] {
  const header = Buffer.alloc(FRAME_HEADER);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt8(type, 4);
  return [header, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)];
}

export function jsonFrame(type: number, body: unknown): Buffer[] {
  return encodeFrame(type, Buffer.from(JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))));
}

export interface DecodedFrame {
  type: number;
  payload: Buffer;
}

/** Reassembles frames from the chunks a pipe delivers. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): DecodedFrame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: DecodedFrame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER) break;
      const head = this.peek(FRAME_HEADER);
      const length = head.readUInt32LE(0);
      if (length > MAX_FRAME) throw new AgentfdError('E_HOST_PROTOCOL', `a frame of ${length} bytes from the agent host: the pipe is out of step`);
      if (this.buffered < FRAME_HEADER + length) break;
      const whole = this.take(FRAME_HEADER + length);
      frames.push({ type: whole.readUInt8(4), payload: whole.subarray(FRAME_HEADER) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    return Buffer.concat(this.chunks).subarray(0, n);
  }

  private take(n: number): Buffer {
    let out: Buffer;
    if (this.chunks[0]!.length >= n) {
      out = this.chunks[0]!.subarray(0, n);
      const rest = this.chunks[0]!.subarray(n);
      if (rest.length > 0) this.chunks[0] = rest;
      else this.chunks.shift();
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}

export function parseJson<T>(payload: Buffer): T {
  return JSON.parse(payload.toString('utf8')) as T;
}
