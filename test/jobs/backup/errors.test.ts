/**
 * How a backup reads the errors that end a file or a job: aborted (the agent crashed, hung or was
 * cancelled, however deep the cause) rather than failed; which failed files the job goes on after;
 * and the error a job broken below the agent is thrown as.
 */
import { describe, expect, it } from 'vitest';
import { AgentCallError, AgentfdError } from '../../../src/errors.js';
import { goesOnAfter, isAbort, jobFailure } from '../../../src/jobs/backup/errors.js';
import { AgentHostError } from '../../../src/host/host-client.js';

const fileFailed = (cause: unknown) => new AgentfdError('E_FILE_FAILED', '/x: stream "data" broke off', { cause });

describe('backup errors', () => {
  it('aborts a job whose agent crashed, hung or was cancelled, found through the causes; fails it otherwise', () => {
    const crashed = new AgentHostError('E_AGENT_CRASHED', 'A', 'backup_read', 'crashed');
    const hung = new AgentHostError('E_AGENT_TIMEOUT', 'A', 'backup_read', 'hung');
    const cancelled = new AgentCallError('A', 'backup_read', -4, 'the job was cancelled');
    for (const e of [crashed, hung, cancelled, fileFailed(crashed), fileFailed(fileFailed(cancelled))]) expect(isAbort(e)).toBe(true);
    for (const e of [null, new Error('EIO'), new AgentCallError('A', 'backup_read', -5, 'EIO'), fileFailed(new Error('EIO'))]) expect(isAbort(e)).toBe(false);
  });

  it("goes on after a built-in agent's failed file or a refused file, never after a native agent's failed file or a cancel", () => {
    const builtin = { kind: 'builtin' as const };
    const native = { kind: 'native' as const };
    const refused = new AgentfdError('E_FILE_REFUSED', 'stream 0 has unknown type 77');
    const broken = fileFailed(new AgentCallError('A', 'backup_read', -5, 'EIO'));
    const cancelled = fileFailed(new AgentCallError('A', 'backup_read', -4, 'cancelled'));
    expect(goesOnAfter(builtin, broken)).toBe(true);
    expect(goesOnAfter(native, refused)).toBe(true);
    expect(goesOnAfter(native, fileFailed(refused))).toBe(true);
    expect(goesOnAfter(native, broken)).toBe(false);
    expect(goesOnAfter(builtin, cancelled)).toBe(false);
    expect(goesOnAfter({ kind: 'bacula' }, broken)).toBe(false);
  });

  it("throws a job broken below the agent as its error's code (E_JOB_FAILED for others), naming the job, with its id", () => {
    const storage = jobFailure(7, 'web', new AgentfdError('E_STORAGE', 'disk full'), 'disk full');
    expect(storage).toMatchObject({ code: 'E_STORAGE', jobId: 7, message: 'job 7 (web) failed: disk full' });
    expect(storage.cause).toBeInstanceOf(AgentfdError);
    expect(jobFailure(8, 'web', new Error('EIO'), 'EIO; and more')).toMatchObject({ code: 'E_JOB_FAILED', message: 'job 8 (web) failed: EIO; and more' });
  });
});
