/**
 * Bacula's message framing (lib/bsock.c): every message is a big-endian int32 length and that many
 * bytes; a length <= 0 is a signal with no payload. The Director, the SD and the FD all talk this on
 * TCP, so a Bsock wraps any Duplex; TLS, when both sides want it, takes over the same socket after
 * authentication (startTls).
 */
import type { OnReadOpts } from 'node:net';
import type { Duplex } from 'node:stream';
import { AgentfdError, messageOf } from '../../errors.js';
import { decodeName, encodeName } from '../../platform/byte-names.js';

/** Signals (negative lengths, bsock.h). */
export const BNET = {
  EOD: -1,
  EOD_POLL: -2,
  STATUS: -3,
  TERMINATE: -4,
  POLL: -5,
  HEARTBEAT: -6,
  HB_RESPONSE: -7,
  BTIME: -9,
  BREAK: -10,
  START_SELECT: -11,
  END_SELECT: -12,
  INVALID_CMD: -13,
  CMD_FAILED: -14,
  CMD_OK: -15,
  CMD_BEGIN: -16,
  MSGS_PENDING: -17,
  MAIN_PROMPT: -18,
  SELECT_INPUT: -19,
  WARNING_MSG: -20,
  ERROR_MSG: -21,
  INFO_MSG: -22,
  RUN_CMD: -23,
  YESNO: -24,
  START_RTREE: -25,
  END_RTREE: -26,
  SUB_PROMPT: -27,
  TEXT_INPUT: -28,
  EXT_TERMINATE: -29,
  FDCALLED: -30,
} as const;

/** Length-word bit: the payload is an LZ4 block (comm-line compression). */
export const BNET_COMPRESSED = 1 << 30;
/** Length-word bit: a second int32 of flags follows the length word. */
export const BNET_HDR_EXTEND = 1 << 29;
/** Bits of the extended header's flags word; read and ignored, listed to make dumps readable. */
export const BNET_FLAGS = {
  IS_CMD: 1 << 28,
  OFFSET: 1 << 27,
  NOCOMPRESS: 1 << 25,
  DATACOMPRESSED: 1 << 24,
} as const;

/** Largest payload Bacula accepts; a peer sending more is broken and the connection is dropped. */
export const MAX_RECEIVE = 1_000_000;
/** Largest payload Bacula will send. */
export const MAX_SEND = 4_000_000;
/**
 * Largest payload accepted before the peer authenticated: a Director's hello and CRAM-MD5 messages
 * are a few hundred bytes (bacula-fd wants a hello of 25 to 500), so a stranger announcing more is
 * refused at its header instead of being buffered up to MAX_RECEIVE.
 */
export const PRE_AUTH_MAX_RECEIVE = 64 * 1024;
/** What a queued message counts for the high-water mark besides its payload: its header, so a flood of signals counts too. */
const QUEUED_OVERHEAD = 4;

/**
 * Above this many bytes of received but unread messages the socket is paused, so a fast peer (an SD
 * streaming a restore) cannot make us buffer without limit; reading below half of it resumes.
 */
const RECEIVE_HIGH_WATER = 4 * 1024 * 1024;
/** Payloads up to this size are copied next to their header so the frame is one write. */
const COALESCE_LIMIT = 16 * 1024;
/**
 * Frames waiting to be written go out together once they reach this many bytes (or a large
 * payload comes, or the event loop turns): a backup of small files sends nine frames per file,
 * and one write(2) each cost more than the file's data.
 */
const FLUSH_AT = 64 * 1024;

const SIGNAL_NAMES = new Map<number, string>(Object.entries(BNET).map(([name, value]) => [value, `BNET_${name}`]));

/** "BNET_EOD" for -1; unknown signals by number, since a peer may be newer than this table. */
export function signalName(signal: number): string {
  return SIGNAL_NAMES.get(signal) ?? `signal ${signal}`;
}

