/** The catalog rows of a backup's files: saved, failed, and (accurate mode) deleted since the reference job. */
import type { AgentFile, AgentIdentity } from '../../agents/agent.js';
import type { NewFile } from '../../catalog/catalog.js';
import type { AccurateRecord } from '../../pipeline/records.js';

type Saver = Pick<AgentIdentity, 'name' | 'version' | 'abi'>;

/** The row of a file this job reported, saved ('ok') or not ('failed', with no streams). */
export function fileRow(agent: Saver, file: AgentFile, fileIndex: number, status: 'ok' | 'failed', error: string | null, streams: NewFile['streams']): NewFile {
  return {
    fileIndex, path: file.path, kind: file.kind, mode: file.mode, mtimeNs: file.mtimeNs, size: file.size, seen: file.seen,
    linkTarget: file.linkTarget, agent: agent.name, agentVersion: agent.version, agentAbi: agent.abi, status, error, streams,
    winAttributes: file.winAttributes,
  };
}

/** The rows of the files accurate mode found deleted, numbered on from the job's last file. */
export function deletedRows(agent: Saver, deleted: AccurateRecord['deleted'], firstIndex: number): NewFile[] {
  return deleted.map((gone, i) => ({
    fileIndex: firstIndex + i, path: gone.path, kind: gone.kind, mode: 0, mtimeNs: 0n, size: null, seen: false, linkTarget: null,
    agent: agent.name, agentVersion: agent.version, agentAbi: agent.abi, status: 'deleted', error: null, streams: [],
  }));
}
