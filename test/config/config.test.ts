/** Parsing and validating agentfd.toml: good files load, and each mistake is reported at its key. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig, SAMPLE_PLUGIN_DIR } from '../../src/config/load.js';
import { ROOT } from '../helpers/native.js';

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
