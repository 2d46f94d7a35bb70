/**
 * The files of a plugin (a Plugin= line of the backup): between a plugin command's start and end
 * records (STREAM_PLUGIN_NAME), each entry goes to the agent installed under that plugin's name,
 * as bacula-fd hands them to its plugin; with no such agent they restore as plain files.
 */
import type { RestoreRun as AgentRestoreRun } from '../../../agents/agent.js';
import type { AgentFileInfo } from '../../../agents/types.js';
import { messageOf } from '../../../errors.js';
import { FT, STREAM } from '../../attributes/lstat.js';
import { UndecodableData } from '../lzo-records.js';
import type { EntryRecord } from './entry-record.js';
import { decodeDataRecord } from './file-data.js';
import { noEntry, type RestoringEntry } from './entries.js';
import type { RestoreJob } from './job.js';

/** The plugin command in force, and its agent's run (null: not installed here). */
export class PluginBrackets {
  private current: { command: string; run: AgentRestoreRun | null } | null = null;

  constructor(private readonly job: RestoreJob) {}

  /** The agent the entries go to now, or null for plain files. */
  get agent(): AgentRestoreRun | null {
    return this.current?.run ?? null;
  }

  /** A STREAM_PLUGIN_NAME record: "<fi> 1 <flag> <command>" starts a plugin's files, anything else ends them. */
  async record(data: Buffer): Promise<void> {
    const text = data.toString('utf8').replace(/\0+$/, '');
    const start = /^\d+ 1 \d (.*)$/s.exec(text);
    if (!start) {
      this.current = null;
      return;
    }
    const command = start[1]!;
    const run = this.job.run.plugin ? await this.job.run.plugin(command) : null;
    if (!run) this.job.run.log('warning', `Plugin=${command.split(':')[0]} not found: its files are restored as plain files under the restore's where`);
    this.current = { command, run };
  }
}

/** The agent's view of the entry: what Bacula's record says of it. */
export function agentFileInfo(record: EntryRecord): AgentFileInfo {
  const { fname, recordType: type, stat, link } = record;
  const pathName = fname.length > 1 && fname.endsWith('/') ? fname.slice(0, -1) : fname;
  const kind = type === FT.DIREND ? 'directory' : type === FT.LNK ? 'symlink' : 'virtual';
  return {
    path: pathName, kind, linkTarget: kind === 'symlink' ? link : null, mode: stat.mode & 0o7777, seen: false,
    mtimeNs: stat.mtime * 1_000_000_000n, size: kind === 'virtual' ? Number(stat.size) : null, winAttributes: 0,
    streams: type === FT.REG ? [{ index: 0, type: 'data', name: 'data', sizeHint: Number(stat.size), rawRestorable: true }] : [],
  };
}

/** An entry given to `agent`; one it refuses is the entry's error, and its records are skipped. */
export async function startAgentFile(job: RestoreJob, agent: AgentRestoreRun, record: EntryRecord): Promise<RestoringEntry> {
  try {
    await agent.startFile(agentFileInfo(record));
    return new AgentEntry(job, agent, record.fname);
  } catch (error) {
    job.problem(`${record.fname}: the agent refused it: ${messageOf(error)}`);
    const refused = noEntry(job, record.fname);
    refused.skipping = true;
    return refused;
  }
}

/** The data streams of an agent's file: plain, GZIP or LZO, never sparse. */
const AGENT_STREAMS: ReadonlySet<number> = new Set([STREAM.FILE_DATA, STREAM.GZIP_DATA, STREAM.COMPRESSED_DATA]);

class AgentEntry implements RestoringEntry {
  skipping = false;
  private open = true;

  constructor(
    private readonly job: RestoreJob,
    private readonly agent: AgentRestoreRun,
    readonly name: string,
  ) {}

  async data(stream: number, data: Buffer): Promise<void> {
    // An agent takes its file's data in order: sparse records (with offsets) have no place here.
    if (!AGENT_STREAMS.has(stream)) return this.undecodable(`stream ${stream}, sparse data, which an agent's file cannot take`);
    let bytes: Buffer;
    try {
      bytes = decodeDataRecord(stream, data).data;
    } catch (error) {
      if (!(error instanceof UndecodableData)) throw error;
      return this.undecodable(`a stream ${stream} record that cannot be decoded: ${error.message}`);
    }
    try {
      await this.agent.write(0, bytes);
      this.job.totals.bytes += bytes.length;
    } catch (error) {
      this.job.problem(`${this.name}: the agent could not write it: ${messageOf(error)}`);
      this.skipping = true;
    }
  }

  async undecodable(what: string): Promise<void> {
    this.skipping = true;
    await this.finish(false);
    this.job.problem(`"${this.name}" is not restored: its data is in ${what}; the agent was told the file failed`);
  }

  end(): Promise<void> {
    return this.finish(!this.skipping);
  }

  private async finish(ok: boolean): Promise<void> {
    if (!this.open) return;
    this.open = false;
    try {
      await this.agent.endFile(ok);
      if (ok) this.job.totals.files++;
    } catch (error) {
      this.job.problem(`${this.name}: the agent could not restore it: ${messageOf(error)}`);
    }
  }
}
