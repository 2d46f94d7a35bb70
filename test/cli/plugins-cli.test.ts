/** The real agentfd command, in a child process: plugins list/info and config check. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HOST_MAX_ABI } from '../../src/agents/types.js';
import { runCli, runCliJson } from '../helpers/cli.js';
import { LIB_EXT, SAMPLE_DIR, builtAgentNames, makePluginDir, removeDir, tempDir, ROOT } from '../helpers/native.js';

const cleanup: string[] = [];
afterAll(() => cleanup.forEach(removeDir));

function pluginDir(...extra: Parameters<typeof makePluginDir>): string {
  const dir = makePluginDir(...extra);
  cleanup.push(dir);
  return dir;
}

describe('agentfd plugins list', () => {
  it('lists the built samples with their negotiated ABI versions and capabilities (--json)', () => {
    const { status, json } = runCliJson(['plugins', 'list', '--plugin-dir', SAMPLE_DIR]);
    expect(status).toBe(0);
    expect(json.status).toBe('ok');
    expect(json.hostAbiRange).toEqual([1, HOST_MAX_ABI]);
    const byName = Object.fromEntries(json.agents.map((a: any) => [a.name, a]));
    expect(Object.keys(byName).sort()).toEqual(builtAgentNames());
    expect(byName.MicrosoftExchange).toMatchObject({ abi: HOST_MAX_ABI, agentAbiRange: [1, 3], vendor: 'agentfd samples' });
    expect(byName.MicrosoftExchange.capabilities).toContain('own-state');
    expect(byName.MSSQL).toMatchObject({ abi: HOST_MAX_ABI, agentAbiRange: [2, 3] });
    expect(byName.MSSQL.capabilities).toContain('raw-restorable');
    expect(byName.LegacyFlatFiles).toMatchObject({ abi: 1, agentAbiRange: [1, 1], capabilities: ['full', 'restore'] });
    expect(byName.LegacyFlatFiles.file).toBe(path.join(SAMPLE_DIR, `legacy${LIB_EXT}`));
    expect(json.refused).toEqual([]);
  });

  it('prints a table and the refused libraries with their reasons', () => {
    const dir = pluginDir(['exchange', 'bad_future_abi', 'bad_null_name'], { [`junk${LIB_EXT}`]: 'not an elf' });
    const { status, stdout } = runCli(['plugins', 'list', '--plugin-dir', dir]);
    expect(status).toBe(0);
    expect(stdout).toMatch(new RegExp(`MicrosoftExchange\\s+${HOST_MAX_ABI} \\(1\\.\\.3\\)\\s+1\\.2\\.0\\s+exchange`));
    expect(stdout).toContain('Refused (3):');
    expect(stdout).toContain('[E_ABI_RANGE]');
    expect(stdout).toContain('[E_BAD_NAME]');
    expect(stdout).toContain('[E_NOT_LIBRARY]');
  });

  it('uses plugin_dir from --config', () => {
    const dir = pluginDir(['mssql']);
    const config = path.join(dir, 'agentfd.toml');
    writeFileSync(config, 'plugin_dir = "."\n');
    const { status, json } = runCliJson(['plugins', 'list', '--config', config]);
    expect(status).toBe(0);
    expect(json.agents.map((a: any) => a.name)).toEqual(['MSSQL']);
  });

  it('fails with a clear message and exit code 1 for a missing directory', () => {
    const { status, stderr } = runCli(['plugins', 'list', '--plugin-dir', '/nonexistent/plugins']);
    expect(status).toBe(1);
    expect(stderr).toMatch(/^agentfd: plugin directory \/nonexistent\/plugins does not exist/);
    const json = runCliJson(['plugins', 'list', '--plugin-dir', '/nonexistent/plugins']);
    expect(json.status).toBe(1);
    expect(json.json).toMatchObject({ status: 'error', code: 'E_PLUGIN_DIR' });
  });
});

describe('agentfd plugins info', () => {
  it('shows what an agent declares', () => {
    const { status, stdout } = runCli(['plugins', 'info', 'MicrosoftExchange', '--plugin-dir', SAMPLE_DIR]);
    expect(status).toBe(0);
    expect(stdout).toMatch(new RegExp(`ABI:\\s+generation ${HOST_MAX_ABI} negotiated \\(agent speaks 1\\.\\.3, agentfd 1\\.\\.${HOST_MAX_ABI}\\)`));
    expect(stdout).toMatch(/Vendor:\s+agentfd samples/);
    expect(stdout).toMatch(/Capabilities:.*incremental/);
  });

  it('refuses an unknown name and lists the known ones', () => {
    const { status, stderr } = runCli(['plugins', 'info', 'Oracle', '--plugin-dir', SAMPLE_DIR]);
    expect(status).toBe(1);
    expect(stderr).toContain('no agent named "Oracle"');
    expect(stderr).toContain('LegacyFlatFiles, MSSQL, MicrosoftExchange');
  });
});

describe('agentfd config check', () => {
  it('accepts the shipped example', () => {
    const { status, stdout } = runCli(['config', 'check', '--config', path.join(ROOT, 'examples', 'agentfd.toml')]);
    expect(status).toBe(0);
    expect(stdout).toMatch(/agentfd\.toml: OK/);
    expect(stdout).toContain('exchange-nightly, sql-databases, old-exports, web');
  });

  it('finds ./agentfd.toml in the working directory', () => {
    const dir = tempDir('cwd');
    cleanup.push(dir);
    writeFileSync(path.join(dir, 'agentfd.toml'), `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\n[jobs.db]\nagent = "MSSQL"\n`);
    const { status, json } = runCliJson(['config', 'check'], { cwd: dir });
    expect(status).toBe(0);
    expect(json).toMatchObject({ status: 'ok', file: path.join(dir, 'agentfd.toml'), jobs: ['db'] });
  });

  it('points at a job naming an agent that is not installed', () => {
    const dir = tempDir('cfg');
    cleanup.push(dir);
    const file = path.join(dir, 'agentfd.toml');
    writeFileSync(file, `plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\n[jobs.nightly]\nagent = "Oracle"\n`);
    const { status, stderr } = runCli(['config', 'check', '--config', file]);
    expect(status).toBe(1);
    expect(stderr).toContain('jobs.nightly.agent: no agent named "Oracle"');
    expect(stderr).toContain('MSSQL');
  });

  it('points at the bad key of an invalid file', () => {
    const dir = tempDir('cfg');
    cleanup.push(dir);
    const file = path.join(dir, 'agentfd.toml');
    writeFileSync(file, '[jobs.nightly]\nagent = "MSSQL"\nexclude = [1]\n');
    const { status, json } = runCliJson(['config', 'check', '--config', file]);
    expect(status).toBe(1);
    expect(json).toMatchObject({ status: 'error', code: 'E_CONFIG' });
    expect(json.message).toContain('jobs.nightly.exclude.0: expected string');
  });
});

describe('agentfd itself', () => {
  it('prints help and version', () => {
    const help = runCli(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('plugins');
    expect(help.stdout).toContain('config');
    const version = runCli(['--version']);
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('exits non-zero on an unknown command', () => {
    const result = runCli(['frobnicate']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("unknown command 'frobnicate'");
  });
});

describe('the package', () => {
  it('reports the version package.json declares', async () => {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(runCli(['--version']).stdout.trim()).toBe(pkg.version);
  });
});

describe('agentfd demo (npm start)', () => {
  it('backs up, verifies and restores the sample data through the sample agents, all identical', () => {
    const dir = tempDir('demo');
    cleanup.push(dir);
    const { status, json } = runCliJson(['demo', '--dir', path.join(dir, 'work')]);
    expect(status).toBe(0);
    expect(json.status).toBe('ok');
    expect(json.jobs.map((j: any) => j.agent)).toEqual(['MicrosoftExchange', 'MSSQL', 'filesystem']);
    for (const job of json.jobs) {
      expect(job).toMatchObject({ verify: 'ok (signature valid)', restore: 'restored', compare: 'identical' });
      expect(job.files).toBeGreaterThan(0);
    }
  });
});
