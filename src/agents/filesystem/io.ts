/**
 * The file system calls of the backup walk, in batches: lstat a list of entries, read a list of
 * small files whole. Two ways to run them, with the same results:
 *
 * - threadIo: on the agent's own I/O thread (fs-worker.ts), with synchronous calls: one message
 *   per batch each way. The default: with many small files it costs the main thread (which the
 *   engine needs for hashing, records and the catalog) a small fraction of the other way.
 * - processIo: in this thread, with Node's asynchronous calls on the libuv thread pool, all the
 *   batch at once. No extra thread; each call costs a hand-off to the pool and back.
 *
 * Neither holds a file descriptor once a batch's promise has settled.
 */
import { lstat, readlink, type BigIntStats } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { compiledScript } from '../../compiled-script.js';
import { AgentfdError } from '../../errors.js';
import { changedError, preloadFile, type ExpectedFile, type Preloaded } from './file-stream.js';
import { STAT_FIELDS, type ReadReply, type ReadRequest, type StatReply, type StatRequest, type WireError } from './io-protocol.js';
import { readWinAttributes } from './win-attributes.js';
import { fsPath } from '../../platform/byte-names.js';

/** What the walk uses of an lstat. */
export interface EntryStat {
  /** File type and permission bits (st_mode). */
  mode: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  dev: bigint;
  ino: bigint;
}

/**
 * One entry's lstat (and, for a symlink, its raw target; for a directory or regular file, its
 * restorable Windows attributes, 0 off Windows), or the error that stopped it. Attributes that
 * could not be read leave the entry ok, with winAttributesProblem saying why.
 */
export type StatResult =
  | { ok: true; st: EntryStat; target: Buffer | null; winAttributes: number; winAttributesProblem: string | null }
  | { ok: false; error: unknown };

export interface WalkIo {
  stat(paths: string[]): Promise<StatResult[]>;
  /** Each file read whole (preloadFile); never rejects for a file's own failure. */
  read(files: ExpectedFile[]): Promise<Preloaded[]>;
  /** Call once no batch is pending. */
  close(): Promise<void>;
}

// File types (st_mode & S_IFMT). The POSIX values, which libuv reports on every platform.
const S_IFMT = 0o170000;
export const fileType = {
  isDirectory: (st: EntryStat) => (st.mode & S_IFMT) === 0o040000,
  isFile: (st: EntryStat) => (st.mode & S_IFMT) === 0o100000,
  isSymbolicLink: (st: EntryStat) => (st.mode & S_IFMT) === 0o120000,
  name(st: EntryStat): string {
    switch (st.mode & S_IFMT) {
      case 0o140000:
        return 'a socket';
      case 0o010000:
        return 'a FIFO';
      case 0o020000:
        return 'a character device';
      case 0o060000:
        return 'a block device';
      default:
        return 'of an unknown type';
    }
  },
};

export function entryStat(st: BigIntStats): EntryStat {
  return { mode: Number(st.mode), size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, dev: st.dev, ino: st.ino };
}

function lstatBig(osPath: string): Promise<BigIntStats> {
  return new Promise((resolve, reject) => lstat(fsPath(osPath), { bigint: true }, (error, st) => (error ? reject(error) : resolve(st))));
}

function readlinkRaw(osPath: string): Promise<Buffer> {
  return new Promise((resolve, reject) => readlink(fsPath(osPath), { encoding: 'buffer' }, (error, target) => (error ? reject(error) : resolve(target))));
}

/** lstat one entry, and read its target if it is a symlink, its Windows attributes if not. */
export async function statOne(osPath: string): Promise<StatResult> {
  try {
    const st = entryStat(await lstatBig(osPath));
    const target = fileType.isSymbolicLink(st) ? await readlinkRaw(osPath) : null;
    let winAttributes = 0;
    let winAttributesProblem: string | null = null;
    if (fileType.isFile(st) || fileType.isDirectory(st)) {
      // Synchronous, in this thread: one metadata call, only on Windows (0 at once elsewhere).
      try {
        winAttributes = readWinAttributes(osPath);
      } catch (error) {
        winAttributesProblem = error instanceof Error ? error.message : String(error);
      }
    }
    return { ok: true, st, target, winAttributes, winAttributesProblem };
  } catch (error) {
    return { ok: false, error };
  }
}

