/**
 * The restorer of files on its own: session events as the reader yields them, written by the real
 * filesystem agent into a real directory. A file is whole only at an ok FILE_END; one the backup
 * could not save completely, or the restore aborted in the middle of, is never left at its name;
 * raw, every stream is its own plain file; a path the target refuses fails that file only.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RestoreRun } from '../../../src/agents/agent.js';
import { createFilesystemAgent } from '../../../src/agents/filesystem/index.js';
import type { FileRecord } from '../../../src/pipeline/records.js';
import type { SessionEvent } from '../../../src/sink/session-reader.js';
import { RAW_RUN } from '../../../src/jobs/restore/agent-runs.js';
import { FileRestorer, rawPath } from '../../../src/jobs/restore/file-restorer.js';
import { tempDir } from '../../helpers/native.js';

type FileEvent = Extract<SessionEvent, { kind: 'file' | 'chunk' | 'streamEnd' | 'fileEnd' }>;

let nextIndex = 1;

/** A regular file's events: FILE, its streams' chunks and ends, FILE_END (`status`). */
function fileEvents(filePath: string, streams: Record<string, string[]>, status: 'ok' | 'failed' = 'ok'): { record: FileRecord; events: FileEvent[] } {
  const fileIndex = nextIndex++;
  const names = Object.keys(streams);
  const record: FileRecord = {
    fileIndex, path: filePath, kind: 'regular', mode: 0o644, mtimeNs: '1700000000000000000', size: null, linkTarget: null, seen: false, winAttributes: 0,
    agent: { name: 'filesystem', version: null, abi: 2 },
    streams: names.map((name, index) => ({ index, type: 'data', name, sizeHint: null, rawRestorable: true })),
  };
  const events: FileEvent[] = [{ kind: 'file', file: record }];
  names.forEach((name, streamIndex) => {
    let bytes = 0;
    streams[name]!.forEach((piece, chunkIndex) => {
      const data = Buffer.from(piece);
      bytes += data.length;
      events.push({ kind: 'chunk', prefix: { fileIndex, streamIndex, chunkIndex, plainLength: data.length }, data });
    });
    events.push({ kind: 'streamEnd', end: { fileIndex, streamIndex, chunks: streams[name]!.length, bytes, sha256: '' } });
  });
  events.push({ kind: 'fileEnd', end: { fileIndex, status, error: status === 'ok' ? null : 'the agent broke off' } as never });
  return { record, events };
}

/** A restorer writing through the filesystem agent into `target`; its log lines land in `logs`. */
async function restorerInto(target: string, raw = false, include: ((p: string) => boolean) | null = null) {
  const logs: string[] = [];
  const agent = createFilesystemAgent();
  const runs = new Map<string, RestoreRun>();
  const runFor = async (name: string) => {
    let run = runs.get(name);
    if (!run) {
      run = await agent.restore({ jobName: 'unit', jobId: 1, options: {}, filesetCheck: () => true, log: (l, m) => void logs.push(`${l}: ${m}`), isCancelled: () => false, target, sourceAbi: 2, sourceAgentVersion: null });
      runs.set(name, run);
    }
    return run;
  };
  const restorer = new FileRestorer({ runFor, raw, include, log: (level, message) => void logs.push(`${level}: ${message}`) });
  const feed = async (events: FileEvent[], selected: (i: number) => boolean = () => true) => {
    for (const event of events) await restorer.event(event, selected);
  };
  const finish = async () => {
    for (const run of runs.values()) await run.finish();
    for (const run of runs.values()) await run.close();
  };
  return { restorer, feed, finish, logs, runs };
}

