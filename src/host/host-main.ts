/**
 * The agent host: a child process whose only job is one native agent. It loads the library with
 * koffi and runs the agent's calls for the daemon, which talks to it over fd 3 (see protocol.ts).
 * Whatever the agent does (a segfault, abort(), exit(), an escaping C++ exception, an endless
 * loop), it does it here: the daemon sees the process end or stop answering, and goes on.
 *
 * Agent calls run on the thread pool (offThread), so this process keeps reading its pipe during a
 * long call: a CANCEL reaches the agent's is_cancelled() while it works, and CREDIT grants arrive
 * while data is being read.
 */
import net from 'node:net';
import { loadNativeAgent, type NativeAgentLibrary } from '../agents/native/library.js';
import { NativeAgentSession, type SessionOptions } from '../agents/native/session.js';
import type { AgentFileInfo } from '../agents/types.js';
import type { Level } from '../agents/native/abi.js';
import { AgentfdError, messageOf } from '../errors.js';
import { buildFileset } from '../jobs/fileset.js';
import { Frame, FrameReader, encodeFrame, jsonFrame, parseJson, type DecodedFrame } from './protocol.js';

/** The read size per DATA frame: large, to amortise the per-frame cost. */
const READ_SIZE = 1024 * 1024;

export interface JobContextMessage {
  jobName: string;
  jobId: number;
  options: Record<string, string>;
  fileset: { include: string[]; exclude: string[] };
}

export interface BackupOpenMessage extends JobContextMessage {
  level: Level;
  sinceNs: string;
  jobStartNs: string;
  referenceState: string | null; // base64
}

export interface RestoreOpenMessage extends JobContextMessage {
  target: string;
  sourceAbi: number;
  sourceAgentVersion: string | null;
}

/** A file as it crosses the pipe (bigint as a string). */
export type WireFile = Omit<AgentFileInfo, 'mtimeNs'> & { mtimeNs: string };

const pipe = new net.Socket({ fd: 3, readable: true, writable: true });
let library: NativeAgentLibrary | null = null;
let session: NativeAgentSession | null = null;
let cancelled = false;
let credit = 0;
let wakePump: (() => void) | null = null;
let current = 'startup';

function send(frames: Buffer[]): void {
  for (const f of frames) pipe.write(f);
}

function sessionOptions(context: JobContextMessage, referenceState: Uint8Array | null): SessionOptions {
  return {
    jobName: context.jobName,
    jobId: context.jobId,
    options: context.options,
    filesetCheck: buildFileset(context.fileset.include, context.fileset.exclude),
    log: (level, message) => send(jsonFrame(Frame.LOG, { level, message })),
    isCancelled: () => cancelled,
    referenceState,
    offThread: true,
    onCall: (entry) => {
      current = entry;
      send(jsonFrame(Frame.CALL, { call: entry }));
    },
  };
}

function need<T>(value: T | null, what: string): T {
  if (value === null) throw new AgentfdError('E_HOST_PROTOCOL', `the agent host got a request before ${what}`);
  return value;
}

/** Stream one agent stream as DATA frames while the daemon grants credit. */
async function pump(index: number): Promise<void> {
  const s = need(session, 'a backup was opened');
  await s.startStream(index);
  for (;;) {
    while (credit <= 0) await new Promise<void>((resolve) => (wakePump = resolve));
    const buffer = Buffer.allocUnsafe(READ_SIZE);
    const n = await s.read(buffer);
    if (n === 0) break;
    credit--;
    send(encodeFrame(Frame.DATA, buffer.subarray(0, n)));
  }
  await s.endStream();
  send(encodeFrame(Frame.STREAM_END));
}

async function handle(frame: DecodedFrame): Promise<void> {
  switch (frame.type) {
    case Frame.LOAD: {
      const { file } = parseJson<{ file: string }>(frame.payload);
      current = 'loading';
      library = loadNativeAgent(file);
      send(jsonFrame(Frame.LOADED, { name: library.name, abi: library.abi, capabilities: library.capabilities, info: library.info }));
      return;
    }
    case Frame.BACKUP_OPEN: {
      const m = parseJson<BackupOpenMessage>(frame.payload);
      const state = m.referenceState === null ? null : Buffer.from(m.referenceState, 'base64');
      session = await NativeAgentSession.open(need(library, 'the library was loaded'), sessionOptions(m, state));
      const delivered = await session.backupPrepare(m.level, BigInt(m.sinceNs), BigInt(m.jobStartNs));
      send(jsonFrame(Frame.OK, { deliveredLevel: delivered, protocolErrors: session.protocolErrors }));
      return;
    }
    case Frame.NEXT_FILE: {
      const s = need(session, 'a backup was opened');
      const file = await s.nextFile();
      if (file === null && s.state) send(encodeFrame(Frame.STATE, s.state));
      send(jsonFrame(Frame.FILE, { file, protocolErrors: s.protocolErrors }));
      return;
    }
    case Frame.READ_STREAM: {
      const { index, credit: initial } = parseJson<{ index: number; credit: number }>(frame.payload);
      credit = initial;
      await pump(index);
      return;
    }
    case Frame.END_FILE:
      await need(session, 'a backup was opened').endFile();
      send(jsonFrame(Frame.OK, {}));
      return;
    case Frame.BACKUP_FINISH: {
      const { committed } = parseJson<{ committed: boolean }>(frame.payload);
      await need(session, 'a backup was opened').backupFinish(committed);
      send(jsonFrame(Frame.OK, {}));
      return;
    }
    case Frame.RESTORE_OPEN: {
      const m = parseJson<RestoreOpenMessage>(frame.payload);
      session = await NativeAgentSession.open(need(library, 'the library was loaded'), sessionOptions(m, null));
      await session.restorePrepare(m.target, m.sourceAbi, m.sourceAgentVersion);
      send(jsonFrame(Frame.OK, {}));
      return;
    }
    case Frame.RESTORE_START_FILE: {
      const { file } = parseJson<{ file: WireFile }>(frame.payload);
      await need(session, 'a restore was opened').restoreStartFile({ ...file, mtimeNs: BigInt(file.mtimeNs) });
      send(jsonFrame(Frame.OK, {}));
      return;
    }
    case Frame.RESTORE_WRITE:
      await need(session, 'a restore was opened').restoreWrite(frame.payload.readUInt32LE(0), frame.payload.subarray(4));
      send(jsonFrame(Frame.OK, {}));
      return;
    case Frame.RESTORE_END_FILE: {
      const { ok } = parseJson<{ ok: boolean }>(frame.payload);
      await need(session, 'a restore was opened').restoreEndFile(ok);
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
      pipe.end(() => process.exit(0));
      return;
    default:
      throw new AgentfdError('E_HOST_PROTOCOL', `the agent host got an unknown frame type ${frame.type}`);
  }
}

// Requests are handled one at a time, in order; CANCEL and CREDIT act at once, even during a call.
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
  }
  busy = false;
}

const reader = new FrameReader();
pipe.on('data', (chunk: Buffer) => {
  for (const frame of reader.push(chunk)) {
    if (frame.type === Frame.CANCEL) cancelled = true;
    else if (frame.type === Frame.CREDIT) {
      credit += parseJson<{ n: number }>(frame.payload).n;
      wakePump?.();
      wakePump = null;
    } else queue.push(frame);
  }
  void drain();
});
// The daemon went away: nothing is left to serve.
pipe.on('end', () => process.exit(0));
pipe.on('error', () => process.exit(1));
