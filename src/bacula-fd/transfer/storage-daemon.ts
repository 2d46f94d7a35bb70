/**
 * The File Daemon's side of a connection to a Bacula Storage Daemon (stored/fd_cmds.c): dial the
 * address the Director gave, say which job this is, authenticate both ways with the job's session
 * key, then run an append session (backup) or a read session (restore).
 *
 * agentfd says it speaks FD protocol 213, so the SD never sends LZ4-compressed frames.
 */
import net from 'node:net';
import { AgentfdError } from '../../errors.js';
import { BNET, Bsock, SlabReceiver, type BsockMessage } from '../wire/bsock.js';
import { cramAccepts, cramResponse, makeChallenge } from '../wire/cram-md5.js';
import { TLS_NEED, negotiateTls, tlsClient, type TlsSettings } from '../wire/tls.js';
import { DEBUG, type DebugWrite } from '../wire/debug.js';
import { BandwidthThrottle } from './bandwidth.js';

export const FD_PROTOCOL_VERSION = 213;

/** One record of a read session: its header fields and its bytes. */
export interface SdRecord {
  fileIndex: number;
  stream: number;
  data: Buffer;
  /**
   * The reader is done with `data` (no view of it is used after): its memory may be reused for
   * what the SD sends next (bsock.ts SlabReceiver). Optional to call; at most once.
   */
  release?: () => void;
}

function sdError(message: string): AgentfdError {
  return new AgentfdError('E_BACULA_SD', message);
}

/** What a frame of `payload` bytes costs on the wire: its 4-byte length word and the payload. */
const framed = (payload: number): number => 4 + payload;

export class StorageDaemon {
  /** The job's bandwidth limit on this connection, both ways (bacula-fd sets it on its SD socket); none until set. */
  throttle = new BandwidthThrottle(0);
  /** serve's debug output (setdebug): the session's steps, and every stream header at DEBUG.streams. */
  debug: DebugWrite | null = null;

  private constructor(readonly bsock: Bsock, readonly where: string) {}

