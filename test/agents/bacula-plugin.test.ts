/**
 * The Bacula 9.6 plugin adapter with compiled test plugins (test/fixtures/native/bacula_test_plugin.c):
 * bacula-fd's load checks and their refusals, the variadic messages through the C shim, the backup
 * and restore call sequences through the bridge in the daemon and in an isolated host, createFile's
 * answers, and failures a plugin reports.
 */
import { readFileSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent, BackupRequest, RestoreRequest } from '../../src/agents/agent.js';
import { loadBaculaPlugin, demangledName } from '../../src/agents/bacula-plugin/library.js';
import { explainStatus, type BaculaPluginLibrary } from '../../src/agents/bacula-plugin/session.js';
import { pluginNameOf } from '../../src/agents/bacula-plugin/command.js';
import { examineLibrary } from '../../src/agents/descriptor.js';
import type { AgentFileInfo } from '../../src/agents/types.js';
import { NativeAgent } from '../../src/bridge/native-agent.js';
import { AgentLoadError } from '../../src/errors.js';
import { IsolatedAgent } from '../../src/host/isolated-agent.js';
import { parseConfig } from '../../src/config/load.js';
import { builtAgent, removeDir, tempDir } from '../helpers/native.js';

/** Byte k of test file i, as the test plugin produces and checks it. */
function expected(i: number, size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let k = 0; k < size; k++) bytes[k] = (k * 31 + i * 7 + (k >> 10)) & 0xff;
  return bytes;
}

let plugin: BaculaPluginLibrary;
let work: string;

beforeAll(() => {
  plugin = loadBaculaPlugin(builtAgent('testplug-fd'), []);
  work = tempDir('bacula-plugin');
});
afterAll(() => {
  plugin?.unload();
  if (work) removeDir(work);
});

function backupRequest(command: string, logs: string[], extra: Partial<BackupRequest> = {}): BackupRequest {
  return {
    jobName: 'plugjob', jobId: 7, options: { command }, filesetCheck: () => true, log: (level, message) => logs.push(`${level}: ${message}`),
    isCancelled: () => false, level: 'full', sinceNs: 0n, jobStartNs: 0n, referenceState: null, ...extra,
  };
}

function restoreRequest(command: string, target: string, logs: string[]): RestoreRequest {
  return {
    jobName: 'plugjob', jobId: 8, options: { command }, filesetCheck: () => true, log: (level, message) => logs.push(`${level}: ${message}`),
    isCancelled: () => false, target, sourceAbi: 14, sourceAgentVersion: '1.0',
  };
}

async function backupAll(agent: Agent, request: BackupRequest): Promise<{ file: AgentFileInfo; data: Buffer }[]> {
  const run = await agent.backup(request);
  const out: { file: AgentFileInfo; data: Buffer }[] = [];
  try {
    for await (const file of run.files) {
      const parts: Buffer[] = [];
      for (const stream of file.streams) for await (const chunk of stream.data()) parts.push(Buffer.from(chunk));
      out.push({ file: { ...file, streams: file.streams.map(({ data: _data, ...info }) => info) }, data: Buffer.concat(parts) });
    }
    await run.finish(true);
  } finally {
    await run.close();
  }
  return out;
}

async function restoreAll(agent: Agent, request: RestoreRequest, files: { file: AgentFileInfo; data: Buffer }[]): Promise<void> {
  const run = await agent.restore(request);
  try {
    for (const { file, data } of files) {
      await run.startFile(file);
      for (let at = 0; at < data.length; at += 100_000) await run.write(0, data.subarray(at, at + 100_000));
      await run.endFile(true);
    }
    await run.finish();
  } finally {
    await run.close();
  }
}

