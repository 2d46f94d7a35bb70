/**
 * The backup job: agent -> bridge -> pipeline -> volumes + catalog, top to bottom.
 *
 * A job is committed only when every file and stream arrived whole, its records are on disk
 * (fdatasync) and the catalog says so; only then is the agent told it may discard what it gave
 * (Exchange truncates its logs). Anything less ends the session as failed in the volume and the
 * catalog, and a failed session's files are never restored as if they were good.
 */
import { hash, randomUUID } from 'node:crypto';
import type { Agent, AgentFile, AgentStream, BackupRun } from '../agents/agent.js';
import type { Level } from '../agents/types.js';
import type { AgentRegistry } from '../agents/registry.js';
import { Catalog, type NewFile } from '../catalog/catalog.js';
import { CatalogFileWriter } from '../catalog/file-writer.js';
import type { AgentfdConfig } from '../config/load.js';
import { AgentfdError, messageOf } from '../errors.js';
import { formatCompression, packChunk, parseCompression, type Compression } from '../pipeline/codecs.js';
import { CompressPool } from '../pipeline/compress-pool.js';
import { StreamHasher } from '../pipeline/stream-hasher.js';
import { encodeStream, type StreamSummary } from '../pipeline/stream-encoder.js';
import { SESSION_FORMAT, type AccurateRecord, type FileRecord, type SessionStart, type WholeStream } from '../pipeline/records.js';
import { SessionWriter } from '../sink/session-writer.js';
import { HOST_VERSION } from '../version.js';
import { storageRepository, VolumeWriter } from '../volume/index.js';
import { compareWithReference, existingFiles, streamKey } from './accurate.js';
import { agentOptions, configuredJob, resolveAgent } from './agents.js';
import { restoreChain } from './chain.js';
import { jobCrypto } from './encryption.js';
import { buildFileset } from '../agents/fileset.js';
import { lockStorage } from './lock.js';

export interface BackupProgress {
  files: number;
  bytes: number;
  /** Bytes the agent expects to deliver in all (sum of size hints so far), or null. */
  path: string;
}

export interface BackupOptions {
  config: AgentfdConfig;
  registry: AgentRegistry;
  jobName: string;
  level?: Level;
  onProgress?: (progress: BackupProgress) => void;
  onLog?: (level: string, message: string) => void;
  /** Set to cancel the job (the agent sees it through is_cancelled). */
  signal?: AbortSignal;
  /** Use this agent instead of the job's (library use: benchmarks, embedding). */
  agent?: Agent;
}

export interface BackupReport {
  jobId: number;
  uuid: string;
  status: 'committed' | 'failed' | 'aborted';
  job: string;
  agent: string;
  requestedLevel: Level;
  level: Level;
  files: number;
  failedFiles: number;
  /** Accurate mode: files found deleted, and renamed, since the reference job. */
  deleted: number;
  renamed: { from: string; to: string }[];
  referenceJob: number | null;
  /** Why the level differs from the one asked for, if it does. */
  levelNote: string | null;
  bytes: number;
  storedBytes: number;
  compression: string;
  encrypted: boolean;
  signed: boolean;
  volumes: string[];
  errors: string[];
  warnings: string[];
  seconds: number;
}

const CATALOG_BATCH = 1000;
/**
 * A file whose streams declare at most this many bytes in all is read into memory and saved in one
 * FILE_WHOLE record: one seal and one record instead of four per file, which is what a backup of
 * many small files spends its time on.
 */
const WHOLE_FILE_LIMIT = 64 * 1024;

/** A file read whole into memory, or, when it turned out larger than declared, how to stream it. */
type Held = { whole: true; data: Uint8Array[] } | { whole: false; streams: AgentStream[] };

/**
 * Read the streams of a small file into memory. If the agent delivers more than WHOLE_FILE_LIMIT
 * (a file that grew since it was listed), what was read is not lost: the streams are handed back
 * as replays of the bytes already read followed by the rest, for the streaming path.
 */
