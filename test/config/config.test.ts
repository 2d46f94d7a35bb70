/** Parsing and validating agentfd.toml: good files load, and each mistake is reported at its key. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig, SAMPLE_PLUGIN_DIR } from '../../src/config/load.js';
import { runCli } from '../helpers/cli.js';
import { ROOT, tempDir } from '../helpers/native.js';

const FILE = '/etc/agentfd/agentfd.toml';

describe('configuration', () => {
  it('loads the shipped example, with paths relative to the file', () => {
    const file = path.join(ROOT, 'examples', 'agentfd.toml');
    const config = loadConfig(file);
    expect(config.pluginDir).toBe(path.join(ROOT, 'binding', 'build', 'Release', 'agents'));
    expect(config.dataDir).toBe(path.join(ROOT, '.agentfd-data'));
    expect(Object.keys(config.jobs)).toEqual(['exchange-nightly', 'sql-databases', 'old-exports', 'web']);
    expect(config.jobs['exchange-nightly']).toMatchObject({ agent: 'MicrosoftExchange', options: { store: '/srv/exchange/store' } });
    expect(config.agentOptions.MicrosoftExchange).toEqual({ truncate_logs: 'yes' });
  });

  it('turns TOML numbers and booleans in options into the strings agents read', () => {
    const config = parseConfig('[jobs.a]\nagent = "X"\noptions = { level = 3, verify = true }\n', FILE);
    expect(config.jobs.a!.options).toEqual({ level: '3', verify: 'true' });
  });

  it('defaults the plugin directory to the built samples when none is given', () => {
    expect(parseConfig('', FILE).pluginDir).toBe(SAMPLE_PLUGIN_DIR);
  });

  it('reports a TOML syntax error with file, line and column', () => {
    expect(() => parseConfig('plugin_dir = "a"\n[jobs.x\nagent = 1\n', FILE)).toThrow(/\/etc\/agentfd\/agentfd\.toml:2:\d+: not valid TOML/);
  });

  it('points at a misspelt key', () => {
    expect(() => parseConfig('[jobs.nightly]\nagnet = "MSSQL"\n', FILE)).toThrow(/jobs\.nightly: unknown key "agnet"/);
  });

  it('points at a missing agent', () => {
    expect(() => parseConfig('[jobs.nightly]\ndescription = "x"\n', FILE)).toThrow(/jobs\.nightly\.agent: name the agent .* or give a Bacula plugin command \(plugin = "bpipe:\.\.\."\)/);
  });

  it('points at a value of the wrong type', () => {
    expect(() => parseConfig('[jobs.nightly]\nagent = "MSSQL"\ninclude = "/@mssql/**"\n', FILE)).toThrow(/jobs\.nightly\.include: expected array/);
    expect(() => parseConfig('plugin_dir = 5\n', FILE)).toThrow(/plugin_dir: expected string/);
  });

  it('refuses a job name that could not be typed on a command line', () => {
    expect(() => parseConfig('[jobs."a b"]\nagent = "MSSQL"\n', FILE)).toThrow(/jobs\.a b: a job name is 1 to 64 letters/);
  });

  it('lists every problem at once', () => {
    let message = '';
    try {
      parseConfig('colour = "red"\n[jobs.a]\nagent = 1\n', FILE);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/\(top level\): unknown key "colour"/);
    expect(message).toMatch(/jobs\.a\.agent: expected string/);
  });

  it('says so when the file does not exist', () => {
    expect(() => loadConfig('/nonexistent/agentfd.toml')).toThrow(/\/nonexistent\/agentfd\.toml: cannot read the configuration \(no such file\)/);
  });
});

describe('sizes and time limits out of range, through the CLI', () => {
  /** `agentfd <args>` with a configuration of `lines` (a filesystem job "a" over an empty directory). */
  function withConfig(lines: string[], args: string[]) {
    const dir = tempDir('config-cli');
    writeFileSync(path.join(dir, 'agentfd.toml'), ['data_dir = "state"', ...lines, '[jobs.a]', 'agent = "filesystem"', 'paths = ["."]'].join('\n'));
    return runCli([...args, '--config', path.join(dir, 'agentfd.toml')]);
  }

  it('names volume_size and the smallest volume in its units, before any job starts', () => {
    const result = withConfig(['volume_size = "1K"'], ['backup', '--job', 'a']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/volume_size: "1K" \(1024 bytes\) is smaller than the smallest volume, "8K" \(8192 bytes\)/);
    expect(result.stderr).not.toMatch(/maxVolumeBytes/);
    // Any command reading the configuration says so, not only a backup that opens a volume.
    expect(withConfig(['volume_size = 4096'], ['jobs']).stderr).toMatch(/volume_size: 4096 bytes is smaller than the smallest volume, "8K"/);
    expect(withConfig(['volume_size = "99999999T"'], ['jobs']).stderr).toMatch(/volume_size: "99999999T" is larger than agentfd can count/);
    expect(withConfig(['volume_size = true'], ['jobs']).stderr).toMatch(/volume_size: a size like 1073741824, "512M" or "4G"/);
    const ok = withConfig(['volume_size = "8K"'], ['backup', '--job', 'a']);
    expect(ok.status, ok.stderr).toBe(0);
  });

  it('refuses a call_timeout or cancel_grace of no time, or longer than a timer holds', () => {
    const result = withConfig(['call_timeout = "0s"', '[agents.X]', 'cancel_grace = "1000h"'], ['jobs']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/ call_timeout: "0s" is no time at all/);
    expect(result.stderr).toMatch(/agents\.X\.cancel_grace: "1000h" is longer than agentfd can wait \(at most "596h"/);
    expect(withConfig(['cancel_grace = 0'], ['jobs']).stderr).toMatch(/cancel_grace: 0 is no time at all/);
  });
});