describe('the restorer of files (jobs/restore/file-restorer)', () => {
  it('writes a file through its agent, chunk by chunk, and counts it whole only at its FILE_END', async () => {
    const target = tempDir('restorer');
    const { restorer, feed, finish } = await restorerInto(target);
    const { events } = fileEvents('/data/a.txt', { data: ['hello ', 'world'] });
    await feed(events.slice(0, -1));
    expect(restorer.files).toBe(0);
    expect(existsSync(path.join(target, 'data', 'a.txt'))).toBe(false); // not whole yet: not at its name
    await feed(events.slice(-1));
    await finish();
    expect(readFileSync(path.join(target, 'data', 'a.txt'), 'utf8')).toBe('hello world');
    expect([restorer.files, restorer.bytes, restorer.skipped]).toEqual([1, 11, 0]);
  });

  it('a file the backup could not save completely is reported and never left at its name', async () => {
    const target = tempDir('restorer');
    const { restorer, feed, finish, logs } = await restorerInto(target);
    await feed(fileEvents('/data/broken.bin', { data: ['part of it'] }, 'failed').events);
    await feed(fileEvents('/data/good.bin', { data: ['all of it'] }).events);
    await finish();
    expect(existsSync(path.join(target, 'data', 'broken.bin'))).toBe(false);
    expect(readFileSync(path.join(target, 'data', 'good.bin'), 'utf8')).toBe('all of it');
    expect(logs.join('\n')).toMatch(/\/data\/broken\.bin was not saved completely \(the agent broke off\); not restored/);
    expect(restorer.files).toBe(1);
  });

  it('skips what is not selected (a later version, an --include miss) without writing a byte of it', async () => {
    const target = tempDir('restorer');
    const { restorer, feed, finish } = await restorerInto(target, false, (p) => p.startsWith('/keep/'));
    const old = fileEvents('/keep/old.txt', { data: ['superseded'] });
    await feed(old.events, (i) => i !== old.record.fileIndex);
    await feed(fileEvents('/other/x.txt', { data: ['not included'] }).events);
    await feed(fileEvents('/keep/new.txt', { data: ['kept'] }).events);
    await finish();
    expect(readdirSync(target)).toEqual(['keep']);
    expect(readdirSync(path.join(target, 'keep'))).toEqual(['new.txt']);
    expect([restorer.files, restorer.skipped, restorer.bytes]).toEqual([1, 2, 4]);
  });

  it('raw: each stream is its own plain file, an empty one too, named as rawPath says', async () => {
    const target = tempDir('restorer');
    const { restorer, feed, finish, runs } = await restorerInto(target, true);
    const { record, events } = fileEvents('/@exchange/SG1/DB1.edb', { data: ['pages'], log: ['log ', 'records'], empty: [] });
    await feed(events);
    await finish();
    expect([...runs.keys()]).toEqual([RAW_RUN]);
    expect(record.streams.map((_s, i) => rawPath(record, i))).toEqual(['/@exchange/SG1/DB1.edb.data', '/@exchange/SG1/DB1.edb.log', '/@exchange/SG1/DB1.edb.empty']);
    const dir = path.join(target, '@exchange', 'SG1');
    expect(readdirSync(dir).sort()).toEqual(['DB1.edb.data', 'DB1.edb.empty', 'DB1.edb.log']);
    expect(readFileSync(path.join(dir, 'DB1.edb.log'), 'utf8')).toBe('log records');
    expect(readFileSync(path.join(dir, 'DB1.edb.empty'), 'utf8')).toBe('');
    expect(restorer.files).toBe(1);
  });

  it('abort() in the middle of a file discards it: nothing at its name', async () => {
    const target = tempDir('restorer');
    const { restorer, feed, finish } = await restorerInto(target);
    await feed(fileEvents('/data/first.txt', { data: ['done'] }).events);
    await feed(fileEvents('/data/torn.txt', { data: ['half', 'of it'] }).events.slice(0, 2));
    await restorer.abort();
    await finish();
    expect(readdirSync(path.join(target, 'data'))).toEqual(['first.txt']);
  });

  it('a path the target refuses (a link planted in it) fails that file only; the next is restored', async () => {
    const target = tempDir('restorer');
    const outside = tempDir('restorer-outside');
    mkdirSync(target, { recursive: true });
    symlinkSync(outside, path.join(target, 'planted'));
    const { restorer, feed, finish, logs } = await restorerInto(target);
    await feed(fileEvents('/planted/escape.txt', { data: ['must not land outside'] }).events);
    await feed(fileEvents('/data/fine.txt', { data: ['fine'] }).events);
    await finish();
    expect(readdirSync(outside)).toEqual([]);
    expect(readFileSync(path.join(target, 'data', 'fine.txt'), 'utf8')).toBe('fine');
    expect([restorer.files, restorer.skipped]).toEqual([1, 1]);
    expect(logs.some((l) => l.startsWith('error: ') && l.includes('planted'))).toBe(true);
  });
});
