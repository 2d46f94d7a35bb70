/**
 * The agent host: a child process whose only job is one native agent. It loads the library with
 * koffi and runs the agent's calls for the daemon, which talks to it over fd 3 (see protocol.ts).
 * Whatever the agent does (a segfault, abort(), exit(), an escaping C++ exception, an endless
 * loop), it does it here: the daemon sees the process end or stop answering, and goes on.
 *
 * The agent is called synchronously on this one thread: an agent's exit() is then a plain exit
 * with its code (from a worker thread it would tear Node down with SIGABRT or SIGSEGV), and small
 * calls cost nanoseconds instead of a thread-pool round trip. While a call runs nothing reads the
 * pipe, so a cancel arrives by a file the daemon creates (is_cancelled() looks for it), and data
 * frames are written with blocking writes: when the daemon stops reading, the pipe fills and the
 * host, and so the agent, wait. That is the flow control.
 */
import { existsSync, writeSync } from 'node:fs';
import net from 'node:net';
import { loadAgentLibrary, type LoadTarget } from '../agents/load.js';
import type { AgentSession, LoadedAgent, SessionOptions } from '../agents/session.js';
import type { AgentFileInfo, Level } from '../agents/types.js';
import { AgentfdError, messageOf } from '../errors.js';
import { buildFileset } from '../agents/fileset.js';
import { CALL_STATUS_BYTES, Frame, FrameReader, encodeFrame, jsonFrame, parseJson, type DecodedFrame } from './protocol.js';
import { SharedRegion } from './shared-memory.js';

/** The read size per DATA frame: large, to amortise the per-frame cost. */
const READ_SIZE = 1024 * 1024;
/** Reads up to this size travel inside the pipe's frames, and their shared-memory slot is reused at once. */
const INLINE_DATA = 64 * 1024;
/** Frames are gathered in a buffer of this size and written together: a write per frame cost more than a small file. */
const OUT_BUFFER = 256 * 1024;
/** During a backup run, the host looks at the daemon's requests (a stop) every this many files. */
const FILES_PER_YIELD = 256;

export interface JobContextMessage {
  /** A file whose existence means the job was cancelled. */
  cancelFile: string;
  jobName: string;
  jobId: number;
  options: Record<string, string>;
  fileset: { include: string[]; exclude: string[] };
}

export interface DataPlane {
  /** The shared-memory file to map, and its layout: `slots` slots of `slotSize` bytes, then the call status. */
  file: string;
  slots: number;
  slotSize: number;
}

export interface BackupOpenMessage extends JobContextMessage {
  dataPlane: DataPlane | null;
  level: Level;
  sinceNs: string;
  jobStartNs: string;
  referenceState: string | null; // base64
}

export interface RestoreOpenMessage extends JobContextMessage {
  dataPlane: DataPlane | null;
  target: string;
  sourceAbi: number;
  sourceAgentVersion: string | null;
}

/** A file as it crosses the pipe (bigint as a string). */
export type WireFile = Omit<AgentFileInfo, 'mtimeNs'> & { mtimeNs: string };

/** Requests arrive on fd 3 (read by the event loop); answers and data leave by fd 4, which only
 * blocking writes touch (a descriptor libuv reads is switched to non-blocking mode, and a
 * non-blocking write to a full pipe would have to poll). */
const IN_FD = 3;
const OUT_FD = 4;
const pause = new Int32Array(new SharedArrayBuffer(4));
let library: LoadedAgent | null = null;
let region: { shared: SharedRegion; plane: DataPlane } | null = null;
/** Shared-memory slots the daemon has handed back, and the pump waiting for one. */
const freeSlots: number[] = [];
let slotWaiter: (() => void) | null = null;
let session: AgentSession | null = null;
let current = 'startup';
/** Why a restore write of the current file failed; its later writes are dropped until its end. */
let writeError: unknown = null;
/** The daemon sent CLOSE or BACKUP_STOP while a backup run was going: the run ends at its next look. */
let stopRequested = false;

function writeAll(bytes: Buffer): void {
  for (let offset = 0; offset < bytes.length; ) {
    try {
      offset += writeSync(OUT_FD, bytes, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, 1); // the pipe is full: the daemon is reading, wait for room
    }
  }
}

const out = Buffer.allocUnsafe(OUT_BUFFER);
let outLength = 0;

