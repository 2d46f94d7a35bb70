/**
 * A storage directory's identity: a random id made once, the first time agentfd writes there, and
 * kept in the file `.agentfd-repository` of the directory. Volume labels (agentfd-0001...) repeat
 * from one storage directory to the next; the id does not, so a catalog can tell two directories
 * apart, notice one that was replaced, copied or moved, and refuse to mix them up (see
 * Catalog.claimStorage). Every new volume carries the id in its LABEL.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { AgentfdError } from '../errors.js';

export const REPOSITORY_FILE = '.agentfd-repository';
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function read(file: string): string {
  const id = readFileSync(file, 'utf8').trim();
  if (!ID.test(id)) {
    throw new AgentfdError(
      'E_STORAGE_ID',
      `${file} does not hold a repository id (a UUID): it was altered. Restore it from a copy of the storage directory, or, if this directory's volumes are lost, move it away and start a new storage directory`,
    );
  }
  return id;
}

/** The repository id of storage directory `dir`, made (and the directory with it) when it has none. */
export function storageRepository(dir: string): string {
  const file = path.join(dir, REPOSITORY_FILE);
  try {
    return read(file);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ENOENT') throw error instanceof AgentfdError ? error : new AgentfdError('E_STORAGE_ID', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  mkdirSync(dir, { recursive: true });
  const id = randomUUID();
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (error) {
    if ((error as { code?: unknown }).code === 'EEXIST') return read(file); // made meanwhile by another agentfd
    throw new AgentfdError('E_STORAGE_ID', `cannot create ${file}: ${(error as Error).message}; check that agentfd may write to ${dir}`, { cause: error });
  }
  try {
    writeSync(fd, `${id}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return id;
}