export function processIo(): WalkIo {
  return {
    stat: (paths) => Promise.all(paths.map(statOne)),
    read: (files) => Promise.all(files.map(preloadFile)),
    close: async () => {},
  };
}

/** An error from the I/O thread, as Node would have thrown it here (code and message). */
function fsError(error: WireError): Error {
  return Object.assign(new Error(error.message), error.code === null ? {} : { code: error.code });
}

type Reply = StatReply | ReadReply;

class ThreadIo implements WalkIo {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { resolve: (reply: Reply) => void; reject: (error: unknown) => void }>();
  private nextId = 1;
  private failure: Error | null = null;
  private closing = false;

  async stat(paths: string[]): Promise<StatResult[]> {
    if (paths.length === 0) return [];
    const reply = (await this.request({ id: this.nextId++, op: 'stat', paths })) as StatReply;
    return paths.map((_p, i): StatResult => {
      const error = reply.errors[i];
      if (error) return { ok: false, error: fsError(error) };
      const f = reply.fields;
      const at = i * STAT_FIELDS;
      const st = { mode: Number(f[at]), size: Number(f[at + 1]), mtimeNs: f[at + 2]!, ctimeNs: f[at + 3]!, dev: f[at + 4]!, ino: f[at + 5]! };
      const target = reply.targets[i];
      return {
        ok: true,
        st,
        target: target ? Buffer.from(target.buffer, target.byteOffset, target.byteLength) : null,
        winAttributes: reply.winAttributes[i]!,
        winAttributesProblem: reply.winAttributesProblems[i] ?? null,
      };
    });
  }

  async read(files: ExpectedFile[]): Promise<Preloaded[]> {
    if (files.length === 0) return [];
    const request: ReadRequest = {
      id: this.nextId++,
      op: 'read',
      files: files.map(({ osPath, size, dev, ino }) => ({ osPath, size, dev, ino })),
    };
    const reply = (await this.request(request)) as ReadReply;
    return files.map((file, i): Preloaded => {
      const r = reply.results[i]!;
      let early: unknown = null;
      if (r.early?.kind === 'open') {
        early = changedError(file, `it can no longer be opened (${r.early.code ?? r.early.message})`, fsError(r.early));
      } else if (r.early?.kind === 'replaced') {
        early = changedError(file, 'it was replaced by another file after it was listed');
      } else if (r.early) {
        early = fsError(r.early);
      }
      const data = r.buffer ? Buffer.from(r.buffer.buffer, r.buffer.byteOffset, r.length) : Buffer.alloc(0);
      return { early, data, late: r.late ? fsError(r.late) : null };
    });
  }

  async close(): Promise<void> {
    // Never stop the thread in the middle of a batch: a file it has open would stay open.
    await Promise.allSettled(this.inFlight);
    this.closing = true;
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }

  private readonly inFlight = new Set<Promise<Reply>>();

  private request(message: StatRequest | ReadRequest): Promise<Reply> {
    if (this.closing) return Promise.reject(new AgentfdError('E_INTERNAL', "the filesystem agent's I/O thread was used after close"));
    if (this.failure) return Promise.reject(this.failure);
    const worker = (this.worker ??= this.start());
    const reply = new Promise<Reply>((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject });
      // Referenced only while it owes a reply: an idle I/O thread never keeps the process alive.
      if (this.pending.size === 1) worker.ref();
      worker.postMessage(message);
    });
    this.inFlight.add(reply);
    const forget = () => void this.inFlight.delete(reply);
    reply.then(forget, forget);
    return reply;
  }

  private start(): Worker {
    const worker = new Worker(compiledScript(import.meta.url, 'fs-worker.js'));
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      waiter.resolve(reply);
    });
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`it exited (code ${code})`));
    });
    return worker;
  }

  private fail(cause: Error): void {
    this.failure ??= new AgentfdError(
      'E_INTERNAL',
      `the filesystem agent's I/O thread failed (${cause.message}); the backup cannot go on`,
      { cause },
    );
    for (const waiter of this.pending.values()) waiter.reject(this.failure);
    this.pending.clear();
  }
}

export function threadIo(): WalkIo {
  return new ThreadIo();
}
