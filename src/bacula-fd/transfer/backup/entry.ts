/**
 * The saver of one entry that is neither a directory nor a symlink (find_one.c, then save_file):
 * a further hard link of a file already sent, or the file itself: a regular file or raw device
 * with its data, a fifo read with readfifo, or a fifo or device node saved as what it is.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, type FileHandle } from 'node:fs/promises';
import { messageOf } from '../../../errors.js';
import { FT } from '../../attributes/lstat.js';
import { openFifo } from '../../attributes/special-files.js';
import type { IncludeOptions } from '../../fileset/fileset.js';
import { FRAME, dataFrames, openForRead, putBackAccessTime, startDigest } from './file-data.js';
import { BLOCKS_PER_READ, type Block } from './block-reader.js';
import { compressesOnWorkers } from './frame-codec.js';
import type { BackupJob, SavedFile, SavedLink } from './job.js';
import { dataStreamFor, sendAttributes, sendAttributesOnly, sendXacl } from './records.js';
import { fsPath } from '../../../platform/byte-names.js';

/**
 * Anything but a directory or symlink: a hard link to something sent, or the thing itself. `top`:
 * named by a File line, where a block device is read raw and a fifo is read with readfifo.
 */
export async function sendEntry(job: BackupJob, p: string, st: BigIntStats, options: IncludeOptions, top: boolean, content?: Block): Promise<void> {
  const key = options.hardlinks && st.nlink > 1n ? `${st.dev}:${st.ino}` : null;
  const first = key === null ? undefined : job.links.get(key);
  if (first) {
    // The same name twice (a File line repeated) is skipped, as bacula-fd does.
    if (first.name !== p) await sendLinkSaved(job, p, st, first, options);
    return;
  }
  let sent: SavedFile | null;
  if (st.isFile()) {
    sent = await sendFile(job, p, st, options, st.size === 0n && (Number(st.mode) & 0o444) === 0o444 ? FT.REGE : FT.REG, content);
    if (options.keepAtime) await putBackAccessTime(p, st);
  } else if (top && st.isBlockDevice()) sent = await sendFile(job, p, st, options, FT.RAW);
  else if (top && st.isFIFO() && options.readFifo) sent = await sendFifo(job, p, st, options);
  else sent = { fileIndex: await sendAttributesOnly(job, FT.SPEC, p, p, st, '', options), digest: null }; // FT_SPEC: rdev in the LStat
  if (key !== null && sent) job.links.set(key, { name: p, ...sent });
}

/**
 * The data frames of one file, counting what was read and what is sent into the totals as it
 * goes (status client shows both while a file is sent).
 */
async function* fileFrames(job: BackupJob, source: FileHandle | Block, st: BigIntStats, options: IncludeOptions, hash: ReturnType<typeof startDigest>, checkEveryBlock: boolean) {
  const read = (n: number) => (job.totals.readBytes += n);
  // A file of one block is compressed inline: a worker's round trip would cost more than it saves.
  // gzip_like_bacula_fd: GZIP in turn on the job's one stream, never on the workers.
  const inTurn = options.gzip !== null ? job.gzipInTurn() : null;
  const pool = !inTurn && compressesOnWorkers(options) && !checkEveryBlock && st.size > BigInt(FRAME) ? job.framePool() : null;
  for await (const frame of dataFrames(source, { sparse: options.sparse, gzip: options.gzip, lzo: options.lzo, size: st.size, checkEveryBlock, hash: hash?.hash ?? null, read, pool, inTurn })) {
    job.totals.jobBytes += frame.length;
    yield frame;
  }
}

/**
 * A regular file (FT_REG, or FT_REGE when empty and world-readable, as find_one.c) or a block
 * device named by a File line (FT_RAW, read whole: stat gives it size 0): attributes, data,
 * digest. What a later hard link to it needs, or null when it was not sent. `content`: a small
 * file's whole data, read ahead (look-ahead.ts).
 */