async function holdSmallFile(file: AgentFile): Promise<Held> {
  const data: Uint8Array[] = [];
  let total = 0;
  for (const [i, stream] of file.streams.entries()) {
    const pieces: Uint8Array[] = [];
    const iterator = stream.data()[Symbol.asyncIterator]();
    for (let step = await iterator.next(); !step.done; step = await iterator.next()) {
      pieces.push(step.value);
      total += step.value.length;
      if (total > WHOLE_FILE_LIMIT) {
        const replay = (held: Uint8Array[], rest: AsyncIterator<Uint8Array> | null): AgentStream['data'] => async function* () {
          yield* held;
          if (rest) for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
        };
        const streams = file.streams.map((s, j): AgentStream => {
          if (j < i) return { ...s, data: replay([data[j]!], null) };
          if (j === i) return { ...s, data: replay(pieces, iterator) };
          return s;
        });
        return { whole: false, streams };
      }
    }
    data.push(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces));
  }
  return { whole: true, data };
}

/** True when a file's streams all declare their sizes and fit a FILE_WHOLE record together. */
function isSmall(file: AgentFile): boolean {
  let total = 0;
  for (const s of file.streams) {
    if (s.sizeHint === null) return false;
    total += s.sizeHint;
  }
  return total <= WHOLE_FILE_LIMIT;
}

/** A job is aborted (not merely failed) when its agent crashed, hung or was cancelled. */
function isAbort(error: unknown): boolean {
  for (let e = error as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 'E_AGENT_CRASHED' || e.code === 'E_AGENT_TIMEOUT' || e.code === 'E_CANCELLED') return true;
  }
  return false;
}

export function referenceJob(catalog: Catalog, jobName: string, level: Level) {
  if (level === 'full') return null;
  const committed = catalog.jobs().filter((j) => j.name === jobName && j.status === 'committed');
  const candidates = level === 'differential' ? committed.filter((j) => j.level === 'full') : committed;
  return candidates.at(-1) ?? null;
}