/** Queue frames for the daemon; flush() writes them (it must run before the host waits for anything). */
function send(frames: Buffer[]): void {
  for (const f of frames) {
    if (f.length === 0) continue;
    if (outLength + f.length > OUT_BUFFER) flush();
    if (f.length > OUT_BUFFER) writeAll(f);
    else {
      f.copy(out, outLength);
      outLength += f.length;
    }
  }
}

function flush(): void {
  if (outLength === 0) return;
  const pending = out.subarray(0, outLength);
  outLength = 0;
  writeAll(pending);
}

/** Record the entry point the agent is about to enter, where a crash report can find it. */
function enterCall(entry: string): void {
  current = entry;
  if (region) {
    const at = region.plane.slots * region.plane.slotSize;
    const status = region.shared.bytes;
    const length = status.length >= at + CALL_STATUS_BYTES ? Math.min(entry.length, CALL_STATUS_BYTES - 1) : 0;
    if (length > 0) {
      status[at] = 0;
      for (let i = 0; i < length; i++) status[at + 1 + i] = entry.charCodeAt(i) & 0x7f;
      status[at] = length;
      return;
    }
  }
  // No shared memory: the name goes by the pipe, written out before the call can crash.
  send(jsonFrame(Frame.CALL, { call: entry }));
  flush();
}

function sessionOptions(context: JobContextMessage, referenceState: Uint8Array | null): SessionOptions {
  return {
    jobName: context.jobName,
    jobId: context.jobId,
    options: context.options,
    filesetCheck: buildFileset(context.fileset.include, context.fileset.exclude),
    log: (level, message) => {
      send(jsonFrame(Frame.LOG, { level, message }));
      flush(); // a log line may be the last thing an agent says before it crashes
    },
    isCancelled: () => existsSync(context.cancelFile),
    referenceState,
    offThread: false,
    onCall: enterCall,
  };
}

function need<T>(value: T | null, what: string): T {
  if (value === null) throw new AgentfdError('E_HOST_PROTOCOL', `the agent host got a request before ${what}`);
  return value;
}

/** Map the daemon's shared-memory region, when it offers one and this system can. */
function mapRegion(plane: DataPlane | null): void {
  if (!plane) return;
  const shared = SharedRegion.open(plane.file, plane.slots * plane.slotSize + CALL_STATUS_BYTES);
  if (shared) {
    region = { shared, plane };
    freeSlots.splice(0, freeSlots.length, ...Array.from({ length: plane.slots }, (_, i) => i));
  }
}

async function takeSlot(): Promise<number> {
  if (freeSlots.length === 0) flush(); // the daemon frees slots only after it has seen them
  while (freeSlots.length === 0 && !stopRequested) await new Promise<void>((resolve) => (slotWaiter = resolve));
  return freeSlots.shift()!; // (undefined after a stop with no slot free: the caller looks at stopRequested first)
}

/** Stream one agent stream, through shared memory when mapped, else as DATA frames. */
async function pump(index: number): Promise<void> {
  const s = need(session, 'a backup was opened');
  await s.startStream(index);
  if (region) {
    const { shared, plane } = region;
    for (;;) {
      const slot = await takeSlot(); // waits while every slot is with the daemon: the flow control
      if (stopRequested) return; // the daemon gave up on the run: no further read
      const bytes = shared.bytes.subarray(slot * plane.slotSize, (slot + 1) * plane.slotSize);
      let n: number;
      try {
        n = await s.read(bytes);
      } catch (error) {
        freeSlots.unshift(slot); // nothing of it went to the daemon
        throw error;
      }
      if (n <= INLINE_DATA) {
        // Small (or the end): the bytes go in the frame, and the slot is free again at once.
        if (n > 0) send(encodeFrame(Frame.DATA, bytes.subarray(0, n)));
        freeSlots.unshift(slot);
        if (n === 0) break;
        continue;
      }
      const head = Buffer.alloc(8);
      head.writeUInt32LE(slot, 0);
      head.writeUInt32LE(n, 4);
      send(encodeFrame(Frame.DATA_SLOT, head));
    }
    await s.endStream();
    send(encodeFrame(Frame.STREAM_END));
    return;
  }
  const buffer = Buffer.allocUnsafe(READ_SIZE); // written out before the next read: reusable
  for (;;) {
    if (stopRequested) return;
    const n = await s.read(buffer);
    if (n === 0) break;
    send(encodeFrame(Frame.DATA, buffer.subarray(0, n))); // blocks while the daemon is not reading
  }
  await s.endStream();
  send(encodeFrame(Frame.STREAM_END));
}

