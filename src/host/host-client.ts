/**
 * The daemon's side of an agent host process: starting it, one request at a time, streaming a
 * stream's DATA frames (reading the pipe only while few frames wait, which is the flow control),
 * cancelling, and noticing when the host dies or stops answering.
 *
 * Any end of the host other than our own CLOSE (a signal, an exit code, a broken pipe) and any
 * call that outlasts its timeout (the host is then killed) becomes an AgentHostError that names the
 * agent, the entry point it was in, and the signal or exit code, with the last lines the host
 * printed (abort() and C++ runtimes explain themselves on stderr).
 */
import { compiledScript } from '../compiled-script.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { AgentfdError } from '../errors.js';
import { Frame, FrameReader, encodeFrame, jsonFrame, parseJson, readCallStatus, type DecodedFrame } from './protocol.js';
import type { SharedRegion } from './shared-memory.js';

/** Windows ends a crashed process with its exception's NTSTATUS as the exit code: say which. */
const NTSTATUS: Record<number, string> = {
  0xc0000005: 'an access violation (the Windows segfault)',
  0xc0000409: 'a stack buffer overrun or abort()',
  0xc00000fd: 'a stack overflow',
  0xc000001d: 'an illegal instruction',
  0xc0000094: 'an integer division by zero',
  0xe06d7363: 'an uncaught C++ exception',
};

function windowsCrash(code: number | null): string {
  if (code === null || code < 0xc0000000) return '';
  return ` (0x${code.toString(16).toUpperCase()}${NTSTATUS[code] ? `: ${NTSTATUS[code]}` : ''})`;
}

export interface HostSettings {
  /** The agent's Name() and library, for messages. */
  agent: string;
  file: string;
  /** The library's ABI, and (Bacula plugins) what to preload before it. */
  kind?: 'native' | 'bacula';
  preload?: string[];
  /** A call (or a silence while streaming) longer than this kills the host. */
  callTimeoutMs: number;
  /** After a cancel, how long the agent may take to stop before the host is killed. */
  cancelGraceMs: number;
  onLog?: (level: string, message: string) => void;
}

export class AgentHostError extends AgentfdError {
  readonly agent: string;
  readonly call: string;
  constructor(code: 'E_AGENT_CRASHED' | 'E_AGENT_TIMEOUT', agent: string, call: string, message: string) {
    super(code, message);
    this.name = 'AgentHostError';
    this.agent = agent;
    this.call = call;
  }
}

/**
 * Frames (and their bytes) read ahead of the consumer before the pipe is paused: the pipe's share of
 * bounded memory. A backup run sends small files' frames back to back, so the count is generous;
 * large data comes through shared-memory slots, which bound themselves.
 */
const INBOX_FRAMES = 1024;
const INBOX_BYTES = 8 * 1024 * 1024;
/** Shared-memory slots of one host, and their size: the chunks that can be in flight. */
export const SLOTS = 4;
export const SLOT_SIZE = 1024 * 1024;

/** The frames a backup run sends without being asked: dropped once the run is abandoned. */
const RUN_FRAMES: readonly number[] = [Frame.FILE, Frame.DATA, Frame.DATA_SLOT, Frame.STREAM_END, Frame.STATE, Frame.FILE_REFUSED];

type Waiter = { accept: readonly number[]; resolve: (frame: DecodedFrame) => void; reject: (error: Error) => void };

export class AgentHost {
  readonly settings: HostSettings;
  private readonly child: ChildProcess;
  private readonly requests: Duplex;
  private readonly pipe: Duplex;
  private readonly reader = new FrameReader();
  private waiter: Waiter | null = null;
  /** Frames that arrived with no waiter (DATA ahead of the consumer, STATE), consumed in order. */
  private readonly inbox: DecodedFrame[] = [];
  private inboxBytes = 0;
  /** When the host last sent something while we waited for it (the call timeout counts from here). */
  private lastHeard = 0;
  /** The host checks for this file in is_cancelled(); creating it is how a cancel reaches the agent. */
  readonly cancelFile = path.join(os.tmpdir(), `agentfd-cancel-${process.pid}-${randomBytes(8).toString('hex')}`);
  private failure: Error | null = null;
  private call = 'startup';
  private stderr = '';
  private timer: NodeJS.Timeout | null = null;
  private closing = false;
  private readonly exited: Promise<void>;
  /** The shared-memory region DATA_SLOT frames point into, once the host has mapped it. */
  private region: SharedRegion | null = null;
  /** The daemon gave up on a backup run: its data frames are dropped as they come (see abandonRun). */
  private discarding = false;