  /** Connect to the SD at host:port for job `job`, authenticating with the session key `key`. */
  static async connect(host: string, port: number, job: string, key: string, clientName: string, tls: TlsSettings | null = null): Promise<StorageDaemon> {
    const where = `${host}:${port}`;
    // Without TLS the restore data is read into slabs (bsock.ts SlabReceiver says why).
    const slabs = (tls?.need ?? TLS_NEED.none) === TLS_NEED.none ? new SlabReceiver() : undefined;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port, ...(slabs ? { onread: slabs.onread } : {}) }, () => resolve(s));
      s.once('error', (error) => reject(sdError(`cannot connect to the Storage Daemon at ${where} (${error.message}); check its address and port in the Director's Storage resource and that it is running`)));
    });
    socket.setNoDelay(true);
    const bsock = new Bsock(socket, `Storage Daemon ${where}`, slabs);
    try {
      await bsock.send(`Hello Bacula SD: Start Job ${job} ${FD_PROTOCOL_VERSION}\n`);
      // The SD challenges first, then we do (as the real FD).
      const challenge = /^auth cram-md5 (<[^>]*>) ssl=(\d)/.exec(await bsock.receiveText());
      if (!challenge) throw sdError(`the Storage Daemon at ${where} did not start CRAM-MD5 authentication`);
      const localNeed = tls?.need ?? TLS_NEED.none;
      const useTls = negotiateTls(localNeed, Number(challenge[2]), `the Storage Daemon at ${where}`);
      await bsock.send(`${cramResponse(challenge[1]!, key)}\0`);
      if (!(await bsock.receiveText()).startsWith('1000 OK auth')) throw sdError(`the Storage Daemon at ${where} refused the job's session key`);
      const ours = makeChallenge(clientName);
      await bsock.send(`auth cram-md5 ${ours} ssl=${localNeed}\n`);
      if (!cramAccepts(ours, key, await bsock.receiveText())) {
        await bsock.send('1999 Authorization failed.\n');
        throw sdError(`the Storage Daemon at ${where} answered our challenge wrongly: it does not know this job's session key`);
      }
      await bsock.send('1000 OK auth\n');
      // Our "1000 OK auth" was the last plain message; the SD now waits for our TLS hello.
      if (useTls) await bsock.startTls((plain) => tlsClient(plain, tls!, host, `the Storage Daemon at ${where}`));
      const hello = await bsock.receiveText();
      if (!hello.startsWith('3000 OK Hello')) throw sdError(`the Storage Daemon at ${where} said "${hello.trim()}" after authentication`);
      return new StorageDaemon(bsock, where);
    } catch (error) {
      bsock.destroy();
      throw error;
    }
  }

  /** The next text reply; it must start with `expected`. */
  async expect(expected: string, what: string): Promise<string> {
    const reply = await this.bsock.receiveText();
    if (!reply.startsWith(expected)) throw sdError(`the Storage Daemon at ${this.where} refused ${what}: "${reply.trim()}"`);
    return reply;
  }

  // ---- append (backup) --------------------------------------------------------------------------

  /** append open session + append data: returns the ticket once the SD is ready for data. */
  async openAppend(): Promise<number> {
    await this.bsock.send('append open session\n');
    const ticket = /ticket = (\d+)/.exec(await this.expect('3000 OK open ticket', 'to open an append session'))?.[1];
    if (ticket === undefined) throw sdError(`the Storage Daemon at ${this.where} gave no ticket`);
    await this.bsock.send(`append data ${ticket}\n`);
    await this.expect('3000 OK data', 'the data of the append session (is a volume available?)');
    this.debug?.(DEBUG.session, 'storage', `append session open, ticket ${ticket}`);
    return Number(ticket);
  }

  /** One stream of a file: the header, the frames, then EOD. */
  async sendStream(fileIndex: number, stream: number, expectedLength: bigint | number, frames: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<number> {
    const header = `${fileIndex} ${stream} ${expectedLength}`;
    this.debug?.(DEBUG.streams, 'storage', `>stored: ${header}`);
    await this.bsock.send(header);
    await this.throttle.written(framed(header.length));
    let bytes = 0;
    for await (const frame of frames) {
      await this.bsock.send(frame);
      bytes += frame.length;
      await this.throttle.written(framed(frame.length));
    }
    await this.bsock.sendSignal(BNET.EOD);
    await this.throttle.written(framed(0));
    return bytes;
  }

  /** End the data, then end and close the session; the SD's job status comes back. */
  async closeAppend(ticket: number): Promise<void> {
    await this.bsock.sendSignal(BNET.EOD);
    await this.expect('3000 OK append data', 'the end of the data');
    await this.bsock.send(`append end session ${ticket}\n`);
    await this.expect('3000 OK end', 'the end of the session');
    await this.bsock.send(`append close session ${ticket}\n`);
    await this.expect('3000 OK close', 'to close the session');
    await this.drainToEod();
    this.debug?.(DEBUG.session, 'storage', `append session ${ticket} closed`);
  }

  // ---- read (restore) ---------------------------------------------------------------------------

  async openRead(sdId: string, sdTime: string): Promise<number> {
    await this.bsock.send(`read open session = DummyVolume ${sdId} ${sdTime} 0 0 0 0\n`);
    const ticket = /ticket = (\d+)/.exec(await this.expect('3000 OK open ticket', 'to open a read session'))?.[1];
    if (ticket === undefined) throw sdError(`the Storage Daemon at ${this.where} gave no ticket`);
    await this.bsock.send(`read data ${ticket}\n`);
    await this.expect('3000 OK data', 'the data of the read session');
    this.debug?.(DEBUG.session, 'storage', `read session open, ticket ${ticket}`);
    return Number(ticket);
  }

  /** The records of the read session, until the SD's EOD. */
  async *records(): AsyncGenerator<SdRecord> {
    for (;;) {
      const header = await this.bsock.receive();
      if (header.kind === 'signal') {
        if (header.signal === BNET.EOD) return;
        throw sdError(`the Storage Daemon at ${this.where} sent signal ${header.signal} in the middle of the restore data`);
      }
      const fields = /^rechdr (\d+) (\d+) (-?\d+) (-?\d+) (\d+)/.exec(header.data.toString('latin1'));
      if (!fields) throw sdError(`the Storage Daemon at ${this.where} sent a record header that cannot be read: "${header.data.toString('latin1', 0, 80)}"`);
      this.bsock.release(header.data); // read: only the numbers above are kept
      const data: BsockMessage = await this.bsock.receive();
      if (data.kind !== 'data') throw sdError(`the Storage Daemon at ${this.where} sent a signal where record data was due`);
      yield { fileIndex: Number(fields[3]), stream: Number(fields[4]), data: data.data, release: this.releaser(data.data) };
      // Once the record is used: a limit slows what comes next, as bacula-fd's reads are slowed.
      await this.throttle.written(framed(header.data.length) + framed(data.data.length));
    }
  }

  /** A record's release (SdRecord): once only, whoever calls it. */
  private releaser(data: Buffer): () => void {
    let released = false;
    return () => {
      if (!released) this.bsock.release(data);
      released = true;
    };
  }

  async closeRead(ticket: number): Promise<void> {
    await this.bsock.send(`read close session ${ticket}\n`);
    await this.expect('3000 OK close', 'to close the read session');
    await this.drainToEod();
  }

  private async drainToEod(): Promise<void> {
    for (;;) {
      const message = await this.bsock.receive();
      if (message.kind === 'signal' && message.signal === BNET.EOD) return;
    }
  }

  /**
   * Drop the connection at once, as a bacula-fd that is killed drops it: the SD ends the session
   * in error (it never takes a cut-off job's data for a whole one). Sends under way fail.
   */
  abort(): void {
    this.throttle.abort();
    this.bsock.destroy();
  }

  /** Say goodbye and close. */
  async close(): Promise<void> {
    if (!this.bsock.closed) {
      await this.bsock.sendSignal(BNET.TERMINATE).catch(() => undefined);
      this.bsock.close();
    }
  }
}
