/**
 * The restore job: volumes -> session reader (authenticate, decrypt, decompress, re-digest) ->
 * routing -> the agent that saved each file (or an override, or raw plain files).
 *
 * Nothing is written before the job's key opened and every agent it needs is known to be there.
 * Agents write each file under a temporary name and only give it its real name when the host says
 * the file is whole (endFile(true)), which happens after the stream's digest was checked; a file
 * whose data turns out bad is discarded, never left looking complete.
 */
import path from 'node:path';
import picomatch from 'picomatch';
import type { Agent, RestoreRun } from '../agents/agent.js';
import { createFilesystemAgent } from '../agents/filesystem/index.js';
import type { AgentFileInfo, LogLevel } from '../agents/types.js';
import type { AgentRegistry } from '../agents/registry.js';
import type { Catalog } from '../catalog/catalog.js';
import type { AgentfdConfig } from '../config/load.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError, messageOf } from '../errors.js';
import { prefetch } from '../pipeline/prefetch.js';
import { StreamHasher } from '../pipeline/stream-hasher.js';
import type { FileRecord } from '../pipeline/records.js';
import { readSession } from '../sink/session-reader.js';
import { FILESYSTEM_AGENT, hasAgent, resolveAgent } from './agents.js';
import { planRestore } from './chain.js';
import { checkTrust, expectedSession, signatureState, verifySignedSession, weakest, type SignatureState } from './signatures.js';
import type { VerifiedRecords } from '../sink/manifest.js';
import { NAMES_IGNORE_CASE } from '../platform/os.js';

export interface RestoreOptions {
  /** For how agents are run (isolation); the defaults when absent. */
  config?: AgentfdConfig;
  catalog: Catalog;
  registry: AgentRegistry;
  jobId: number;
  to: string;
  /** Route every file to this agent instead of the one recorded. */
  agent?: string;
  /** Write every stream as a plain file under `to`. */
  raw?: boolean;
  /** Agent options that replace the ones recorded on the volume (a Bacula plugin's `command`). */
  optionOverrides?: Record<string, string>;
  include?: string[];
  secrets: UnwrapSecrets;
  /** Restore a job signed by a key not trusted at scan (see signatures.ts). */
  allowUntrustedSigner?: boolean;
  onProgress?: (p: { files: number; bytes: number; path: string }) => void;
  onLog?: (level: LogLevel, message: string) => void;
}

export interface RestoreReport {
  jobId: number;
  status: 'restored' | 'failed';
  to: string;
  mode: 'agent' | 'raw';
  files: number;
  skipped: number;
  bytes: number;
  agents: string[];
  signature: SignatureState;
  errors: string[];
  seconds: number;
  /** The jobs restored, full first: the point in time. */
  chain: { jobId: number; level: string; files: number }[];
  deleted: number;
}

function toInfo(file: FileRecord): AgentFileInfo {
  return {
    path: file.path, kind: file.kind, linkTarget: file.linkTarget, mode: file.mode, seen: file.seen,
    mtimeNs: BigInt(file.mtimeNs), size: file.size, winAttributes: file.winAttributes, streams: file.streams,
  };
}

/** The plain file a stream becomes in a raw restore: the file's own path for its only "data" stream. */
export function rawPath(file: FileRecord, streamIndex: number): string {
  const stream = file.streams[streamIndex]!;
  const alone = file.streams.length === 1 && stream.name === 'data';
  return alone ? file.path : `${file.path}.${stream.name}`;
}

/** Session events read ahead of the agent's writes (each chunk event holds up to 1 MiB). */
const READ_AHEAD = 4;