  private constructor(settings: HostSettings) {
    this.settings = settings;
    // fd 3 carries requests to the host, fd 4 its answers and data (see host-main.ts).
    this.child = spawn(process.execPath, [compiledScript(import.meta.url, 'host-main.js')], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    this.requests = this.child.stdio[3] as Duplex;
    this.pipe = this.child.stdio[4] as Duplex;
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-4000);
    });
    this.pipe.on('data', (chunk: Buffer) => this.receive(chunk));
    this.pipe.on('error', () => undefined); // the close handler reports it
    this.requests.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': it comes after the pipes are drained, so the last CALL frame the
      // host wrote before it died has been read and the report names the right call.
      this.child.on('close', (code, signal) => {
        this.stopTimer();
        if (!this.closing) this.fail(this.crashError(code, signal));
        resolve();
      });
    });
  }

  /** Start a host and load `file` into it. */
  static async start(settings: HostSettings): Promise<AgentHost> {
    const host = new AgentHost(settings);
    await host.request(Frame.LOAD, jsonFrame(Frame.LOAD, { file: settings.file, kind: settings.kind ?? 'native', preload: settings.preload }), [Frame.LOADED]);
    return host;
  }

  /** The entry point the host was in: from shared memory when mapped, else from CALL frames. */
  private currentCall(): string {
    return (this.region && readCallStatus(this.region.bytes, SLOTS * SLOT_SIZE)) ?? this.call;
  }

  private crashError(code: number | null, signal: NodeJS.Signals | null): AgentHostError {
    const how = signal ? `was killed by signal ${signal}` : `exited with code ${code}${windowsCrash(code)}`;
    const said = this.stderr.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
    const call = this.currentCall();
    return new AgentHostError(
      'E_AGENT_CRASHED',
      this.settings.agent,
      call,
      `agent "${this.settings.agent}" (${this.settings.file}) crashed in ${call}(): its host process ${how}${said ? ` (it printed: ${said})` : ''}. The job's data from this agent is incomplete; report the crash to the agent's vendor.`,
    );
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.wakeSlotWaiter();
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(error);
  }

  /**
   * The call timeout runs while we wait for the host. One timer, re-armed only when it fires: it
   * then looks at when the host was last heard from (setting a timer per frame cost as much as a
   * small file).
   */
  private armTimer(): void {
    this.lastHeard = Date.now();
    if (this.timer) return;
    const check = () => {
      this.timer = null;
      // Not waiting for the host: it may rightly be blocked on a full pipe.
      if (!this.waiter && !this.slotWaiter && this.drainWaits === 0) return;
      const silent = Date.now() - this.lastHeard;
      if (silent < this.settings.callTimeoutMs) {
        this.timer = setTimeout(check, this.settings.callTimeoutMs - silent);
        return;
      }
      const seconds = this.settings.callTimeoutMs / 1000;
      const call = this.currentCall();
      this.fail(
        new AgentHostError(
          'E_AGENT_TIMEOUT',
          this.settings.agent,
          call,
          `agent "${this.settings.agent}" did not return from ${call}() within ${seconds} s (call_timeout); its host process was killed. Raise call_timeout in [agents.${this.settings.agent}] if the agent is only slow.`,
        ),
      );
      this.child.kill('SIGKILL');
    };
    this.timer = setTimeout(check, this.settings.callTimeoutMs);
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private receive(chunk: Buffer): void {
    let frames: DecodedFrame[];
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.fail(error as Error);
      this.child.kill('SIGKILL');
      return;
    }
    if (frames.length > 0) this.lastHeard = Date.now(); // the host is alive and answering
    for (const frame of frames) {
      if (this.discarding && RUN_FRAMES.includes(frame.type)) {
        this.drop(frame);
        continue;
      }
      if (frame.type === Frame.SLOT_DONE) {
        this.restoreSlots.push(frame.payload.readUInt32LE(0));
        this.wakeSlotWaiter();
        continue;
      }
      if (frame.type === Frame.CALL) {
        this.call = parseJson<{ call: string }>(frame.payload).call;
        continue;
      }
      if (frame.type === Frame.LOG) {
        const { level, message } = parseJson<{ level: string; message: string }>(frame.payload);
        this.settings.onLog?.(level, message);
        continue;
      }
      const waiter = this.waiter;
      if (waiter && (waiter.accept.includes(frame.type) || frame.type === Frame.ERROR)) {
        this.waiter = null;
        if (frame.type === Frame.ERROR) {
          const e = parseJson<{ code: string; message: string; call: string }>(frame.payload);
          waiter.reject(new AgentfdError(e.code, e.message));
        } else waiter.resolve(frame);
      } else {
        this.inbox.push(frame);
        this.inboxBytes += frame.payload.length;
      }
    }
    // Flow control: stop reading while the consumer is behind; the pipe fills and the host waits.
    if (this.inbox.length >= INBOX_FRAMES || this.inboxBytes >= INBOX_BYTES) this.pipe.pause();
  }

  private send(frames: Buffer[]): void {
    for (const f of frames) this.requests.write(f);
  }

  /** Restore slots of the shared region the host has written out (SLOT_DONE), free to fill again. */
  private readonly restoreSlots: number[] = [];
  /** Restore writes waiting for the pipe to drain. */
  private drainWaits = 0;
  private slotWaiter: (() => void) | null = null;

  private wakeSlotWaiter(): void {
    const waiter = this.slotWaiter;
    this.slotWaiter = null;
    waiter?.();
  }

  /** Offer `count` slots of the shared region for restore writes (RESTORE_WRITE_SLOT). */
  offerRestoreSlots(count: number): void {
    this.restoreSlots.splice(0, this.restoreSlots.length, ...Array.from({ length: count }, (_, i) => i));
  }

  /** A free restore slot; waits while the host is writing them all out (the flow control). */
  async takeRestoreSlot(): Promise<number> {
    for (;;) {
      if (this.failure) throw this.failure;
      const slot = this.restoreSlots.shift();
      if (slot !== undefined) return slot;
      this.armTimer();
      await new Promise<void>((resolve) => (this.slotWaiter = resolve));
    }
  }

  /** Use `region` for DATA_SLOT frames (the host mapped it too). */
  useRegion(region: SharedRegion | null): void {
    this.region = region;
  }

  /** A DATA_SLOT frame becomes a DATA frame: copy the chunk out, then give the slot back. */
  private materialize(frame: DecodedFrame): DecodedFrame {
    if (frame.type !== Frame.DATA_SLOT || !this.region) return frame;
    const slot = frame.payload.readUInt32LE(0);
    const length = frame.payload.readUInt32LE(4);
    if (slot >= SLOTS || length > SLOT_SIZE) {
      const error = new AgentfdError('E_HOST_PROTOCOL', `the agent host announced ${length} bytes in shared-memory slot ${slot}; the host is broken`);
      this.fail(error);
      this.child.kill('SIGKILL');
      throw error;
    }
    const data = Buffer.from(this.region.bytes.subarray(slot * SLOT_SIZE, slot * SLOT_SIZE + length));
    const free = Buffer.alloc(4);
    free.writeUInt32LE(slot, 0);
    this.post(encodeFrame(Frame.SLOT_FREE, free));
    return { type: Frame.DATA, payload: data };
  }

  /** Wait for the next frame of one of the `accept` types (or an ERROR, which rejects). DATA_SLOT is delivered as DATA. */
  next(accept: readonly number[]): Promise<DecodedFrame> {
    if (accept.includes(Frame.DATA)) accept = [...accept, Frame.DATA_SLOT];
    return this.nextRaw(accept).then((frame) => this.materialize(frame));
  }

  private nextRaw(accept: readonly number[]): Promise<DecodedFrame> {
    if (this.failure) return Promise.reject(this.failure);
    const index = this.inbox.findIndex((f) => accept.includes(f.type) || f.type === Frame.ERROR);
    if (index >= 0) {
      const frame = index === 0 ? this.inbox.shift() : this.inbox.splice(index, 1)[0];
      this.inboxBytes -= frame!.payload.length;
      if (this.inbox.length < INBOX_FRAMES && this.inboxBytes < INBOX_BYTES) this.pipe.resume();
      if (frame!.type === Frame.ERROR) {
        const e = parseJson<{ code: string; message: string }>(frame!.payload);
        return Promise.reject(new AgentfdError(e.code, e.message));
      }
      return Promise.resolve(frame!);
    }
    return new Promise((resolve, reject) => {
      this.waiter = { accept, resolve, reject };
      this.armTimer();
    });
  }

  /** Send a request and wait for its answer. */
  request(type: number, frames: Buffer[] | null, accept: readonly number[] = [Frame.OK]): Promise<DecodedFrame> {
    if (this.failure) return Promise.reject(this.failure);
    this.send(frames ?? encodeFrame(type));
    return this.next(accept);
  }

  /** Send a frame whose answer is read with next(), or that has none. */
  post(frames: Buffer[]): void {
    if (!this.failure) this.send(frames);
  }

  /**
   * Send a frame that has no answer (RESTORE_WRITE), waiting while the pipe to the host is full:
   * the host writing slowly slows the restore, and memory stays bounded.
   */
  async stream(frames: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    this.requests.cork();
    let room = true;
    for (const f of frames) room = this.requests.write(f);
    this.requests.uncork();
    if (!room) {
      // Waiting for the host to read: the call timeout runs (a hung agent never drains the pipe).
      this.drainWaits++;
      this.armTimer();
      await new Promise<void>((resolve) => {
        const done = () => {
          this.requests.off('drain', done);
          this.child.off('close', done);
          resolve();
        };
        this.requests.on('drain', done);
        this.child.on('close', done);
      }).finally(() => this.drainWaits--);
    }
    if (this.failure) throw this.failure;
  }

  /** Drop a frame of an abandoned run; a shared-memory slot goes back to the host. */
  private drop(frame: DecodedFrame): void {
    if (frame.type !== Frame.DATA_SLOT) return;
    const free = Buffer.alloc(4);
    free.writeUInt32LE(frame.payload.readUInt32LE(0), 0);
    this.post(encodeFrame(Frame.SLOT_FREE, free));
  }

  /**
   * The job gave up on a backup run before its end (a write error): nothing will read its data.
   * The host is told to stop at its next read or file, is_cancelled() answers 1, and what it
   * still sends is dropped (slots handed back, the pipe read), so that it is never stuck on a
   * full pipe and can answer BACKUP_FINISH.
   */
  abandonRun(): void {
    if (this.discarding) return;
    this.discarding = true;
    writeFileSync(this.cancelFile, 'cancelled\n');
    this.post(encodeFrame(Frame.BACKUP_STOP));
    for (const frame of this.inbox.splice(0)) this.drop(frame);
    this.inboxBytes = 0;
    this.pipe.resume();
  }

  /** Kill the host now (after a grace period that ran out). */
  kill(error: Error): void {
    this.fail(error);
    this.child.kill('SIGKILL');
  }

  /** Ask the agent to stop (is_cancelled), and kill the host if it has not ended in time. */
  cancel(): void {
    writeFileSync(this.cancelFile, 'cancelled\n');
    const grace = setTimeout(() => {
      this.fail(new AgentfdError('E_CANCELLED', `agent "${this.settings.agent}" did not stop within ${this.settings.cancelGraceMs / 1000} s of the cancel; its host process was killed`));
      this.child.kill('SIGKILL');
    }, this.settings.cancelGraceMs);
    grace.unref();
    void this.exited.then(() => clearTimeout(grace));
  }

  /** End the host: CLOSE, then a kill if it does not exit promptly. */
  async close(): Promise<void> {
    this.closing = true;
    this.stopTimer();
    rmSync(this.cancelFile, { force: true });
    this.pipe.resume();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.send(encodeFrame(Frame.CLOSE));
      this.requests.end();
      const kill = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(kill);
    }
  }
}