export type BsockMessage = { kind: 'data'; data: Buffer } | { kind: 'signal'; signal: number };

/** A slab of receive memory, and the room a read must find left in it (else a new slab). */
const SLAB_BYTES = 1024 * 1024;
const SLAB_MIN_READ = 64 * 1024;
/** Slabs kept for reuse: a restore's bsock queue (4 MiB) and queued writes (8 MiB) hold about this many. */
const SLABS_KEPT = 16;

/** One slab: the bytes read into it, and how many of them are done with (parsed, copied or released). */
interface SlabState {
  slab: Buffer;
  filled: number;
  done: number;
  /** No more reads go into it: once every byte is done it is reused. */
  retired: boolean;
}

/**
 * A plain TCP connection read into slabs of our own (net's `onread`), for a peer that streams
 * large messages (an SD's restore data). Node's own reads allocate a 64 KiB buffer per read, and
 * a message that spans two reads was copied into one more: two allocations and a copy per record
 * of a restore, whose memory outside the heap made V8 run a full collection every few dozen
 * MiB (a quarter of a restore's time in the profile). Here each read lands after the last one in
 * the current slab, so a message is a view of the slab it arrived in (copied only when it spans
 * two slabs). A slab is reused once every byte of it is done with: framing parsed, payloads copied
 * out, or messages released by their reader (Bsock.release: the restore releases each record once
 * written). One never released (a reader that does not) keeps its slab from reuse, and the slab
 * is freed as any buffer once nothing references it.
 *
 * Give `onread` to net.connect, then the socket and this to the Bsock. Not for a connection that
 * may start TLS (the TLS layer takes over the socket's reads).
 */
export class SlabReceiver {
  private current: SlabState = SlabReceiver.fresh(Buffer.allocUnsafe(SLAB_BYTES));
  private readonly states = new WeakMap<ArrayBufferLike, SlabState>([[this.current.slab.buffer, this.current]]);
  private readonly free: Buffer[] = [];
  private sink: ((chunk: Buffer) => void) | null = null;
  private early: Buffer[] = [];

  readonly onread: OnReadOpts = {
    buffer: () => {
      if (this.current.slab.length - this.current.filled < SLAB_MIN_READ) this.nextSlab();
      return this.current.slab.subarray(this.current.filled);
    },
    callback: (bytes, region) => {
      // `region` is what buffer() returned last: the free end of the current slab.
      const chunk = Buffer.from(region.buffer, region.byteOffset, bytes);
      this.current.filled += bytes;
      if (this.sink) this.sink(chunk);
      else this.early.push(chunk);
      return true; // the Bsock pauses the socket itself
    },
  };

  private static fresh(slab: Buffer): SlabState {
    return { slab, filled: 0, done: 0, retired: false };
  }

  /** `bytes` bytes of the slab that `view` lies in are done with; a view of no slab of ours is ignored. */
  done(view: Buffer, bytes: number): void {
    const state = this.states.get(view.buffer);
    if (!state) return;
    state.done += bytes;
    this.recycle(state);
  }

  private nextSlab(): void {
    const old = this.current;
    old.retired = true;
    this.current = SlabReceiver.fresh(this.free.pop() ?? Buffer.allocUnsafe(SLAB_BYTES));
    this.states.set(this.current.slab.buffer, this.current);
    this.recycle(old);
  }

  private recycle(state: SlabState): void {
    if (!state.retired || state.done < state.filled) return;
    // Forgotten first: a late count against it (a bug) cannot hand it out twice.
    this.states.delete(state.slab.buffer);
    if (this.free.length < SLABS_KEPT) this.free.push(state.slab);
  }

  /** From now on chunks go to `sink` (those that came before first). */
  attach(sink: (chunk: Buffer) => void): void {
    this.sink = sink;
    for (const chunk of this.early.splice(0)) sink(chunk);
  }
}

/** A connection that closed or broke, or a peer that broke the framing. `peer` names the other side. */
export class BsockError extends AgentfdError {
  readonly peer: string;