describe('loading Bacula plugins as bacula-fd does', () => {
  it('loads a plugin and reads what its pInfo declares', () => {
    expect(plugin).toMatchObject({ kind: 'bacula', name: 'testplug', abi: 14, agentAbiRange: [14, 14] });
    expect(plugin.info).toMatchObject({ author: 'agentfd tests', description: 'agentfd test plugin', version: '1.0', license: 'AGPLv3', date: 'November 2026' });
    expect(plugin.capabilities).toEqual(expect.arrayContaining(['full', 'incremental', 'restore', 'accurate']));
  });

  const refusals: [string, string, RegExp][] = [
    ['badmagic-fd', 'E_NEGOTIATION', /plugin magic wrong: wanted "\*FDPluginData\*", got "\*BadMagic\*"/],
    ['badversion-fd', 'E_ABI_RANGE', /plugin version incorrect: wanted interface version 14 \(Bacula 9\.6\), got 13/],
    ['badlicense-fd', 'E_NEGOTIATION', /plugin license incompatible: "Proprietary" is not one of "Bacula AGPLv3", "AGPLv3", "Bacula"/],
    ['badsize-fd', 'E_BAD_TABLE', /plugin size incorrect: wanted a 56-byte pInfo, got 48/],
  ];
  for (const [file, code, message] of refusals) {
    it(`refuses ${file}.so with bacula-fd's reason`, () => {
      let error: unknown;
      try {
        loadBaculaPlugin(builtAgent(file), []);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(AgentLoadError);
      expect((error as AgentLoadError).code).toBe(code);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain('bacula-fd 9.6 refuses it for the same reason');
    });
  }

  it('examines *-fd.so files as Bacula plugins and describes them as plain data', () => {
    const descriptor = examineLibrary(builtAgent('testplug-fd'), null, []);
    expect(descriptor).toMatchObject({ kind: 'bacula', name: 'testplug', abi: 14, preload: [] });
    expect(descriptor.info.author).toBe('agentfd tests');
  });

  it('reads the plugin name of a command as bacula-fd does', () => {
    expect(pluginNameOf('bpipe:/@bpipe@/x:cat a:b:cat >c')).toBe('bpipe');
    expect(pluginNameOf('bpipe')).toBe('bpipe');
    expect(() => pluginNameOf('bpipe with spaces')).toThrow(/malformed plugin command/);
    expect(() => pluginNameOf(':nothing')).toThrow(/names no plugin/);
    expect(demangledName('_Z18sm_get_pool_memoryPKcii')).toBe('sm_get_pool_memory');
    expect(demangledName('plain_c_symbol')).toBe('plain_c_symbol');
    // bpipe reports a reader's exit as Bacula's berrno value: said in words too.
    expect(explainStatus('bpipe-fd: Error closing for file /x: 268435459')).toBe('bpipe-fd: Error closing for file /x: 268435459 (the command exited with status 3)');
    expect(explainStatus('bpipe-fd: Error closing for file /x: 134217737')).toMatch(/killed by signal 9\)$/);
    expect(explainStatus('no number here')).toBe('no number here');
  });

  it('takes plugin = "NAME:..." in a job and gives the plugin the whole string as its command', () => {
    const config = parseConfig('[jobs.dump]\nplugin = "bpipe:/@bpipe@/a.sql:cat a:cat >b"\n', '/etc/agentfd/agentfd.toml');
    expect(config.jobs.dump).toMatchObject({ agent: 'bpipe', options: { command: 'bpipe:/@bpipe@/a.sql:cat a:cat >b' } });
    expect(() => parseConfig('[jobs.dump]\nplugin = "no colon and spaces"\n', '/x.toml')).toThrow(/jobs\.dump\.plugin: malformed plugin command/);
    expect(() => parseConfig('[jobs.dump]\nagent = "other"\nplugin = "bpipe:x"\n', '/x.toml')).toThrow(/jobs\.dump\.agent: agent "other" differs from the plugin the command names \("bpipe"\)/);
    expect(() => parseConfig('[bacula]\npreloads = []\n', '/x.toml')).toThrow(/bacula: unknown key "preloads"/);
  });
});

