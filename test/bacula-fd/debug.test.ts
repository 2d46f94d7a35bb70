/** serve's debug levels and trace file (wire/debug.ts), as setdebug sets them. */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DebugLog, parseSetdebug } from '../../src/bacula-fd/wire/debug.js';
import { tempDir } from '../helpers/native.js';

describe('serve debug levels', () => {
  it("reads the Director's setdebug command, old and new forms", () => {
    expect(parseSetdebug('setdebug=100 trace=1 hangup=-1 blowup=-1 options=tc tags=')).toEqual({ level: 100, trace: 1, hangup: -1, blowup: -1, options: 'tc', tags: '' });
    expect(parseSetdebug('setdebug=50 trace=0 hangup=0')).toEqual({ level: 50, trace: 0, hangup: 0, blowup: -1, options: '', tags: '' });
    expect(parseSetdebug('setdebug=x')).toBeNull();
  });

  it('writes messages up to the level to <working dir>/<name>.trace with trace=1, else to the output', () => {
    const dir = path.join(tempDir('debug'), 'work');
    const output: string[] = [];
    const debug = new DebugLog('agentfd-fd', dir, (line) => output.push(line));
    debug.write(100, 'director', 0, 'not written: level 0');
    debug.set(100, 1, '');
    const trace = path.join(dir, 'agentfd-fd.trace');
    expect(existsSync(trace)).toBe(true);
    debug.write(100, 'director', 7, '<dird: backup FileIndex=0');
    debug.write(130, 'backup', 7, 'not written: above the level');
    expect(readFileSync(trace, 'utf8')).toBe('agentfd-fd: director-7 <dird: backup FileIndex=0\n');
    debug.set(-1, 0, ''); // trace off, level kept
    debug.write(50, 'storage', 7, 'to the output');
    expect(output).toEqual(['agentfd-fd: storage-7 to the output\n']);
    expect(readFileSync(trace, 'utf8')).not.toContain('to the output');
  });

  it("truncates the trace file with option c and stamps lines with option t, as bacula-fd's flags", () => {
    const dir = tempDir('debug-flags');
    const debug = new DebugLog('fd', dir, () => undefined);
    debug.set(10, 1, '');
    debug.write(10, 'director', 0, 'old');
    debug.set(10, 1, 'ct');
    debug.write(10, 'director', 0, 'new');
    expect(readFileSync(path.join(dir, 'fd.trace'), 'utf8')).toMatch(/^\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d fd: director-0 new\n$/);
  });
});
