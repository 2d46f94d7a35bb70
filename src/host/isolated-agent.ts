/**
 * A native agent that runs in its own host process, behind the same `Agent` interface as the
 * in-process bridge: the job engine, pipeline and sinks cannot tell the two apart. Each backup or
 * restore gets a fresh host, so a crash or a hang ends that job's use of the agent and nothing
 * else.
 */
import type { Agent, AgentFile, AgentJobContext, AgentStream, BackupRequest, BackupRun, RestoreRequest, RestoreRun } from '../agents/agent.js';
import { requireUtf8Names, type AgentFileInfo, type Capability } from '../agents/types.js';
import type { AgentDescriptor } from '../agents/descriptor.js';
import { AgentfdError } from '../errors.js';
import { CALL_STATUS_BYTES, FRAME_HEADER, Frame, encodeFrame, jsonFrame, parseJson } from './protocol.js';
import { AgentHost, SLOTS, SLOT_SIZE, type HostSettings } from './host-client.js';
import { SharedRegion } from './shared-memory.js';
import type { BackupOpenMessage, DataPlane, RestoreOpenMessage, WireFile } from './host-main.js';

/**
 * After the job gave up on a backup run (a write error), how long the agent may take to stop and
 * answer backup_finish(FAILED) before its host is killed: short, the storage lock is held meanwhile.
 */
const ABANDON_GRACE_MS = 3000;

/** Restore writes up to this size go inside the pipe's frame; larger ones through a shared-memory slot. */
const INLINE_WRITE = 64 * 1024;

export interface IsolationSettings {
  callTimeoutMs: number;
  cancelGraceMs: number;
}

function toWire(file: AgentFileInfo): WireFile {
  return { ...file, mtimeNs: file.mtimeNs.toString() };
}

function context(host: AgentHost, request: AgentJobContext) {
  return { cancelFile: host.cancelFile, jobName: request.jobName, jobId: request.jobId, options: request.options, fileset: request.fileset ?? { include: [], exclude: [] } };
}

/**
 * The shared-memory region of one backup or restore (null where there is none: then data goes by
 * the pipe), its layout as the host is told it, and how to let it go once the host is gone.
 */
function dataRegion(): { region: SharedRegion | null; dataPlane: DataPlane | null; release: () => void } {
  const region = SharedRegion.create(SLOTS * SLOT_SIZE + CALL_STATUS_BYTES);
  return {
    region,
    dataPlane: region ? { file: region.file, slots: SLOTS, slotSize: SLOT_SIZE } : null,
    release: () => {
      region?.unlink();
      region?.close();
    },
  };
}

function protocolCheck(agent: string, errors: string[] | undefined): void {
  if (errors && errors.length > 0) throw new AgentfdError('E_AGENT_PROTOCOL', `agent "${agent}" misused a host function: ${errors.join('; ')}`);
}

export class IsolatedAgent implements Agent {
  readonly kind: 'native' | 'bacula';
  readonly name: string;
  readonly version: string | null;
  readonly abi: number;
  readonly capabilities: readonly Capability[];
  private readonly file: string;
  private readonly preload: string[] | undefined;
  private readonly settings: IsolationSettings;

  constructor(descriptor: AgentDescriptor, settings: IsolationSettings) {
    this.kind = descriptor.kind;
    this.preload = descriptor.preload;
    this.name = descriptor.name;
    this.version = descriptor.info.version ?? null;
    this.abi = descriptor.abi;
    this.capabilities = descriptor.capabilities;
    this.file = descriptor.file;
    this.settings = settings;
  }

  private start(request: AgentJobContext): Promise<AgentHost> {
    const settings: HostSettings = { agent: this.name, file: this.file, kind: this.kind, preload: this.preload, ...this.settings, onLog: (level, message) => request.log(level as 'info', message) };
    return AgentHost.start(settings);
  }

  /** Cancel the host when the job is cancelled: the job's own isCancelled is polled. */
  private watchCancel(host: AgentHost, request: AgentJobContext): () => void {
    const timer = setInterval(() => {
      if (request.isCancelled()) {
        host.cancel();
        clearInterval(timer);
      }
    }, 100);
    timer.unref();
    return () => clearInterval(timer);
  }

