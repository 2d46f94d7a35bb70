/**
 * The job functions read as a list of stages: runBackup, runRestore, runScan, runVerify, and the
 * serve job's functions (sendBackup, receiveRestore, runVerify, the Director's dispatch, backup,
 * restore and verify)
 * each stay under 80 lines, measured from the real sources by the script anyone can run by hand:
 * `node scripts/function-lengths.mjs`.
 */
import { describe, expect, it } from 'vitest';
import { JOB_FUNCTIONS, functionLengths } from '../../scripts/function-lengths.mjs';

describe('the job functions', () => {
  const all = functionLengths('src');

  it('are each under 80 lines', () => {
    const measured = JOB_FUNCTIONS.map(([file, name]) => {
      const found = all.filter((f) => f.file === file && f.name === name);
      expect(found.length, `${name} in ${file}`).toBe(1);
      return `${file} ${name}: ${found[0]!.lines < 80 ? 'under 80' : `${found[0]!.lines} lines`}`;
    });
    expect(measured).toEqual(JOB_FUNCTIONS.map(([file, name]) => `${file} ${name}: under 80`));
  });

  it('measures a function from its first line to its closing brace', () => {
    const dispatch = all.find((f) => f.file === 'src/bacula-fd/director/director.ts' && f.name === 'dispatch')!;
    expect(dispatch.lines).toBeGreaterThan(5); // a body, not just a signature
    expect(all.length).toBeGreaterThan(500);
    expect(all[0]!.lines).toBeGreaterThanOrEqual(all[all.length - 1]!.lines); // longest first
  });
});
