/** agent-file.ts: a plugin's brackets, and what its agent is told of each entry. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FT, STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { PluginBrackets, agentFileInfo } from '../../../src/bacula-fd/transfer/restore/agent-file.js';
import { readEntryRecord } from '../../../src/bacula-fd/transfer/restore/entry-record.js';
import { RestoreJob } from '../../../src/bacula-fd/transfer/restore/job.js';
import { tempDir } from '../../helpers/native.js';
import { attrRecord } from '../records.js';

describe('a plugin\'s files (restore/agent-file.ts)', () => {
  it('tells the agent the path, kind, mode, time and size of an entry', () => {
    const file = agentFileInfo(readEntryRecord(STREAM.UNIX_ATTRIBUTES, attrRecord(1, FT.REG, '@exchange/db/', { mode: 0o100640, size: 10n, mtime: 7n }).data));
    expect(file).toMatchObject({ path: '@exchange/db', kind: 'virtual', mode: 0o640, size: 10, mtimeNs: 7_000_000_000n, linkTarget: null });
    expect(file.streams).toEqual([{ index: 0, type: 'data', name: 'data', sizeHint: 10, rawRestorable: true }]);
    const link = agentFileInfo(readEntryRecord(STREAM.UNIX_ATTRIBUTES, attrRecord(2, FT.LNK, '@x/l', { mode: 0o120777 }, 'there').data));
    expect(link).toMatchObject({ kind: 'symlink', linkTarget: 'there', size: null, streams: [] });
  });

  it('starts a plugin\'s files at its start record, warns when no agent has its name, and ends them at the next record', async () => {
    const logs: string[] = [];
    const asked: string[] = [];
    const job = new RestoreJob({
      records: (async function* () {})(), where: path.join(tempDir('brackets'), 'where'), log: (level, m) => logs.push(`${level}: ${m}`),
      plugin: async (command) => {
        asked.push(command);
        return null;
      },
    });
    const brackets = new PluginBrackets(job);
    await brackets.record(Buffer.from('3 1 0 exchange:db=x\0'));
    expect(asked).toEqual(['exchange:db=x']);
    expect(brackets.agent).toBeNull();
    expect(logs).toEqual(["warning: Plugin=exchange not found: its files are restored as plain files under the restore's where"]);
    await brackets.record(Buffer.from('3 0'));
    expect(brackets.agent).toBeNull();
  });
});