/**
 * A backup run: every file, each followed by its streams' data and STREAM_END, without waiting to
 * be asked (a request and an answer per file and per stream cost more than a small file's data).
 * The run is bounded all the same: data waits for free shared-memory slots, and frames wait for
 * room in the pipe, which the daemon stops reading while its consumer is behind.
 */
async function runBackup(): Promise<void> {
  const s = need(session, 'a backup was opened');
  for (let count = 1; ; count++) {
    const file = await s.nextFile();
    if (file === null) {
      if (s.state) send(encodeFrame(Frame.STATE, s.state));
      send(jsonFrame(Frame.FILE, { file: null, protocolErrors: s.protocolErrors }));
      return;
    }
    send(jsonFrame(Frame.FILE, { file, protocolErrors: s.protocolErrors }));
    try {
      for (const stream of file.streams) {
        await pump(stream.index);
        // Given up on by the daemon (a write error): stop here, mid-file; BACKUP_FINISH follows.
        if (stopRequested) return;
      }
    } catch (error) {
      // A stream that broke a rule (more than its size_hint) fails its file, not the run: the
      // stream and the file are ended with the agent, and the next file follows.
      if ((error as { code?: string }).code !== 'E_FILE_REFUSED') throw error;
      await s.endStream();
      await s.endFile();
      send(jsonFrame(Frame.FILE_REFUSED, { message: messageOf(error) }));
      continue;
    }
    await s.endFile();
    if (count % FILES_PER_YIELD === 0) {
      flush();
      await new Promise((resolve) => setImmediate(resolve)); // let a stop from the daemon in
      if (stopRequested) return;
    }
  }
}

/**
 * A restore write, which is not answered: a failure is kept for the file's RESTORE_END_FILE to
 * answer with, and the file's later writes are dropped.
 */
async function restoreWrite(streamIndex: number, bytes: Uint8Array): Promise<void> {
  if (writeError !== null) return;
  try {
    await need(session, 'a restore was opened').restoreWrite(streamIndex, bytes);
  } catch (error) {
    writeError = error;
  }
}

