/**
 * The bridge: a native agent library behind the `Agent` interface. The agent's call sequence
 * (next file, start stream, read until 0, end stream, end file) becomes an async iterator of files
 * whose streams are async iterators of byte chunks.
 *
 * Reading is pull-based: the agent is called only when the consumer asks for the next chunk, so
 * a slow consumer stalls the agent (backpressure) and at most one read buffer per stream is in
 * flight. Calls run on the libuv thread pool (offThread), so the event loop never waits for the
 * agent.
 */
import type { Agent, AgentFile, AgentStream, BackupRequest, BackupRun, RestoreRequest, RestoreRun } from '../agents/agent.js';
import type { AgentSession, LoadedAgent, SessionOptions } from '../agents/session.js';
import { requireUtf8Names, type AgentFileInfo } from '../agents/types.js';
import { AgentfdError } from '../errors.js';

/** Bytes asked of the agent per read: large reads amortise the per-call cost. */
export const READ_SIZE = 1024 * 1024;

function sessionOptions(request: BackupRequest | RestoreRequest, offThread: boolean): SessionOptions {
  return {
    jobName: request.jobName,
    jobId: request.jobId,
    options: request.options,
    filesetCheck: request.filesetCheck,
    log: request.log,
    isCancelled: request.isCancelled,
    referenceState: 'referenceState' in request ? request.referenceState : null,
    offThread,
  };
}

function protocolCheck(name: string, session: AgentSession): void {
  if (session.protocolErrors.length > 0) {
    throw new AgentfdError('E_AGENT_PROTOCOL', `agent "${name}" misused a host function: ${session.protocolErrors.join('; ')}`);
  }
}

/** The files of a backup session, pulled one call at a time. */
async function* filesOf(name: string, session: AgentSession): AsyncGenerator<AgentFile> {
  for (;;) {
    const info = await session.nextFile();
    protocolCheck(name, session);
    if (info === null) return;
    let next = 0; // the stream the consumer may read now
    let refused = false; // a stream broke a rule: the file was ended with the agent, the job goes on
    const streams: AgentStream[] = info.streams.map((stream) => ({
      ...stream,
      data: async function* () {
        if (stream.index !== next) {
          throw new AgentfdError('E_BRIDGE_ORDER', `${info.path}: stream ${stream.index} was read out of order (stream ${next} is next); streams are read once, in order`);
        }
        next++;
        await session.startStream(stream.index);
        // A buffer per read (the consumer keeps chunks while it reads ahead), no larger than what the
        // stream can still hold: the size hint is a limit, and 1 MiB for a 1 KiB file was most of its cost.
        for (let left = stream.sizeHint ?? Infinity; ; ) {
          const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(READ_SIZE, left)));
          let n: number;
          try {
            n = await session.read(buffer);
          } catch (error) {
            if ((error as { code?: string }).code !== 'E_FILE_REFUSED') throw error;
            refused = true;
            await session.endStream();
            await session.endFile();
            throw error;
          }
          if (n === 0) break;
          left -= n;
          yield buffer.subarray(0, n);
        }
        await session.endStream();
      },
    }));
    yield { ...info, streams };
    if (refused) continue;
    if (next !== streams.length) {
      throw new AgentfdError('E_BRIDGE_ORDER', `${info.path}: the next file was asked for before all ${streams.length} streams were read`);
    }
    await session.endFile();
  }
}

export class NativeAgent implements Agent {
  readonly kind: 'native' | 'bacula';
  readonly name: string;
  readonly version: string | null;
  readonly abi: number;
  readonly capabilities;
  private readonly library: LoadedAgent;
  private readonly offThread: boolean;

  constructor(library: LoadedAgent, options: { offThread?: boolean } = {}) {
    this.library = library;
    this.kind = library.kind;
    this.name = library.name;
    this.version = library.info.version ?? null;
    this.abi = library.abi;
    this.capabilities = library.capabilities;
    this.offThread = options.offThread ?? true;
  }

  async backup(request: BackupRequest): Promise<BackupRun> {
    const session = await this.library.openSession(sessionOptions(request, this.offThread));
    let deliveredLevel;
    try {
      deliveredLevel = await session.backupPrepare(request.level, request.sinceNs, request.jobStartNs);
      protocolCheck(this.name, session);
    } catch (error) {
      session.close();
      throw error;
    }
    return {
      deliveredLevel,
      files: filesOf(this.name, session),
      state: () => session.state,
      ...(session.stillExisting ? { stillExisting: (paths: string[]) => session.stillExisting!(paths) } : {}),
      ...(this.capabilities.includes('estimate') && session.estimate ? { estimate: () => session.estimate!() } : {}),
      finish: (committed) => session.backupFinish(committed),
      close: async () => session.close(),
    };
  }

  async restore(request: RestoreRequest): Promise<RestoreRun> {
    const session = await this.library.openSession(sessionOptions(request, this.offThread));
    try {
      await session.restorePrepare(request.target, request.sourceAbi, request.sourceAgentVersion);
    } catch (error) {
      session.close();
      throw error;
    }
    return {
      startFile: async (file: AgentFileInfo) => {
        requireUtf8Names(file);
        await session.restoreStartFile(file);
      },
      write: (streamIndex, chunk) => session.restoreWrite(streamIndex, chunk),
      endFile: (ok) => session.restoreEndFile(ok),
      finish: () => session.restoreFinish(),
      close: async () => session.close(),
    };
  }
}
