/**
 * One job at a time writes to a storage directory: its volumes are append-only and a session's
 * records are contiguous. The lock is a file created with O_EXCL holding the owner's pid; a lock
 * whose process is gone is taken over (the job it belonged to is then marked aborted).
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentfdError } from '../errors.js';

export interface StorageLock {
  release(): void;
  /** True when a dead process's lock was taken over. */
  tookOver: boolean;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockStorage(dir: string): StorageLock {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, '.agentfd.lock');
  let tookOver = false;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      let released = false;
      return {
        tookOver,
        release() {
          if (released) return;
          released = true;
          try {
            unlinkSync(file);
          } catch {
            // already gone
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AgentfdError('E_STORAGE', `cannot lock the storage directory ${dir}: ${(error as Error).message}`, { cause: error });
      }
      const owner = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(owner) && owner !== process.pid && alive(owner)) {
        throw new AgentfdError('E_BUSY', `another agentfd job (pid ${owner}) is writing to ${dir}; wait for it to finish, or run this job with another storage_dir`);
      }
      unlinkSync(file);
      tookOver = true;
    }
  }
  throw new AgentfdError('E_BUSY', `cannot lock the storage directory ${dir}`);
}