export async function runBackup(options: BackupOptions): Promise<BackupReport> {
  const { config, jobName } = options;
  const job = configuredJob(config, jobName);
  const compression: Compression = parseCompression(job.compression);
  const agent: Agent = options.agent ?? resolveAgent(job.agent, options.registry, config);
  const crypto = jobCrypto(job);
  const started = Date.now();
  const startedNs = BigInt(started) * 1_000_000n;
  const requestedLevel = options.level ?? 'full';
  const errors: string[] = [];
  const warnings: string[] = [];
  const log = (level: string, message: string) => {
    if (level === 'warning') warnings.push(message);
    if (level === 'error') errors.push(message);
    options.onLog?.(level, message);
  };

  const lock = lockStorage(config.storageDir);
  const catalog = Catalog.open(config.dataDir);
  catalog.keepSpaceReserve();
  let pool: CompressPool | null = null;
  let rows: CatalogFileWriter | null = null;
  let hasher: StreamHasher | null = null;
  let volumes: VolumeWriter | null = null;
  try {
    const stale = catalog.abortStaleJobs();
    if (stale > 0) log('warning', `${stale} job(s) left running by an agentfd that stopped were marked aborted`);
    let level: Level = requestedLevel;
    let levelNote: string | null = null;
    if (!agent.capabilities.includes(level)) {
      // The job's level policy decides: upgrade to a full backup (the default), or refuse.
      if (job.level_policy === 'refuse') {
        throw new AgentfdError(
          'E_LEVEL_UNSUPPORTED',
          `agent "${agent.name}" cannot make ${level} backups (it declares ${agent.capabilities.filter((c) => ['full', 'incremental', 'differential'].includes(c)).join(', ')}), and job "${jobName}" has level_policy = "refuse". Run a full backup, or set level_policy = "upgrade".`,
        );
      }
      levelNote = `agent "${agent.name}" cannot make ${level} backups; a full backup was made instead (level_policy = "upgrade")`;
      level = 'full';
    }
    const reference = referenceJob(catalog, jobName, level);
    if (level !== 'full' && !reference) {
      levelNote = `no committed ${level === 'differential' ? 'full ' : ''}job "${jobName}" to base ${level === 'incremental' ? 'an' : 'a'} ${level} on; a full backup was made instead`;
      level = 'full';
    }
    if (levelNote) log('warning', levelNote);

    const repository = storageRepository(config.storageDir);
    catalog.claimStorage(config.storageDir, repository);
    volumes = await VolumeWriter.open({
      dir: config.storageDir, set: 'agentfd', maxVolumeBytes: config.volumeSize, agentfdVersion: HOST_VERSION, repository,
      protectedSessions: (volume) => catalog.jobsInVolume(volume),
    });
    for (const warning of volumes.warnings) log('warning', warning);
    const uuid = randomUUID();
    const jobId = catalog.createJob({
      uuid,
      name: jobName,
      agent: agent.name,
      agentVersion: agent.version,
      agentAbi: agent.abi,
      level,
      requestedLevel,
      referenceJob: reference?.id ?? null,
      startedNs,
      compression: formatCompression(compression),
      cipher: crypto.key ? 'aes-256-gcm' : 'none',
      signer: crypto.signerInfo?.fingerprint ?? null,
    });
    const start: SessionStart = {
      format: SESSION_FORMAT,
      jobId,
      uuid,
      startedNs: startedNs.toString(),
      level,
      cipher: crypto.key ? 'aes-256-gcm' : 'none',
      compression: formatCompression(compression),
      stanzas: crypto.stanzas,
      signer: crypto.signerInfo,
      agentfdVersion: HOST_VERSION,
    };
    let run: BackupRun | null = null;
    let session: SessionWriter | null = null;
    try {
      const writer = new SessionWriter(volumes, start, crypto.key);
      session = writer;
      if (compression.codec !== 'none') pool = new CompressPool();
      // The writer and hashing threads start when first needed: a job of a few large streams never
      // needs the catalog thread, one of small files never needs the hasher (each costs memory).

      const options_ = agentOptions(config, job);
      const fileset = buildFileset(job.include, job.exclude);
      let files = 0;
      let failedFiles = 0;
      let bytes = 0;
      let batch: NewFile[] = [];
      /** Every path this job reported, with the content key of what it sent (accurate mode). */
      const current = level !== 'full' && agent.capabilities.includes('accurate') ? new Map<string, string | null>() : null;
      let fatal: unknown = null;
      let delivered: Level = level;
      run = await agent.backup({
        jobName,
        jobId,
        options: options_,
        filesetCheck: fileset,
        fileset: { include: job.include ?? [], exclude: job.exclude ?? [] },
        log,
        isCancelled: () => options.signal?.aborted ?? false,
        level,
        sinceNs: reference ? BigInt(reference.started_ns) : 0n,
        jobStartNs: startedNs,
        referenceState: reference?.state ? new Uint8Array(reference.state) : null,
      });
      delivered = run.deliveredLevel;
      if (delivered !== level) log('warning', `agent "${agent.name}" delivered a ${delivered} backup where ${level} was asked`);
      await writer.begin({
        jobName,
        agent: { name: agent.name, version: agent.version, abi: agent.abi, kind: agent.kind, capabilities: agent.capabilities },
        options: options_,
        requestedLevel,
        deliveredLevel: delivered,
        referenceJob: reference ? { id: reference.id, uuid: reference.uuid } : null,
        fileset: { include: job.include ?? [], exclude: job.exclude ?? [] },
      });

      /** The catalog row of a file this job reported. */
      const catalogRow = (file: AgentFile, fileIndex: number, status: 'ok' | 'failed', error: string | null, streams: NewFile['streams']): NewFile => ({
        fileIndex, path: file.path, kind: file.kind, mode: file.mode, mtimeNs: file.mtimeNs, size: file.size, seen: file.seen,
        linkTarget: file.linkTarget, agent: agent.name, agentVersion: agent.version, agentAbi: agent.abi, status, error, streams,
        winAttributes: file.winAttributes,
      });

      /** Save one file; `whole` when it went into one FILE_WHOLE record (which ends the file too). */
      const saveFile = async (file: AgentFile, fileIndex: number): Promise<{ whole: boolean; file: NewFile }> => {
        const record: FileRecord = {
          fileIndex,
          path: file.path,
          kind: file.kind,
          mode: file.mode,
          mtimeNs: file.mtimeNs.toString(),
          size: file.size,
          linkTarget: file.linkTarget,
          seen: file.seen,
          winAttributes: file.winAttributes,
          agent: { name: agent.name, version: agent.version, abi: agent.abi },
          streams: file.streams.map(({ index, type, name, sizeHint, rawRestorable }) => ({ index, type, name, sizeHint, rawRestorable })),
        };
        const saved = (streams: NewFile['streams']): NewFile => catalogRow(file, fileIndex, 'ok', null, streams);
        if (file.refused) {
          await writer.file(record); // the failed FILE_END the caller writes names its file
          throw new AgentfdError('E_FILE_REFUSED', file.refused);
        }
        let toStream = file.streams;
        if (isSmall(file)) {
          let held: Held;
          try {
            held = await holdSmallFile(file);
          } catch (e) {
            await writer.file(record); // so that the failed FILE_END the caller writes has its file
            throw new AgentfdError('E_FILE_FAILED', `${file.path}: reading it broke off: ${messageOf(e)}`, { cause: e });
          }
          if (held.whole) {
            const streams: WholeStream[] = [];
            const stored: Uint8Array[] = [];
            held.data.forEach((plain, index) => {
              const packed = packChunk(plain, compression);
              stored.push(packed.stored);
              streams.push({ index, codec: packed.codecId, plainLength: plain.length, storedLength: packed.stored.length, sha256: hash('sha256', plain, 'hex') });
              bytes += plain.length;
            });
            await writer.wholeFile(record, streams, stored);
            return {
              whole: true,
              file: saved(file.streams.map((s, i) => ({ index: s.index, name: s.name, type: s.type, rawRestorable: s.rawRestorable, bytes: streams[i]!.plainLength, sha256: streams[i]!.sha256 }))),
            };
          }
          toStream = held.streams;
        }
        await writer.file(record);
        const streams: NewFile['streams'] = [];
        for (const stream of toStream) {
          try {
            hasher ??= new StreamHasher();
            const encoder = encodeStream(stream.data(), { compression, pool, hasher });
            let step = await encoder.next();
            while (!step.done) {
              await writer.chunk(fileIndex, stream.index, step.value);
              bytes += step.value.plainLength;
              options.onProgress?.({ files, bytes, path: file.path });
              step = await encoder.next();
            }
            const summary: StreamSummary = step.value;
            await writer.streamEnd(fileIndex, stream.index, summary);
            streams.push({ index: stream.index, name: stream.name, type: stream.type, rawRestorable: stream.rawRestorable, bytes: summary.bytes, sha256: summary.sha256 });
          } catch (e) {
            throw new AgentfdError('E_FILE_FAILED', `${file.path}: stream "${stream.name}" broke off: ${messageOf(e)}`, { cause: e });
          }
        }
        return { whole: false, file: saved(streams) };
      };

      try {
        for await (const file of run.files) {
          const fileIndex = files++;
          try {
            const saved = await saveFile(file, fileIndex);
            if (!saved.whole) await writer.fileEnd(file.path, { fileIndex, status: 'ok', error: null });
            batch.push(saved.file);
            if (current) current.set(file.path, file.seen ? null : streamKey(saved.file.streams));
          } catch (e) {
            // A file whose stream broke off is recorded as failed, never as good, and the job
            // fails: the agent's session may not be in a state to go on.
            failedFiles++;
            const message = messageOf(e);
            log('error', message);
            await writer.fileEnd(file.path, { fileIndex, status: 'failed', error: message });
            batch.push(catalogRow(file, fileIndex, 'failed', message, []));
            // The built-in agent's files are independent of each other: go on with the next one.
            // A native agent's session may be in no state to go on, and a cancel ends the job;
            // a file agentfd refused was ended properly with the agent (its session goes on).
            const cause = (e as { cause?: { code?: string } }).cause;
            const refused = (e as { code?: string }).code === 'E_FILE_REFUSED' || cause?.code === 'E_FILE_REFUSED';
            if ((agent.kind !== 'builtin' && !refused) || cause?.code === 'E_CANCELLED') throw e;
          }
          if (batch.length >= CATALOG_BATCH) {
            rows ??= new CatalogFileWriter(config.dataDir);
            await rows.add(jobId, batch);
            batch = [];
          }
          options.onProgress?.({ files, bytes, path: file.path });
        }
      } catch (e) {
        fatal = e;
        if (!errors.includes(messageOf(e))) errors.push(messageOf(e));
      }

      // Accurate mode: what the reference job had that this one neither sent nor saw is deleted.
      let accurate: AccurateRecord = { deleted: [], renamed: [] };
      if (fatal === null && reference && current) {
        const referenceIds = restoreChain(catalog, reference.id).map((j) => j.id).reverse();
        // An agent that does not report every file it still has (a Bacula plugin) is asked about
        // the ones it did not report, as bacula-fd asks checkFile(); those it keeps carry forward.
        if (run.stillExisting) {
          const unreported = existingFiles(catalog, reference.id).map((f) => f.path).filter((p) => !current.has(p));
          if (unreported.length > 0) for (const kept of await run.stillExisting(unreported)) current.set(kept, null);
        }
        accurate = compareWithReference(catalog, referenceIds, current);
        if (accurate.deleted.length > 0 || accurate.renamed.length > 0) await writer.accurate(accurate);
        accurate.deleted.forEach((gone, i) => {
          batch.push({
            fileIndex: files + i, path: gone.path, kind: gone.kind, mode: 0, mtimeNs: 0n, size: null, seen: false, linkTarget: null,
            agent: agent.name, agentVersion: agent.version, agentAbi: agent.abi, status: 'deleted', error: null, streams: [],
          });
        });
      }
      const state = fatal ? null : run.state();
      if (state) await writer.state(state);
      const ok = fatal === null && failedFiles === 0 && errors.length === 0;
      const status = ok ? 'committed' : isAbort(fatal) ? 'aborted' : 'failed';
      const end = await writer.end(
        { status, endedNs: (BigInt(Date.now()) * 1_000_000n).toString(), files, failedFiles, bytes, error: ok ? null : errors[0] ?? 'failed' },
        crypto.signer,
      );
      await volumes.sync();
      if (rows) {
        await rows.add(jobId, batch);
        await rows.drain();
      } else catalog.insertFiles(jobId, batch); // fewer files than one batch: no thread for them
      catalog.transaction(() => {
        for (const r of accurate.renamed) catalog.setRenamedFrom(jobId, r.to, r.from);
        for (const p of writer.placements) catalog.addJobVolume(jobId, p.label, p.path, p.firstOffset);
        catalog.finishJob(jobId, {
          status, endedNs: BigInt(Date.now()) * 1_000_000n, files, bytes, storedBytes: end.storedBytes,
          error: ok ? null : errors[0] ?? 'failed', state, level: delivered,
        });
      });
      try {
        await run.finish(ok);
      } catch (e) {
        log('warning', `the job is ${status}, but agent "${agent.name}" failed to finish: ${messageOf(e)}`);
      }
      await run.close();
      return {
        jobId, uuid, status, job: jobName, agent: agent.name, requestedLevel, level: delivered, files, failedFiles,
        deleted: accurate.deleted.length, renamed: accurate.renamed, referenceJob: reference?.id ?? null,
        levelNote: levelNote ?? (delivered !== level ? `agent "${agent.name}" delivered a ${delivered} backup where ${level} was asked` : null), bytes,
        storedBytes: end.storedBytes, compression: start.compression, encrypted: crypto.key !== null, signed: crypto.signer !== null,
        volumes: writer.placements.map((p) => p.path), errors, warnings, seconds: (Date.now() - started) / 1000,
      };
    } catch (e) {
      // Something below the agent failed (a full disk, a lost volume): the job is failed in the
      // catalog, and in the volume too when it can still be written.
      const message = messageOf(e);
      if (!errors.includes(message)) errors.push(message);
      let catalogNote = '';
      await session
        ?.end({ status: 'failed', endedNs: (BigInt(Date.now()) * 1_000_000n).toString(), files: 0, failedFiles: 0, bytes: 0, error: message }, null)
        .catch(() => undefined);
      const markFailed = () =>
        catalog.finishJob(jobId, { status: 'failed', endedNs: BigInt(Date.now()) * 1_000_000n, files: 0, bytes: 0, storedBytes: 0, error: message, state: null });
      try {
        try {
          markFailed();
        } catch (full) {
          // The catalog's disk is full too: free the reserve kept for this moment, and try again.
          if (!catalog.releaseSpaceReserve()) throw full;
          markFailed();
        }
      } catch (catalogError) {
        // Still no room (or another catalog failure): the job stays "running" there until the next
        // backup opens the catalog and marks it aborted (abortStaleJobs).
        catalogNote = `; the catalog could not mark the job failed (${messageOf(catalogError)}): the next backup marks it aborted`;
      }
      // The agent is told at once and its host stopped (an isolated host is killed after a short
      // grace): a write error must not wait for the agent.
      await run?.finish(false).catch(() => undefined);
      await run?.close().catch(() => undefined);
      const code = e instanceof AgentfdError ? e.code : 'E_JOB_FAILED';
      throw Object.assign(new AgentfdError(code, `job ${jobId} (${jobName}) failed: ${message}${catalogNote}`, { cause: e }), { jobId });
    }
  } finally {
    await pool?.close();
    // (Assigned inside the job's closures, which TypeScript's narrowing does not follow.)
    await (rows as CatalogFileWriter | null)?.close();
    await (hasher as StreamHasher | null)?.close();
    await volumes?.close({ final: false }).catch(() => undefined);
    catalog.close();
    lock.release();
  }
}

