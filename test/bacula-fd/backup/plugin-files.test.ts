/** A Plugin line's files (transfer/backup/plugin-files.ts); their runs through real agents are in test/e2e/bacula-bpipe.test.ts. */
import { describe, expect, it } from 'vitest';
import type { AgentFile } from '../../../src/agents/agent.js';
import { STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { defaultOptions } from '../../../src/bacula-fd/fileset/fileset.js';
import { agentFileStat, sendPlugin } from '../../../src/bacula-fd/transfer/backup/plugin-files.js';
import { recordingJob } from './job.js';

describe('serve backup: plugin files', () => {
  it('gives an agent file the LStat of what the agent tells of it, the rest zero', () => {
    const file: AgentFile = { path: '/db/t', kind: 'regular', linkTarget: null, mode: 0o640, mtimeNs: 1_700_000_000_999_999_999n, size: 1000, winAttributes: 0, seen: false, streams: [] };
    const stat = agentFileStat(file, STREAM.GZIP_DATA);
    expect([stat.mode, stat.size, stat.blocks, stat.mtime, stat.atime, stat.ctime, stat.uid, stat.ino, stat.dataStream])
      .toEqual([0o100640, 1000n, 2n, 1_700_000_000n, 1_700_000_000n, 1_700_000_000n, 0, 0n, STREAM.GZIP_DATA]);
    expect(agentFileStat({ ...file, kind: 'directory', size: null }, STREAM.FILE_DATA).mode).toBe(0o040640);
  });

  it('reports a Plugin line no agent answers, and sends nothing', async () => {
    const { job, sent } = recordingJob();
    await sendPlugin(job, 'nosuch:arg=1', defaultOptions());
    expect(sent).toEqual([]);
    expect(job.totals.errors).toEqual(['Command plugin "nosuch" requested, but is not loaded: no agent named "nosuch" (agentfd plugins list shows the agents)']);
  });
});