  async backup(request: BackupRequest): Promise<BackupRun> {
    const host = await this.start(request);
    const unwatch = this.watchCancel(host, request);
    const { region, dataPlane, release } = dataRegion();
    let state: Uint8Array | null = null;
    try {
      const open: BackupOpenMessage = {
        ...context(host, request),
        dataPlane,
        level: request.level, sinceNs: request.sinceNs.toString(), jobStartNs: request.jobStartNs.toString(),
        referenceState: request.referenceState ? Buffer.from(request.referenceState).toString('base64') : null,
      };
      if (region) host.useRegion(region); // before the open: a crash in backup_prepare is named from it
      const reply = parseJson<{ deliveredLevel: BackupRun['deliveredLevel']; protocolErrors: string[]; sharedMemory: boolean }>(
        (await host.request(Frame.BACKUP_OPEN, jsonFrame(Frame.BACKUP_OPEN, open))).payload,
      );
      region?.unlink(); // both sides have it mapped (or the host could not: then data comes by the pipe)
      if (!reply.sharedMemory) host.useRegion(null); // the host could not map it: data and calls come by the pipe
      protocolCheck(this.name, reply.protocolErrors);
      const name = this.name;
      // The host sends every file and its data without being asked (see runBackup in host-main.ts);
      // the frames arrive in order and are consumed in order.
      /**
       * The host's run is not going: not started (it starts when the files are first asked for:
       * an estimate never starts it), or over (its last FILE, or an error ended it).
       */
      let runEnded = true;
      let runStarted = false;
      const take = (types: readonly number[]) =>
        host.next(types).catch((error: unknown) => {
          runEnded = true;
          throw error;
        });
      async function* files(): AsyncGenerator<AgentFile> {
        if (!runStarted) {
          runStarted = true;
          runEnded = false;
          host.post(encodeFrame(Frame.BACKUP_RUN));
        }
        for (;;) {
          let frame = await take([Frame.FILE, Frame.STATE]);
          if (frame.type === Frame.STATE) {
            state = Uint8Array.from(frame.payload);
            frame = await take([Frame.FILE]);
          }
          const { file, protocolErrors } = parseJson<{ file: WireFile | null; protocolErrors: string[] }>(frame.payload);
          if (file === null) runEnded = true;
          protocolCheck(name, protocolErrors);
          if (file === null) return;
          let next = 0;
          let refused = false; // the host ended the file after a stream broke a rule
          const streams: AgentStream[] = file.streams.map((stream) => ({
            ...stream,
            data: async function* () {
              if (stream.index !== next) throw new AgentfdError('E_BRIDGE_ORDER', `${file.path}: stream ${stream.index} was read out of order`);
              next++;
              for (;;) {
                const data = await take([Frame.DATA, Frame.STREAM_END, Frame.FILE_REFUSED]);
                if (data.type === Frame.STREAM_END) return;
                if (data.type === Frame.FILE_REFUSED) {
                  refused = true;
                  throw new AgentfdError('E_FILE_REFUSED', parseJson<{ message: string }>(data.payload).message);
                }
                yield data.payload;
              }
            },
          }));
          yield { ...file, mtimeNs: BigInt(file.mtimeNs), streams };
          if (refused) continue;
          if (next !== streams.length) throw new AgentfdError('E_BRIDGE_ORDER', `${file.path}: the next file was asked for before all ${streams.length} streams were read`);
        }
      }
      return {
        deliveredLevel: reply.deliveredLevel,
        files: files(),
        state: () => state,
        ...(this.capabilities.includes('estimate')
          ? { estimate: async () => parseJson<{ files: number | null; bytes: number | null }>((await host.request(Frame.BACKUP_ESTIMATE, null)).payload) }
          : {}),
        finish: async (committed) => {
          if (runEnded) {
            await host.request(Frame.BACKUP_FINISH, jsonFrame(Frame.BACKUP_FINISH, { committed }));
            return;
          }
          // The job stopped reading mid-run (a write error): the host stops and its data is
          // dropped; the agent gets backup_finish(FAILED) if it stops in time, else its host is killed.
          host.abandonRun();
          const grace = Math.min(this.settings.cancelGraceMs, ABANDON_GRACE_MS);
          const timer = setTimeout(
            () => host.kill(new AgentfdError('E_AGENT_TIMEOUT', `agent "${name}" did not stop within ${grace / 1000} s after the job failed; its host process was killed`)),
            grace,
          );
          try {
            await host.request(Frame.BACKUP_FINISH, jsonFrame(Frame.BACKUP_FINISH, { committed: false }));
          } finally {
            clearTimeout(timer);
          }
        },
        stillExisting: async (paths) =>
          parseJson<{ paths: string[] }>((await host.request(Frame.BACKUP_STILL_EXISTING, jsonFrame(Frame.BACKUP_STILL_EXISTING, { paths }))).payload).paths,
        close: async () => {
          unwatch();
          await host.close();
          release(); // after the host is gone and the last chunk was copied out
        },
      };
    } catch (error) {
      unwatch();
      await host.close();
      release();
      throw error;
    }
  }

