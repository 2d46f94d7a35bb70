/**
 * A FileSet's Plugin line (plugin_save per command): the agent named by the command backs up its
 * files, and each goes to the SD bracketed by STREAM_PLUGIN_NAME records as bacula-fd sends a
 * plugin's files.
 */
import type { AgentFile } from '../../../agents/agent.js';
import { pluginNameOf } from '../../../agents/bacula-plugin/command.js';
import { messageOf } from '../../../errors.js';
import { FT, STREAM, encodeAttributes, encodeLStat, type BaculaStat } from '../../attributes/lstat.js';
import type { IncludeOptions } from '../../fileset/fileset.js';
import { lzoRecord } from '../lzo-records.js';
import { startPluginBackup } from '../plugin-agents.js';
import { FRAME, startDigest } from './file-data.js';
import type { BackupJob } from './job.js';
import { dataStreamFor } from './records.js';
import { deflateSync } from 'node:zlib';

/** Run one Plugin line's agent and send the files it gives. */
export async function sendPlugin(job: BackupJob, command: string, options: IncludeOptions): Promise<void> {
  const { run } = job;
  const plugins = run.plugins;
  let name: string;
  try {
    name = pluginNameOf(command);
  } catch (error) {
    job.problem(messageOf(error));
    return;
  }
  const agent = plugins?.agents.agentFor(command) ?? null;
  if (!plugins || !agent) {
    job.problem(`Command plugin "${name}" requested, but is not loaded: no agent named "${name}" (agentfd plugins list shows the agents)`);
    return;
  }
  const backup = await startPluginBackup(plugins.agents, agent, command, plugins.level, run.since, {
    jobName: plugins.jobName, jobId: plugins.jobId, log: run.log, isCancelled: run.isCancelled,
  });
  job.totals.pluginRuns.push(backup);
  for await (const file of backup.files) {
    if (run.isCancelled()) break;
    // An agent decides for its own files: those it reports (sent or unchanged) are met.
    run.accurate?.markSeen(file.kind === 'directory' ? `${file.path}/` : file.path);
    if (file.seen) continue; // unchanged since the reference: bacula-fd sends nothing either
    await sendAgentFile(job, command, file, options);
  }
  // Listed files nobody met yet: an agent that does not report all it still has (a Bacula plugin)
  // is asked about each (checkFile), as bacula-fd asks every plugin before reporting a deletion.
  if (run.accurate && backup.stillExisting) {
    const unreported = [...run.accurate.unseen()].map((u) => u.name);
    if (unreported.length > 0) for (const kept of await backup.stillExisting(unreported)) run.accurate.markSeen(kept);
  }
}

/** The LStat of an agent file: what an agent tells of it, the rest zero (no device, inode or owner). */
export function agentFileStat(file: AgentFile, dataStream: number): BaculaStat {
  const seconds = file.mtimeNs / 1_000_000_000n;
  const typeBits = file.kind === 'directory' ? 0o040000 : file.kind === 'symlink' ? 0o120000 : 0o100000;
  const size = BigInt(file.size ?? 0);
  return {
    dev: 0n, ino: 0n, mode: typeBits | file.mode, nlink: 1n, uid: 0, gid: 0, rdev: 0n, size, blksize: 4096n, blocks: (size + 511n) / 512n,
    atime: seconds, mtime: seconds, ctime: seconds, linkFI: 0, flags: 0, dataStream,
  };
}

/** An agent file, bracketed by STREAM_PLUGIN_NAME records as bacula-fd sends a plugin's files. */
async function sendAgentFile(job: BackupJob, command: string, file: AgentFile, options: IncludeOptions): Promise<void> {
  const { run, totals } = job;
  if (file.streams.length > 1) {
    job.problem(`${file.path}: ${file.streams.length} streams; agentfd serve saves agent files of one stream only so far`);
    for (const stream of file.streams) for await (const _ of stream.data());
    return;
  }
  const index = job.nextIndex();
  await run.sd.sendStream(index, STREAM.PLUGIN_NAME, 0, [Buffer.from(`${index} 1 1 ${command}\0`)]);
  const dataStream = dataStreamFor({ sparse: false, gzip: options.gzip, lzo: options.lzo });
  const stat = agentFileStat(file, dataStream);
  const type = file.kind === 'directory' ? FT.DIREND : file.kind === 'symlink' ? FT.LNK : file.streams.length > 0 ? FT.REG : FT.REGE;
  const fname = file.kind === 'directory' ? `${file.path}/` : file.path;
  const record = encodeAttributes({ fileIndex: index, type, fname, lstat: encodeLStat(stat), link: file.linkTarget ?? '', attribsEx: '', deltaSeq: 0 });
  await run.sd.sendStream(index, STREAM.UNIX_ATTRIBUTES, 0, [record]);
  const stream = file.streams[0];
  if (stream) {
    const digest = startDigest(options.digest);
    const frames = async function* () {
      for await (const chunk of stream.data()) {
        for (let at = 0; at < chunk.length; at += FRAME) {
          const plain = Buffer.from(chunk.buffer, chunk.byteOffset + at, Math.min(FRAME, chunk.length - at));
          digest?.hash.update(plain);
          totals.readBytes += plain.length;
          // Copied: the agent may reuse its buffer once the next chunk is asked for.
          const inTurn = options.gzip !== null ? job.gzipInTurn() : null; // gzip_like_bacula_fd: the job's one stream
          yield inTurn ? inTurn(plain, options, 0) : options.gzip !== null ? deflateSync(plain, { level: options.gzip }) : options.lzo ? lzoRecord(plain) : Buffer.from(plain);
        }
      }
    };
    totals.jobBytes += await run.sd.sendStream(index, dataStream, stat.size, frames());
    if (digest) await run.sd.sendStream(index, digest.stream, 0, [digest.hash.digest()]);
  }
  await run.sd.sendStream(index, STREAM.PLUGIN_NAME, 0, [Buffer.from(`${index} 0\0`)]);
  totals.files++;
}