async function sendFile(job: BackupJob, p: string, st: BigIntStats, options: IncludeOptions, type: number, content?: Block): Promise<SavedFile | null> {
  // bacula-fd reads only files with data (and raw devices); they are opened before anything is
  // sent, so a file that cannot be read is reported, not half-sent.
  let handle: FileHandle | null = null;
  if (!content && (type === FT.RAW || st.size > 0n)) {
    try {
      handle = await openForRead(p, options.noAtime);
    } catch (error) {
      job.problem(`Cannot open "${p}": ${messageOf(error)}`);
      return null;
    }
  }
  try {
    const index = job.nextIndex();
    await sendAttributes(job, index, type, p, st, '', options);
    job.totals.files++; // counted from its start, as bacula-fd's JobFiles (status client shows it)
    const threaded = !content && type === FT.REG && digestsOnThread(job, st);
    const digest = startDigest(options.digest, threaded ? job.digestThread() : null);
    const source = content ?? handle;
    if (source) await job.run.sd.sendStream(index, dataStreamFor(options), st.size, fileFrames(job, source, st, options, digest, type === FT.RAW));
    await sendXacl(job, index, p, type, options);
    if (options.checkChanges && type === FT.REG) await reportChange(job, p, st);
    let saved: SavedFile['digest'] = null;
    if (digest) {
      saved = { stream: digest.stream, value: await digest.hash.digest() };
      await job.run.sd.sendStream(index, saved.stream, 0, [saved.value]);
    }
    return { fileIndex: index, digest: saved };
  } finally {
    await handle?.close();
  }
}

/**
 * The thread's start-up (a worker: some 30-50 ms) costs what MD5 does on about 32 MiB: a file of
 * more than one read is digested on the job's digest thread, beside the sending, once the thread
 * is there; a file holding more data than that (its allocated blocks: a sparse file's holes hold
 * none) starts it.
 */
const START_DIGEST_THREAD_AT = 32n * 1024n * 1024n;

function digestsOnThread(job: BackupJob, st: BigIntStats): boolean {
  return st.size > BigInt(BLOCKS_PER_READ * FRAME) && (job.hasDigestThread() || st.blocks * 512n > START_DIGEST_THREAD_AT);
}

/**
 * checkfilechanges (findlib/find_one.c has_file_changed): the file is stat'ed again once its data
 * is sent; a changed mtime, ctime or size (in that order, whole seconds as Bacula keeps them) is
 * an error of the job that leaves its status OK: the Director reports "OK -- with warnings".
 */
async function reportChange(job: BackupJob, p: string, before: BigIntStats): Promise<void> {
  let now: BigIntStats;
  try {
    now = await lstat(fsPath(p), { bigint: true });
  } catch (error) {
    job.run.log('warning', `Cannot stat file ${p}: ERR=${messageOf(error)}`);
    return;
  }
  const seconds = (ms: bigint) => ms / 1000n;
  const changed =
    seconds(now.mtimeMs) !== seconds(before.mtimeMs) ? 'mtime'
    : seconds(now.ctimeMs) !== seconds(before.ctimeMs) ? 'ctime'
    : now.size !== before.size || now.blocks !== before.blocks || now.blksize !== before.blksize ? 'size'
    : null;
  if (changed === null) return;
  const message = `${p} ${changed} changed during backup.`;
  job.totals.warnings.push(message);
  job.run.log('error', message);
}

/**
 * A fifo named by a File line with readfifo = yes (FT_FIFO): what a writer sends through it,
 * without digest (bacula-fd makes none for fifos). It is opened only when its data is read, so
 * an estimate, which reads none, never waits for a writer.
 */
async function sendFifo(job: BackupJob, p: string, st: BigIntStats, options: IncludeOptions): Promise<SavedFile> {
  const index = job.nextIndex();
  await sendAttributes(job, index, FT.FIFO, p, st, '', options);
  const data = async function* () {
    let handle: FileHandle;
    try {
      handle = await openFifo(p, 'read', job.run.fifoOpenTimeoutMs);
    } catch (error) {
      job.problem(`Cannot open "${p}": ${messageOf(error)}`);
      return;
    }
    try {
      yield* fileFrames(job, handle, st, options, null, true);
    } finally {
      await handle.close();
    }
  };
  job.totals.files++;
  await job.run.sd.sendStream(index, dataStreamFor(options), st.size, data());
  await sendXacl(job, index, p, FT.FIFO, options);
  return { fileIndex: index, digest: null };
}

/**
 * A further name of a file already sent (FT_LNKSAVED): its own attributes, the first name as the
 * link and that file's FileIndex as LinkFI, no data, and the first file's digest again (as
 * crypto.c sends it for a hard link).
 */
async function sendLinkSaved(job: BackupJob, p: string, st: BigIntStats, first: SavedLink, options: IncludeOptions): Promise<void> {
  const index = job.nextIndex();
  await sendAttributes(job, index, FT.LNKSAVED, p, st, first.name, options, first.fileIndex);
  await sendXacl(job, index, p, FT.LNKSAVED, options);
  if (first.digest) await job.run.sd.sendStream(index, first.digest.stream, 0, [first.digest.value]);
  job.totals.files++;
}