  async restore(request: RestoreRequest): Promise<RestoreRun> {
    const host = await this.start(request);
    // Large writes go through shared memory (one copy in, the agent writes from it), like backup data.
    const { region, dataPlane, release } = dataRegion();
    let shared: SharedRegion | null = null;
    try {
      const open: RestoreOpenMessage = {
        ...context(host, request), target: request.target, sourceAbi: request.sourceAbi, sourceAgentVersion: request.sourceAgentVersion, dataPlane,
      };
      if (region) host.useRegion(region); // a crash in restore_prepare is named from it
      const reply = parseJson<{ sharedMemory?: boolean }>((await host.request(Frame.RESTORE_OPEN, jsonFrame(Frame.RESTORE_OPEN, open))).payload);
      region?.unlink();
      if (region && reply.sharedMemory) {
        shared = region;
        host.offerRestoreSlots(SLOTS);
      } else host.useRegion(null);
    } catch (error) {
      await host.close();
      release();
      throw error;
    }
    const sendWrite = async (streamIndex: number, chunk: Uint8Array) => {
      if (shared && chunk.length > INLINE_WRITE) {
        // A slot at a time (a chunk larger than a slot, from some other writer, goes in pieces).
        for (let at = 0; at < chunk.length; at += SLOT_SIZE) {
          const piece = chunk.subarray(at, Math.min(chunk.length, at + SLOT_SIZE));
          const slot = await host.takeRestoreSlot();
          shared.bytes.set(piece, slot * SLOT_SIZE);
          const frame = Buffer.alloc(12);
          frame.writeUInt32LE(streamIndex, 0);
          frame.writeUInt32LE(slot, 4);
          frame.writeUInt32LE(piece.length, 8);
          await host.stream(encodeFrame(Frame.RESTORE_WRITE_SLOT, frame));
        }
        return;
      }
      // Streamed, not answered: a failed write is reported by the host as the ERROR that the
      // file's end meets. The frame goes out in parts, without joining them.
      const head = Buffer.alloc(FRAME_HEADER + 4);
      head.writeUInt32LE(4 + chunk.length, 0);
      head.writeUInt8(Frame.RESTORE_WRITE, 4);
      head.writeUInt32LE(streamIndex, FRAME_HEADER);
      await host.stream([head, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)]);
    };
    return {
      startFile: async (file) => {
        requireUtf8Names(file); // here, not in the host: the refusal keeps its code (E_RESTORE_PATH)
        await host.request(Frame.RESTORE_START_FILE, jsonFrame(Frame.RESTORE_START_FILE, { file: toWire(file) }));
      },
      write: sendWrite,
      endFile: async (ok) => void (await host.request(Frame.RESTORE_END_FILE, jsonFrame(Frame.RESTORE_END_FILE, { ok }))),
      finish: async () => void (await host.request(Frame.RESTORE_FINISH, null)),
      close: async () => {
        await host.close();
        release(); // after the host is gone
      },
    };
  }
}