for (const mode of ['in-process', 'isolated'] as const) {
  describe(`a test plugin's jobs (${mode})`, () => {
    const agent = (): Agent =>
      mode === 'in-process' ? new NativeAgent(plugin) : new IsolatedAgent(examineLibrary(builtAgent('testplug-fd'), null, []), { callTimeoutMs: 60_000, cancelGraceMs: 5000 });

    it('backs up every file the plugin gives, with formatted JobMessages and the job values it asked for', async () => {
      const logs: string[] = [];
      const files = await backupAll(agent(), backupRequest('testplug:files=3:size=300001', logs));
      expect(files.map((f) => f.file.path)).toEqual(['/@testplug@/file0.dat', '/@testplug@/file1.dat', '/@testplug@/file2.dat']);
      files.forEach(({ file, data }, i) => {
        expect(file).toMatchObject({ kind: 'regular', mode: 0o640, size: 300001, mtimeNs: BigInt(1700000000 + i) * 1_000_000_000n });
        expect(data.equals(expected(i, 300001))).toBe(true);
      });
      // JobMessage's variadic arguments were formatted by the shim: %d, %s and %lld.
      expect(logs).toContain('info: testplug: JobId=7 Job=plugjob files=3 size=300001');
      expect(logs.some((l) => l.startsWith('info: testplug: job start: JobId=7 Job=plugjob'))).toBe(true);
    });

    it('sends the events in bacula-fd\'s order', async () => {
      const events = (logs: string[]) => logs.flatMap((l) => /^debug: testplug: event (\d+)$/.exec(l)?.[1] ?? []).map(Number);
      const full: string[] = [];
      await backupAll(agent(), backupRequest('testplug:files=1:size=10', full));
      // JobStart, Level, PluginCommand, EndFileSet, StartBackupJob, BackupCommand ... EndBackupJob, JobEnd
      expect(events(full)).toEqual([1, 12, 20, 19, 3, 9, 4, 2]);
      const incremental: string[] = [];
      await backupAll(agent(), backupRequest('testplug:files=1:size=10', incremental, { level: 'incremental', sinceNs: 1_700_000_000_000_000_000n }));
      expect(events(incremental)).toEqual([1, 13, 12, 20, 19, 3, 9, 4, 2]); // Since before Level
      const files = await backupAll(agent(), backupRequest('testplug:files=2:size=10', []));
      const restore: string[] = [];
      await restoreAll(agent(), restoreRequest('testplug:files=2:size=10', path.join(work, `${mode}-events`), restore), files);
      // JobStart, StartRestoreJob, RestoreCommand per file, EndRestoreJob, JobEnd
      expect(events(restore)).toEqual([1, 5, 10, 10, 6, 2]);
    });

    it('restores through createFile and pluginIO writes, which the plugin checks byte for byte', async () => {
      const logs: string[] = [];
      const files = await backupAll(agent(), backupRequest('testplug:files=2:size=250000', logs));
      const target = path.join(work, `${mode}-extract`);
      await restoreAll(agent(), restoreRequest('testplug:files=2:size=250000', target, logs), files);
      for (let i = 0; i < 2; i++) {
        const restored = path.join(target, '@testplug@', `file${i}.dat`);
        expect(readFileSync(restored).equals(expected(i, 250000))).toBe(true);
        expect(statSync(restored).mode & 0o7777).toBe(0o640); // the plugin's setFileAttributes
      }
    });

    it('lets the core write the file when createFile answers CF_CORE', async () => {
      const logs: string[] = [];
      const files = await backupAll(agent(), backupRequest('testplug:files=1:size=5000', logs));
      const target = path.join(work, `${mode}-core`);
      await restoreAll(agent(), restoreRequest('testplug:files=1:size=5000:mode=core', target, logs), files);
      expect(readFileSync(path.join(target, '@testplug@', 'file0.dat')).equals(expected(0, 5000))).toBe(true);
    });

    it('writes nothing when createFile answers CF_SKIP', async () => {
      const logs: string[] = [];
      const files = await backupAll(agent(), backupRequest('testplug:files=1:size=5000', logs));
      const target = path.join(work, `${mode}-skip`);
      await restoreAll(agent(), restoreRequest('testplug:files=1:size=5000:mode=skip', target, logs), files);
      expect(existsSync(path.join(target, '@testplug@', 'file0.dat'))).toBe(false);
      expect(logs.some((l) => l.includes('skipped /@testplug@/file0.dat (createFile answered CF_SKIP)'))).toBe(true);
    });

    it('fails the backup when the plugin reports a read error, with its message', async () => {
      await expect(backupAll(agent(), backupRequest('testplug:files=2:size=200000:fail=read', []))).rejects.toThrow(
        /Bacula plugin "testplug" failed in pluginIO\(\): IO_READ of \/@testplug@\/file1\.dat failed \(errno 5: EIO\).*testplug: read failed on/,
      );
    });

    it('fails the backup when the plugin cannot open its file', async () => {
      await expect(backupAll(agent(), backupRequest('testplug:files=1:size=10:fail=open', []))).rejects.toThrow(/IO_OPEN of \/@testplug@\/file0\.dat failed \(errno 2: ENOENT\)/);
    });

    it('fails the restore when the plugin cannot write', async () => {
      const files = await backupAll(agent(), backupRequest('testplug:files=1:size=1000', []));
      await expect(restoreAll(agent(), restoreRequest('testplug:files=1:size=1000:fail=write', path.join(work, `${mode}-nospace`), []), files)).rejects.toThrow(
        /IO_WRITE of \/@testplug@\/file0\.dat failed \(errno 28: ENOSPC\)/,
      );
    });

    it('fails a job whose command the plugin rejects, with the plugin\'s fatal message', async () => {
      await expect(backupAll(agent(), backupRequest('testplug:colour=blue', []))).rejects.toThrow(/handlePluginEvent\(bEventPluginCommand\)\(\).*testplug: unknown key colour/);
    });

    it('asks checkFile about files the plugin no longer sends (accurate mode)', async () => {
      const run = await agent().backup(backupRequest('testplug:files=1:size=10:prefix=/@testplug@/keep', [], { level: 'incremental', sinceNs: 1n }));
      for await (const file of run.files) for (const stream of file.streams) for await (const _ of stream.data());
      expect(await run.stillExisting!(['/@testplug@/keep/file5.dat', '/@testplug@/other/file5.dat'])).toEqual(['/@testplug@/keep/file5.dat']);
      await run.finish(true);
      await run.close();
    });
  });
}