  constructor(code: string, peer: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'BsockError';
    this.peer = peer;
  }
}

/** receiveText() got a signal: callers that expect one (BNET_EOD ending a list) can catch and check it. */
export class BsockSignalError extends BsockError {
  readonly signal: number;

  constructor(peer: string, signal: number) {
    super('E_BACULA_SIGNAL', peer, `expected a text message from ${peer}, got ${signalName(signal)} (${signal})`);
    this.name = 'BsockSignalError';
    this.signal = signal;
  }
}

/** Spaces inside names in commands travel as 0x01 so sscanf("%s") does not split them (bash_spaces). */
export function bashSpaces(s: string): string {
  return s.replaceAll(' ', '\x01');
}

export function unbashSpaces(s: string): string {
  return s.replaceAll('\x01', ' ');
}

interface Waiter {
  skipHeartbeats: boolean;
  resolve(message: BsockMessage): void;
  reject(error: Error): void;
}

/** Where the parser is within the current frame. */
type FrameState = { step: 'length' } | { step: 'flags'; length: number } | { step: 'payload'; length: number };

export class Bsock {
  readonly peer: string;
  private socket: Duplex;

  /** Unparsed received bytes, as the socket delivered them (concatenated only when a frame spans chunks). */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private frame: FrameState = { step: 'length' };