export async function runRestore(options: RestoreOptions): Promise<RestoreReport> {
  const started = Date.now();
  const { catalog, jobId } = options;
  const job = catalog.job(jobId);
  if (!job) throw new AgentfdError('E_UNKNOWN_JOB', `there is no job ${jobId} in the catalog ${catalog.file}; agentfd jobs lists them, agentfd scan adds jobs from volumes`);
  // The point in time: the job and the jobs it builds on, full first (refuses failed or aborted ones).
  const plan = planRestore(catalog, jobId);
  const raw = options.raw ?? false;
  if (raw && options.agent) throw new AgentfdError('E_USAGE', '--raw and --agent exclude each other');

  // Which agents are needed, before anything is written.
  const needed = raw ? [] : options.agent ? [options.agent] : plan.agents;
  for (const name of needed) {
    if (!hasAgent(name, options.registry)) {
      const rawHint = 'restore with --raw to get every stream as a plain file';
      throw new AgentfdError(
        'E_AGENT_MISSING',
        options.agent
          ? `agent "${name}" (--agent) is not installed in ${options.registry.dir}`
          : `the files of job ${jobId} were saved by agent "${name}", which is not installed in ${options.registry.dir}. Install it, ${rawHint}, or route them to another agent with --agent NAME`,
      );
    }
  }
  const agents = new Map<string, Agent>();
  const agentFor = (name: string): Agent => {
    let agent = agents.get(name);
    if (!agent) agents.set(name, (agent = resolveAgent(name, options.registry, options.config)));
    return agent;
  };
  const rawAgent = createFilesystemAgent();

  const include = options.include && options.include.length > 0 ? picomatch(options.include, { dot: true, nocase: NAMES_IGNORE_CASE }) : null; // Windows names ignore case
  const to = path.resolve(options.to);
  const runs = new Map<string, RestoreRun>();
  const errors: string[] = [];
  const log = (level: LogLevel, message: string) => {
    if (level === 'error') errors.push(message);
    options.onLog?.(level, message);
  };
  let files = 0;
  let skipped = 0;
  let bytes = 0;
  let signature: SignatureState = 'unchecked';
  let sourceAbi = job.agent_abi;
  let sourceVersion = job.agent_version;
  let jobOptions: Record<string, string> = {};

  // Whether the job being read is signed by a trusted key (set by its 'info' event).
  let recordedTrusted = false;
  const runFor = async (agentName: string): Promise<RestoreRun> => {
    let run = runs.get(agentName);
    if (!run) {
      const agent = agentName === '\0raw' ? rawAgent : agentFor(agentName);
      if (agent.kind === 'bacula') refuseUntrustedCommand(agent.name, jobId, jobOptions, options.optionOverrides ?? {}, recordedTrusted);
      run = await agent.restore({
        jobName: job.name, jobId, options: agentName === '\0raw' ? {} : jobOptions, filesetCheck: () => true, log,
        isCancelled: () => false, target: to, sourceAbi, sourceAgentVersion: sourceVersion,
      });
      runs.set(agentName, run);
    }
    return run;
  };

  // The file being restored, and how: through an agent (one startFile for the whole file), or
  // raw (one plain file per stream).
  let current: { file: FileRecord; run: RestoreRun; raw: boolean; openStream: number | null } | null = null;
  const startRawStream = async (streamIndex: number) => {
    const c = current!;
    if (c.openStream === streamIndex) return;
    const stream = c.file.streams[streamIndex]!;
    await c.run.startFile({ ...toInfo(c.file), kind: 'regular', path: rawPath(c.file, streamIndex), streams: [{ ...stream, index: 0 }] });
    c.openStream = streamIndex;
  };

  /**
   * A path this system cannot hold (E_RESTORE_PATH: refused before anything was written for it,
   * e.g. two names that differ only in case on Windows) fails that file, not the restore: the
   * error is reported, the file's data skipped, and the other files restored. False when refused.
   */
  const refusable = async (start: () => Promise<void>): Promise<boolean> => {
    try {
      await start();
      return true;
    } catch (error) {
      if (!(error instanceof AgentfdError) || error.code !== 'E_RESTORE_PATH') throw error;
      log('error', error.message); // the log keeps it among the restore's errors
      skipped++;
      return false;
    }
  };

  const hasher = new StreamHasher();
  try {
    // Each signed job of the chain is read once before anything is written: its signature is checked
    // against the signer the catalog records, and the records it covers are kept for the second read.
    const verified = new Map<number, VerifiedRecords>();
    for (const part of plan.chain) {
      checkTrust(part, options.allowUntrustedSigner ?? false);
      if (part.signer !== null) verified.set(part.id, await verifySignedSession(catalog, part, options.secrets));
    }
    for (const part of plan.chain) {
    const select = plan.select.get(part.id)!;
    const placements = catalog.jobVolumes(part.id).map((v) => ({ path: v.path, firstOffset: v.first_offset }));
    // The reader runs a few events ahead (reading, opening, decompressing and checking the next
    // chunks) while the agent writes this one.
    const events = prefetch(
      readSession({ jobId: part.id, placements, secrets: options.secrets, data: true, what: `job ${part.id} (${part.name})`, hasher, expect: expectedSession(part), verified: verified.get(part.id) }),
      READ_AHEAD,
    );
    for await (const event of events) {
      switch (event.kind) {
        case 'info':
          jobOptions = { ...event.info.options, ...(options.optionOverrides ?? {}) };
          recordedTrusted = signatureState(part) === 'valid';
          sourceAbi = event.info.agent.abi;
          sourceVersion = event.info.agent.version;
          break;
        case 'file': {
          const file = event.file;
          // Only each path's latest version in the chain is restored (and none of a deleted path).
          if ((include && !include(file.path)) || file.seen || !select.has(file.fileIndex)) {
            skipped++;
            current = null;
            break;
          }
          if (raw) {
            // Raw: directories come with their files, symlinks are recreated, objects without
            // streams have nothing to write.
            if (file.kind === 'symlink' || file.kind === 'directory') {
              current = { file, run: await runFor('\0raw'), raw: false, openStream: null };
              if (!(await refusable(() => current!.run.startFile(toInfo(file))))) current = null;
            } else {
              current = { file, run: await runFor('\0raw'), raw: true, openStream: null };
            }
          } else {
            const name = options.agent ?? file.agent.name ?? FILESYSTEM_AGENT;
            current = { file, run: await runFor(name), raw: false, openStream: null };
            if (!(await refusable(() => current!.run.startFile(toInfo(file))))) current = null;
          }
          break;
        }
        case 'chunk':
          if (!current) break;
          if (current.raw) {
            if (!(await refusable(() => startRawStream(event.prefix.streamIndex)))) {
              current = null;
              break;
            }
            await current.run.write(0, event.data!);
          } else {
            await current.run.write(event.prefix.streamIndex, event.data!);
          }
          bytes += event.data!.length;
          options.onProgress?.({ files, bytes, path: current.file.path });
          break;
        case 'streamEnd':
          if (current?.raw) {
            // An empty stream still becomes a file.
            if (!(await refusable(() => startRawStream(event.end.streamIndex)))) {
              current = null;
              break;
            }
            await current.run.endFile(true);
            current.openStream = null;
          }
          break;
        case 'fileEnd':
          if (!current) break;
          if (event.end.status !== 'ok') {
            log('error', `${current.file.path} was not saved completely (${event.end.error ?? 'failed'}); not restored`);
            if (!current.raw || current.openStream !== null) await current.run.endFile(false);
          } else if (!current.raw) {
            const ending = current;
            current = null; // ended either way: a failing endFile is not followed by another
            if (await refusable(() => ending.run.endFile(true))) files++; // a symlink is made (or refused) here
          } else {
            files++;
          }
          current = null;
          break;
        case 'end':
          // The weakest signature state of the chain is the one reported.
          signature = weakest(signature, signatureState(part));
          break;
        default:
          break;
      }
    }
    }
    for (const run of runs.values()) await run.finish();
  } catch (error) {
    // Bad data or a failing agent: the open file is discarded, and nothing is called complete.
    if (current && (!current.raw || current.openStream !== null)) await current.run.endFile(false).catch(() => undefined);
    errors.push(messageOf(error));
    for (const run of runs.values()) await run.close().catch(() => undefined);
    await hasher.close();
    throw Object.assign(error instanceof AgentfdError ? error : new AgentfdError('E_RESTORE', messageOf(error), { cause: error }), { jobId, restoredFiles: files });
  }
  for (const run of runs.values()) await run.close();
  await hasher.close();
  return {
    jobId, status: errors.length === 0 ? 'restored' : 'failed', to, mode: raw ? 'raw' : 'agent', files, skipped, bytes,
    agents: raw ? [] : [...runs.keys()], signature, errors, seconds: (Date.now() - started) / 1000,
    chain: plan.chain.map((j) => ({ jobId: j.id, level: j.level, files: plan.select.get(j.id)!.size })), deleted: plan.deleted.length,
  };
}

/**
 * A Bacula plugin's restore runs its command string (bpipe: the writer program, run as agentfd's
 * user, often root). The one recorded on the volume is data from the past, possibly from someone
 * else: it is run only when the job is signed by a trusted key, else the person restoring gives
 * it (--option command=...), having read it.
 */
function refuseUntrustedCommand(agent: string, jobId: number, options: Record<string, string>, overrides: Record<string, string>, trusted: boolean): void {
  if (trusted || overrides.command !== undefined || options.command === undefined) return;
  throw new AgentfdError(
    'E_PLUGIN_COMMAND',
    `job ${jobId} was saved by the Bacula plugin "${agent}", whose restore runs the command recorded on the volume (${JSON.stringify(options.command)}); ` +
      'the job is not signed by a trusted key, so agentfd does not run a command it cannot trust. Read it, then give it (or your own) with --option command=...',
  );
}
