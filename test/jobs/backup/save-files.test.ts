/**
 * The job's loop over its agent's files, with real agents: a file agentfd refused is recorded as
 * failed and the job goes on; a native agent's file that broke off ends the loop (its session may
 * be in no state to go on), while the built-in agent's files are independent and the loop goes on.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { AgentFile, AgentIdentity } from '../../../src/agents/agent.js';
import { loadPluginDir, type AgentRegistry } from '../../../src/agents/registry.js';
import { AgentHostError } from '../../../src/host/host-client.js';
import { resolveAgent } from '../../../src/jobs/agents.js';
import { CatalogBatch } from '../../../src/jobs/backup/catalog-batch.js';
import { FileSaver } from '../../../src/jobs/backup/file-saver.js';
import { saveFiles, type FilesOutcome } from '../../../src/jobs/backup/save-files.js';
import { parseCompression } from '../../../src/pipeline/codecs.js';
import { SAMPLE_DIR } from '../../helpers/native.js';
import { describedFile, filesystemAgent } from './agent-files.js';
import { openStageSession, type StageSession } from './stage-session.js';

let registry: AgentRegistry;
beforeAll(async () => {
  registry = await loadPluginDir(SAMPLE_DIR);
});

interface Loop {
  outcome: FilesOutcome;
  session: StageSession;
  /** The catalog rows the loop left, once committed: [path, status, error]. */
  rows: [string, string, string | null][];
  asked: number;
  progress: number[];
}

/** Run the loop over `files` as `agent`'s, then commit the rows and end the session (to read it back). */
async function loop(agent: Pick<AgentIdentity, 'name' | 'version' | 'abi' | 'kind' | 'capabilities'>, files: AsyncIterable<AgentFile>): Promise<Loop> {
  const session = await openStageSession({ agent });
  const saver = new FileSaver(session.writer, agent, parseCompression('none'));
  const batch = new CatalogBatch(session.catalog, session.dataDir, session.jobId);
  const progress: number[] = [];
  let asked = 0;
  async function* counted() {
    for await (const file of files) {
      asked++;
      yield file;
    }
  }
  try {
    const outcome = await saveFiles(counted(), { saver, writer: session.writer, batch, accurate: null, agent, log: session.log, onProgress: (p) => progress.push(p.files) });
    await batch.commit();
    const rows = session.catalog.files(session.jobId).map((f): [string, string, string | null] => [f.path, f.status, f.error]);
    return { outcome, session, rows, asked, progress };
  } finally {
    await saver.close();
    await batch.close();
    await session.close();
  }
}

/** FaultInjector's run (three files, /@faulty/file1.bin .. file3.bin) with `fault` in file 2. */
async function faultyFiles(fault: string): Promise<{ agent: ReturnType<typeof resolveAgent>; files: AsyncIterable<AgentFile>; close: () => Promise<void> }> {
  const agent = resolveAgent('FaultInjector', registry);
  const run = await agent.backup({
    jobName: 'faulty', jobId: 1, options: { fault, size: '100000' }, filesetCheck: () => true, log: () => undefined, isCancelled: () => false,
    level: 'full', sinceNs: 0n, jobStartNs: 0n, referenceState: null,
  });
  return { agent, files: run.files, close: () => run.close() };
}

describe('saving the files of a run', () => {
  it('records a file agentfd refused as failed and goes on with the next one', async () => {
    const faulty = await faultyFiles('bad-stream-type');
    try {
      const { outcome, rows, session, progress } = await loop(faulty.agent, faulty.files);
      expect(outcome).toEqual({ files: 3, failedFiles: 1, fatal: null });
      expect(rows).toEqual([
        ['/@faulty/file1.bin', 'ok', null],
        ['/@faulty/file2.bin', 'failed', expect.stringContaining('stream 0 has unknown type 77')],
        ['/@faulty/file3.bin', 'ok', null],
      ]);
      expect(session.log.errors).toEqual([rows[1]![2]]);
      expect(progress).toEqual([1, 2, 3]);
    } finally {
      await faulty.close();
    }
  });

  it("ends the loop when a native agent's file breaks off: the agent is asked for no more files", async () => {
    const faulty = await faultyFiles('negative-read');
    try {
      const { outcome, rows, session, asked } = await loop(faulty.agent, faulty.files);
      expect(outcome).toMatchObject({ files: 2, failedFiles: 1, fatal: { code: 'E_FILE_FAILED' } });
      expect(asked).toBe(2);
      expect(rows.map(([p, status]) => [p, status])).toEqual([['/@faulty/file1.bin', 'ok'], ['/@faulty/file2.bin', 'failed']]);
      const message = (outcome.fatal as Error).message;
      expect(message).toMatch(/^\/@faulty\/file2\.bin: stream "data" broke off: .*failed in backup_read\(\): no message \(return code -100\)/);
      // Logged once, as the file's failure, though it also ended the loop.
      expect(session.log.errors).toEqual([message]);
      expect(await session.recordTypes()).toEqual(['SESSION_START', 'SESSION_INFO', 'FILE', 'CHUNK', 'STREAM_END', 'FILE_END', 'FILE', 'FILE_END']);
    } finally {
      await faulty.close();
    }
  });

  it("goes on after a failed file of the built-in agent, whose files do not depend on each other", async () => {
    async function* files(): AsyncGenerator<AgentFile> {
      yield describedFile('/srv/a', [{ sizeHint: 3, pieces: [Buffer.from('aaa')] }]);
      yield describedFile('/srv/b', [{ sizeHint: 3, pieces: [new Error('EIO: i/o error, read')] }]);
      yield describedFile('/srv/c', [{ sizeHint: 3, pieces: [Buffer.from('ccc')] }]);
    }
    const { outcome, rows, session } = await loop(filesystemAgent, files());
    expect(outcome).toEqual({ files: 3, failedFiles: 1, fatal: null });
    expect(rows).toEqual([['/srv/a', 'ok', null], ['/srv/b', 'failed', '/srv/b: reading it broke off: EIO: i/o error, read'], ['/srv/c', 'ok', null]]);
    expect(session.log.errors).toEqual(['/srv/b: reading it broke off: EIO: i/o error, read']);
  });

  it('ends the loop with the error of an agent that failed between files, keeping the files before it', async () => {
    async function* files(): AsyncGenerator<AgentFile> {
      yield describedFile('/srv/a', [{ sizeHint: 3, pieces: [Buffer.from('aaa')] }]);
      throw new AgentHostError('E_AGENT_CRASHED', 'X', 'backup_next_file', 'agent "X" crashed in backup_next_file()');
    }
    const { outcome, rows, session } = await loop(filesystemAgent, files());
    expect(outcome).toMatchObject({ files: 1, failedFiles: 0, fatal: { code: 'E_AGENT_CRASHED' } });
    expect(rows).toEqual([['/srv/a', 'ok', null]]);
    expect(session.log.errors).toEqual(['agent "X" crashed in backup_next_file()']);
  });
});