  /** Parsed messages nobody has asked for yet, and the bytes they hold (for pausing the socket). */
  private queue: (BsockMessage | undefined)[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private waiters: Waiter[] = [];

  /** Set once no more messages can arrive; receives after the queue empties reject with it. */
  private finalError: BsockError | undefined;
  private isClosed = false;
  private drainWait: Promise<void> | undefined;
  /** Frames sent and not yet written to the socket (flush()), in order, and their bytes. */
  private outgoing: Buffer[] = [];
  private outgoingBytes = 0;
  private flushQueued = false;
  /** Told once when the peer ends or breaks the connection before we close it. */
  private peerGoneListeners: ((error: BsockError) => void)[] = [];
  private closedByUs = false;
  /** Messages still to be parsed before the bytes that follow belong to a TLS handshake. */
  private parseLimit = Number.POSITIVE_INFINITY;
  /** The largest payload accepted, and the queued bytes above which the socket is paused (limitReceive). */
  private maxReceive = MAX_RECEIVE;
  private highWater = RECEIVE_HIGH_WATER;
  /** Set by hold(): nothing more is read from the peer. */
  private held = false;
  private readonly slabs: SlabReceiver | null;
  private received = 0;
  private tlsStarted = false;

  /** `slabs`: the receiver given as `onread` to the socket's net.connect (SlabReceiver), if any. */
  constructor(socket: Duplex, peer: string, slabs?: SlabReceiver) {
    this.socket = socket;
    this.peer = peer;
    this.slabs = slabs ?? null;
    this.listen(socket);
    slabs?.attach(this.onData);
  }

  /**
   * The reader is done with `data`, a message's payload (no view of its memory is used after), so
   * that memory may be reused (SlabReceiver). Once per message; nothing happens on a connection
   * not read into slabs.
   */
  release(data: Buffer): void {
    this.slabs?.done(data, data.length);
  }

  private listen(socket: Duplex): void {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  private unlisten(socket: Duplex): void {
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('close', this.onClose);
    socket.off('error', this.onError);
  }

  // 'end' only means the peer will send nothing more (we may still write if the socket allows
  // half-open connections); 'close' means the connection is gone.
  private readonly onEnd = (): void => this.endOfInput(this.closedByPeer());
  private readonly onClose = (): void => this.finish(this.closedByPeer());
  // Without an 'error' listener a reset connection would crash the process; it ends this
  // conversation only, and the reason goes into the error receivers see.
  private readonly onError = (error: Error): void => this.finish(this.closedByPeer(error));

  /**
   * The next `messages` messages are the last plain ones: the peer's TLS handshake may follow them
   * in the same TCP segment, and those bytes must not be parsed as frames. Call before they arrive.
   */
  plainUntil(messages: number): void {
    this.parseLimit = messages;
  }

  /**
   * Hands the connection to TLS: `upgrade` wraps the plain socket (with any handshake bytes that
   * arrived after the last plain message put back) and resolves once the handshake is done; every
   * later message goes through the TLS socket.
   */
  async startTls(upgrade: (plain: Duplex) => Promise<Duplex>): Promise<void> {
    if (this.frame.step !== 'length') throw new BsockError('E_BACULA_PROTOCOL', this.peer, `${this.peer} started TLS in the middle of a message`);
    const plain = this.socket;
    this.flush(); // our last plain frames go before the handshake
    this.unlisten(plain);
    // A failure during the handshake is reported by `upgrade`; this only keeps the process alive.
    const ignore = (): void => undefined;
    plain.on('error', ignore);
    plain.pause();
    const early = this.chunks;
    this.chunks = [];
    this.chunkBytes = 0;
    if (early.length > 0) plain.unshift(Buffer.concat(early));
    this.parseLimit = Number.POSITIVE_INFINITY;
    try {
      this.socket = await upgrade(plain);
    } catch (error) {
      this.finish(error instanceof BsockError ? error : new BsockError('E_BACULA_TLS', this.peer, messageOf(error), { cause: error }));
      throw error;
    }
    this.tlsStarted = true;
    this.listen(this.socket);
    this.socket.resume();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Data messages received so far (Bacula's read_seqno, which `status client` shows for the SD). */
  get readSeqNo(): number {
    return this.received;
  }

  /** TLS took over the connection (startTls). */
  get tls(): boolean {
    return this.tlsStarted;
  }

  /**
   * Caps what the peer may make us hold: a message announcing more than `maxMessage` bytes drops
   * the connection at its header, and reading pauses once that much is queued. null: Bacula's own
   * limits (MAX_RECEIVE), once the peer has authenticated.
   */
  limitReceive(maxMessage: number | null): void {
    this.maxReceive = maxMessage ?? MAX_RECEIVE;
    this.highWater = maxMessage ?? RECEIVE_HIGH_WATER;
    this.deliver(); // resumes or pauses the socket for the new mark
  }

  /** Stops reading from the peer for good (what arrives stays in the kernel); sending still works. */
  hold(): void {
    this.held = true;
    this.dropInput();
    this.socket.pause();
  }

  private closedByPeer(cause?: Error): BsockError {
    const why = cause && 'code' in cause && typeof cause.code === 'string' ? ` (${cause.code})` : cause ? ` (${cause.message})` : '';
    const midFrame = this.chunkBytes > 0 || this.frame.step !== 'length' ? ' in the middle of a message' : '';
    return new BsockError('E_BACULA_CLOSED', this.peer, `${this.peer} closed the connection${midFrame}${why}`, { cause });
  }

  // ---- receiving -------------------------------------------------------------------------------

  private readonly onData = (chunk: Buffer | string): void => {
    if (this.finalError) return;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    const last = this.chunks.length > 0 ? (this.chunks[this.chunks.length - 1] as Buffer) : null;
    if (last && last.buffer === bytes.buffer && last.byteOffset + last.length === bytes.byteOffset) {
      // The next read of the same slab (SlabReceiver): one chunk, so a message across both is a view, not a copy.
      this.chunks[this.chunks.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + bytes.length);
    } else {
      this.chunks.push(bytes);
    }
    this.chunkBytes += bytes.length;
    try {
      this.parse();
    } catch (error) {
      // A broken frame leaves no way to find the next one: drop the connection, as bsock.c does.
      this.fail(error as BsockError);
      return;
    }
    if (this.queuedBytes >= this.highWater && !this.socket.isPaused()) this.socket.pause();
    this.deliver();
  };

  /**
   * Removes and returns the first `n` buffered bytes (n <= chunkBytes). `kept`: a payload its
   * reader holds (and releases); otherwise (framing) the bytes are done with once read, as are
   * those copied out of a slab.
   */
  private take(n: number, kept = false): Buffer {
    this.chunkBytes -= n;
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) {
      const taken = first.length === n ? first : first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      if (!kept) this.slabs?.done(taken, n);
      return taken;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0] as Buffer;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      this.slabs?.done(chunk, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    return out;
  }

  private parse(): void {
    while (this.parseLimit > 0) {
      const state = this.frame;
      if (state.step === 'length') {
        if (this.chunkBytes < 4) return;
        const word = this.take(4).readInt32BE(0);
        if (word <= 0) {
          // 0 is an empty message, not a signal: Bacula's recv() returns it as data of length 0.
          this.enqueue(word === 0 ? { kind: 'data', data: Buffer.alloc(0) } : { kind: 'signal', signal: word });
          continue;
        }
        if (word & BNET_COMPRESSED) {
          // We advertise version 213, for which peers never compress; a compressed frame means a
          // peer we do not understand, and guessing at its payload would corrupt data.
          throw new BsockError('E_BACULA_PROTOCOL', this.peer, `${this.peer} sent an LZ4-compressed message, which agentfd does not accept (it advertises protocol 213 so peers do not compress)`);
        }
        const length = word & ~BNET_HDR_EXTEND;
        if (length > this.maxReceive) {
          const when = this.maxReceive < MAX_RECEIVE ? ' before authenticating' : '';
          throw new BsockError('E_BACULA_PROTOCOL', this.peer, `${this.peer} sent a ${length}-byte message${when}, over the ${this.maxReceive}-byte limit; dropping the connection`);
        }
        this.frame = word & BNET_HDR_EXTEND ? { step: 'flags', length } : { step: 'payload', length };
        continue;
      }
      if (state.step === 'flags') {
        if (this.chunkBytes < 4) return;
        this.take(4); // Only compression details live here, and nothing we accept is compressed.
        this.frame = { step: 'payload', length: state.length };
        continue;
      }
      if (this.chunkBytes < state.length) return;
      const data = state.length === 0 ? Buffer.alloc(0) : this.take(state.length, true);
      this.frame = { step: 'length' };
      this.enqueue({ kind: 'data', data });
    }
  }

  private enqueue(message: BsockMessage): void {
    if (message.kind === 'data') this.received++;
    this.queue.push(message);
    this.queuedBytes += QUEUED_OVERHEAD + (message.kind === 'data' ? message.data.length : 0);
    // The last plain message: what follows is TLS, left unparsed for startTls.
    if (--this.parseLimit === 0) this.socket.pause();
  }

  private dequeue(): BsockMessage | undefined {
    if (this.queueHead >= this.queue.length) return undefined;
    const message = this.queue[this.queueHead] as BsockMessage;
    this.queue[this.queueHead] = undefined; // let the payload be collected
    this.queueHead++;
    // Compact now and then instead of shift() per message, which is O(n) on a long queue.
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    this.queuedBytes -= QUEUED_OVERHEAD + (message.kind === 'data' ? message.data.length : 0);
    return message;
  }

  /** Hands queued messages to waiting receivers, then the final error once nothing is left. */
  private deliver(): void {
    while (this.waiters.length > 0) {
      const message = this.dequeue();
      if (message === undefined) break;
      const waiter = this.waiters[0] as Waiter;
      // Heartbeats only keep firewalls and idle timers happy; Bacula's bget_msg drops them without reply.
      if (waiter.skipHeartbeats && message.kind === 'signal' && (message.signal === BNET.HEARTBEAT || message.signal === BNET.HB_RESPONSE)) {
        continue;
      }
      this.waiters.shift();
      waiter.resolve(message);
    }
    if (this.finalError && this.queueHead >= this.queue.length) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const waiter of waiters) waiter.reject(this.finalError);
    }
    const waitingForTls = this.parseLimit === 0;
    if (this.queuedBytes < this.highWater / 2 && this.socket.isPaused() && !this.finalError && !waitingForTls && !this.held) this.socket.resume();
    else if (this.queuedBytes >= this.highWater && !this.socket.isPaused()) this.socket.pause();
  }

  /** No more messages will arrive: remember why, and tell receivers once they have read what came before. */
  private endOfInput(error: BsockError): void {
    this.finalError ??= error;
    if (!this.closedByUs) {
      const listeners = this.peerGoneListeners;
      this.peerGoneListeners = [];
      for (const listener of listeners) listener(error);
    }
    this.deliver();
  }

  /**
   * Calls `listener` once if the peer ends or breaks the connection while we still hold it, even
   * when nobody is receiving (a Director that hangs up while its job reads files).
   */
  onPeerGone(listener: (error: BsockError) => void): void {
    if (this.closedByUs) return;
    if (this.finalError) listener(this.finalError);
    else this.peerGoneListeners.push(listener);
  }

  /** The connection is gone for both directions. */
  private finish(error: BsockError): void {
    this.isClosed = true;
    this.endOfInput(error);
  }

  /** The peer broke the protocol: stop listening, drop the connection, report the reason. */
  private fail(error: BsockError): void {
    this.finish(error);
    this.chunks = [];
    this.chunkBytes = 0;
    this.socket.destroy();
  }

  /**
   * The next message. Messages that arrived earlier are queued, so frames are never lost between
   * calls. Concurrent calls are answered in call order.
   */
  receive(options?: { skipHeartbeats?: boolean }): Promise<BsockMessage> {
    return new Promise<BsockMessage>((resolve, reject) => {
      this.waiters.push({ skipHeartbeats: options?.skipHeartbeats ?? true, resolve, reject });
      this.deliver();
    });
  }

  /**
   * The next data message as text (names in it as bytes: platform/byte-names.ts), without the one trailing NUL C senders often include. A
   * signal instead is a BsockSignalError carrying its number.
   */
  async receiveText(): Promise<string> {
    const message = await this.receive();
    if (message.kind === 'signal') throw new BsockSignalError(this.peer, message.signal);
    const data = message.data;
    const end = data.length > 0 && data[data.length - 1] === 0 ? data.length - 1 : data.length;
    return decodeName(data.subarray(0, end));
  }

  // ---- sending ---------------------------------------------------------------------------------

  private assertWritable(): void {
    if (this.isClosed || this.socket.destroyed || this.socket.writableEnded) {
      throw this.finalError ?? new BsockError('E_BACULA_CLOSED', this.peer, `the connection to ${this.peer} is closed`);
    }
  }

  /** Resolves when the socket's write buffer has drained, or rejects if the connection goes away first. */
  private waitForDrain(): Promise<void> {
    if (this.socket.destroyed) return Promise.reject(this.finalError ?? this.closedByPeer());
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    this.drainWait ??= new Promise<void>((resolve, reject) => {
      const done = (error?: BsockError): void => {
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        this.drainWait = undefined;
        if (error) reject(error);
        else resolve();
      };
      const onDrain = (): void => done();
      const onClose = (): void => done(this.finalError ?? this.closedByPeer());
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
    return this.drainWait;
  }

  /**
   * Sends one frame. Header and payload are queued synchronously, in call order, so concurrent
   * sends never interleave; the frames queued go to the socket together (flush), when they reach
   * FLUSH_AT bytes, with a large payload, or at the latest once the event loop turns. The promise
   * waits for 'drain' when the socket's buffer is full, which is what keeps a sender reading files
   * from outrunning a slow SD.
   */
  async send(data: Buffer | string): Promise<void> {
    const payload = typeof data === 'string' ? encodeName(data) : data; // a name's raw bytes go out as they are
    if (payload.length > MAX_SEND) {
      throw new BsockError('E_BACULA_PROTOCOL', this.peer, `refusing to send a ${payload.length}-byte message to ${this.peer} (Bacula's limit is ${MAX_SEND})`);
    }
    this.assertWritable();
    if (payload.length <= COALESCE_LIMIT) {
      const frame = Buffer.allocUnsafe(4 + payload.length);
      frame.writeInt32BE(payload.length, 0);
      payload.copy(frame, 4);
      this.queueOut(frame);
    } else {
      // Large payloads (64 KiB file data) go as their own buffer rather than being copied.
      const header = Buffer.allocUnsafe(4);
      header.writeInt32BE(payload.length, 0);
      this.queueOut(header, payload);
    }
    if (!this.flushIfFull()) await this.waitForDrain();
  }

  /** Sends a signal (a negative length with no payload), e.g. BNET.EOD or BNET.TERMINATE. */
  async sendSignal(signal: number): Promise<void> {
    if (!Number.isInteger(signal) || signal >= 0 || signal < -0x80000000) {
      throw new RangeError(`a Bacula signal is a negative 32-bit integer, got ${signal}`);
    }
    this.assertWritable();
    const header = Buffer.allocUnsafe(4);
    header.writeInt32BE(signal, 0);
    this.queueOut(header);
    if (!this.flushIfFull()) await this.waitForDrain();
  }

  private queueOut(...buffers: Buffer[]): void {
    for (const b of buffers) {
      this.outgoing.push(b);
      this.outgoingBytes += b.length;
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  /** Flushes once FLUSH_AT bytes are queued; false when the socket then asks us to wait for 'drain'. */
  private flushIfFull(): boolean {
    return this.outgoingBytes < FLUSH_AT || this.flush();
  }

  /** Writes the queued frames, in one writev; false when the socket's buffer is full. */
  private flush(): boolean {
    if (this.outgoing.length === 0) return true;
    const frames = this.outgoing;
    this.outgoing = [];
    this.outgoingBytes = 0;
    if (this.socket.destroyed || this.socket.writableEnded) return true; // dropped, as the socket would drop them
    let flowing = true;
    this.socket.cork();
    for (const frame of frames) flowing = this.socket.write(frame);
    this.socket.uncork();
    return flowing;
  }

  /**
   * Runs `fn` with the socket corked, so the frames it sends leave in as few writes as possible
   * (a stream header, a record and an EOD, say). `fn` must start its sends synchronously; return
   * their promises and await the result: `await bs.cork(() => Promise.all([bs.send(a), bs.sendSignal(BNET.EOD)]))`.
   */
  cork<T>(fn: () => T): T {
    this.socket.cork();
    try {
      return fn();
    } finally {
      this.socket.uncork();
    }
  }

  /** Ends the connection after queued writes are flushed. Pending and later receives reject. */
  close(): void {
    this.flush();
    this.closeOurSide(() => this.socket.end());
  }

  /** Drops the connection at once, discarding unsent data. */
  destroy(): void {
    this.outgoing = [];
    this.outgoingBytes = 0;
    this.closeOurSide(() => this.socket.destroy());
  }

  /** We close (`how`: end or destroy the socket): receivers get a "closed" error, not the peer's. */
  private closeOurSide(how: () => void): void {
    this.closedByUs = true;
    if (!this.isClosed) this.finalError ??= new BsockError('E_BACULA_CLOSED', this.peer, `the connection to ${this.peer} was closed`);
    this.isClosed = true;
    this.discardInput();
    how();
    this.deliver();
  }

  /** After we close, unread input is of no use; keep the socket flowing so its 'end' can arrive. */
  private discardInput(): void {
    this.dropInput();
    this.socket.resume();
  }

  /** Forgets what was received and not yet read, and stops taking more. */
  private dropInput(): void {
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.chunks = [];
    this.chunkBytes = 0;
    this.socket.off('data', this.onData);
  }
}