async function handle(frame: DecodedFrame): Promise<void> {
  switch (frame.type) {
    case Frame.LOAD: {
      const target = parseJson<LoadTarget>(frame.payload);
      current = target.kind === 'bacula' ? 'loadPlugin' : 'loading';
      library = loadAgentLibrary(target);
      send(jsonFrame(Frame.LOADED, { name: library.name, abi: library.abi, capabilities: library.capabilities, info: library.info }));
      return;
    }
    case Frame.BACKUP_OPEN: {
      const m = parseJson<BackupOpenMessage>(frame.payload);
      const state = m.referenceState === null ? null : Buffer.from(m.referenceState, 'base64');
      mapRegion(m.dataPlane);
      session = await need(library, 'the library was loaded').openSession(sessionOptions(m, state));
      const delivered = await session.backupPrepare(m.level, BigInt(m.sinceNs), BigInt(m.jobStartNs));
      send(jsonFrame(Frame.OK, { deliveredLevel: delivered, protocolErrors: session.protocolErrors, sharedMemory: region !== null }));
      return;
    }
    case Frame.BACKUP_RUN:
      await runBackup();
      return;
    case Frame.BACKUP_STILL_EXISTING: {
      const { paths } = parseJson<{ paths: string[] }>(frame.payload);
      const s = need(session, 'a backup was opened');
      send(jsonFrame(Frame.OK, { paths: s.stillExisting ? await s.stillExisting(paths) : [] }));
      return;
    }
    case Frame.BACKUP_ESTIMATE: {
      const s = need(session, 'a backup was opened');
      if (!s.estimate) throw new AgentfdError('E_UNSUPPORTED', 'this agent has no estimate()');
      send(jsonFrame(Frame.OK, await s.estimate()));
      return;
    }
    case Frame.BACKUP_FINISH: {
      const { committed } = parseJson<{ committed: boolean }>(frame.payload);
      await need(session, 'a backup was opened').backupFinish(committed);
      send(jsonFrame(Frame.OK, {}));
      return;
    }
    case Frame.RESTORE_OPEN: {
      const m = parseJson<RestoreOpenMessage>(frame.payload);
      mapRegion(m.dataPlane);
      session = await need(library, 'the library was loaded').openSession(sessionOptions(m, null));
      await session.restorePrepare(m.target, m.sourceAbi, m.sourceAgentVersion);
      send(jsonFrame(Frame.OK, { sharedMemory: region !== null }));
      return;
    }
    case Frame.RESTORE_WRITE_SLOT: {
      // Like RESTORE_WRITE, with the bytes in a shared-memory slot the daemon filled; the slot
      // goes back to the daemon once written, failed or dropped.
      const streamIndex = frame.payload.readUInt32LE(0);
      const slot = frame.payload.readUInt32LE(4);
      const length = frame.payload.readUInt32LE(8);
      try {
        const { shared, plane } = need(region, 'shared memory was mapped');
        if (slot >= plane.slots || length > plane.slotSize) throw new AgentfdError('E_HOST_PROTOCOL', `a restore write names slot ${slot} with ${length} bytes`);
        await restoreWrite(streamIndex, shared.bytes.subarray(slot * plane.slotSize, slot * plane.slotSize + length));
      } finally {
        const done = Buffer.alloc(4);
        done.writeUInt32LE(slot, 0);
        send(encodeFrame(Frame.SLOT_DONE, done));
      }
      return;
    }
    case Frame.RESTORE_START_FILE: {
      writeError = null;
      const { file } = parseJson<{ file: WireFile }>(frame.payload);
      await need(session, 'a restore was opened').restoreStartFile({ ...file, mtimeNs: BigInt(file.mtimeNs) });
      send(jsonFrame(Frame.OK, {}));
      return;
    }
    case Frame.RESTORE_WRITE:
      // No answer: the daemon streams writes. A failure is kept, the file's later writes are
      // dropped, and the file's RESTORE_END_FILE answers with it (every answered request gets
      // exactly one answer, so the two sides stay in step).
      await restoreWrite(frame.payload.readUInt32LE(0), frame.payload.subarray(4));
      return;
    case Frame.RESTORE_END_FILE: {
      const { ok } = parseJson<{ ok: boolean }>(frame.payload);
      const failed = writeError;
      writeError = null;
      await need(session, 'a restore was opened').restoreEndFile(ok && failed === null);
      if (failed !== null) throw failed;
      send(jsonFrame(Frame.OK, {}));
      return;
    }
    case Frame.RESTORE_FINISH:
      await need(session, 'a restore was opened').restoreFinish();
      send(jsonFrame(Frame.OK, {}));
      return;
    case Frame.CLOSE:
      session?.close();
      session = null;
      library?.unload();
      library = null;
      process.exit(0);
    default:
      throw new AgentfdError('E_HOST_PROTOCOL', `the agent host got an unknown frame type ${frame.type}`);
  }
}

// Requests are handled one at a time, in order.
const queue: DecodedFrame[] = [];
let busy = false;
async function drain(): Promise<void> {
  if (busy) return;
  busy = true;
  while (queue.length > 0) {
    const frame = queue.shift()!;
    try {
      await handle(frame);
    } catch (error) {
      const code = error instanceof AgentfdError ? error.code : 'E_AGENT';
      send(jsonFrame(Frame.ERROR, { code, message: messageOf(error), call: current }));
    }
    flush();
  }
  busy = false;
}

const pipe = new net.Socket({ fd: IN_FD, readable: true, writable: false });
const reader = new FrameReader();
pipe.on('data', (chunk: Buffer) => {
  for (const frame of reader.push(chunk)) {
    if (frame.type === Frame.SLOT_FREE) {
      freeSlots.push(frame.payload.readUInt32LE(0));
      slotWaiter?.();
      slotWaiter = null;
    } else {
      if (frame.type === Frame.CLOSE) stopRequested = true; // ends a backup run at its next look
      if (frame.type === Frame.BACKUP_STOP) {
        stopRequested = true; // seen while the run waits for a slot, or at its next yield
        slotWaiter?.();
        slotWaiter = null;
        continue;
      }
      queue.push(frame);
    }
  }
  void drain();
});
// The daemon went away: nothing is left to serve.
// A Ctrl-C at a terminal signals the whole foreground process group, and a service manager's stop
// may signal every process of the service: this host included. Dying here would turn the
// daemon's cooperative cancel (is_cancelled, then a grace period) into a reported crash of the
// agent, so the host leaves both signals to the daemon, which ends it; a daemon that is gone
// closes the pipe, and the host exits below.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
pipe.on('end', () => process.exit(0));
pipe.on('error', () => process.exit(1));
