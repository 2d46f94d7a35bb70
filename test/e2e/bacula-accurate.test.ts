/**
 * Accurate mode with a Bacula plugin, through the real CLI: a file the plugin stops sending is
 * recorded as deleted unless its checkFile() says it still exists, as bacula-fd decides it; and a
 * restore of the incremental's point in time follows that decision.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, runCliJson } from '../helpers/cli.js';
import { makePluginDir, removeDir, tempDir } from '../helpers/native.js';

let ws: string;
let plugins: string;
let config: string;

/**
 * One job "plug" whose plugin command is `command`: rewritten between runs, as an admin would.
 * Signed, so that a restore may run the plugin with the command recorded on the volume.
 */
function setCommand(command: string): void {
  writeFileSync(
    config,
    `plugin_dir = ${JSON.stringify(plugins)}\ndata_dir = "data"\n[bacula]\npreload = []\n[jobs.plug]\nplugin = ${JSON.stringify(command)}\nsign_with = "keys/admin.key"\n`,
  );
}

function backup(level: string) {
  const result = runCliJson(['backup', '--job', 'plug', '--level', level, '--config', config]);
  expect(result.status, result.stderr).toBe(0);
  return result.json;
}

function restoredNames(jobId: number, to: string): string[] {
  const result = runCliJson(['restore', '--job-id', String(jobId), '--to', to, '--config', config]);
  expect(result.status, result.stderr).toBe(0);
  const dirs = readdirSync(to);
  return dirs.flatMap((d) => readdirSync(path.join(to, d), { recursive: true }).map((f) => `${d}/${String(f)}`)).sort();
}

beforeAll(() => {
  ws = tempDir('bacula-accurate');
  plugins = makePluginDir([{ name: 'testplug-fd', as: 'testplug-fd.so' }]);
  config = path.join(ws, 'agentfd.toml');
  expect(runCli(['keys', 'generate', '--out', path.join(ws, 'keys'), '--name', 'admin']).status).toBe(0);
});
afterAll(() => {
  if (ws) removeDir(ws);
  if (plugins) removeDir(plugins);
});

describe('accurate mode with a Bacula plugin', () => {
  it('records as deleted the files the plugin stopped sending when checkFile does not keep them', () => {
    setCommand('testplug:files=3:size=1000:prefix=/@testplug@/data');
    expect(backup('full')).toMatchObject({ files: 3, deleted: 0 });
    setCommand('testplug:files=1:size=1000:prefix=/@testplug@/data');
    const incremental = backup('incremental');
    expect(incremental).toMatchObject({ level: 'incremental', files: 1, deleted: 2 });
    expect(restoredNames(incremental.jobId, path.join(ws, 'r-data'))).toEqual(['@testplug@/data', '@testplug@/data/file0.dat']);
  });

  it('keeps the files checkFile answers bRC_Seen for, and restores them from the full', () => {
    setCommand('testplug:files=3:size=1000:prefix=/@testplug@/keep');
    expect(backup('full')).toMatchObject({ files: 3 });
    setCommand('testplug:files=1:size=1000:prefix=/@testplug@/keep');
    const incremental = backup('incremental');
    expect(incremental).toMatchObject({ files: 1, deleted: 0 });
    const to = path.join(ws, 'r-keep');
    expect(restoredNames(incremental.jobId, to)).toEqual(['@testplug@/keep', '@testplug@/keep/file0.dat', '@testplug@/keep/file1.dat', '@testplug@/keep/file2.dat']);
    expect(existsSync(path.join(to, '@testplug@', 'data'))).toBe(false);
  });
});
