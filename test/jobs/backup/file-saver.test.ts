/**
 * The saver of one file, on a real session in real volumes, read back as restore reads it: a small
 * file goes whole into one FILE_WHOLE record, a larger one is streamed in chunks, a small file that
 * grew past what it declared is streamed with every byte kept, and a file that breaks off or was
 * refused throws with its FILE record written (so the job can end it as failed).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCompression } from '../../../src/pipeline/codecs.js';
import { FileSaver, type BackupProgress, type SavedFile } from '../../../src/jobs/backup/file-saver.js';
import { WHOLE_FILE_LIMIT } from '../../../src/jobs/backup/small-files.js';
import type { SessionEvent } from '../../../src/sink/session-reader.js';
import { tempDir } from '../../helpers/native.js';
import { describedFile, filesystemAgent, filesystemRun } from './agent-files.js';
import { openStageSession, type StageSession } from './stage-session.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** The bytes of each stream of each file in a session read back, by "path/stream". */
function restoredStreams(events: SessionEvent[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let file = '';
  for (const e of events) {
    if (e.kind === 'file') file = e.file.path;
    if (e.kind === 'chunk') {
      const key = `${file}/${e.prefix.streamIndex}`;
      out.set(key, Buffer.concat([out.get(key) ?? Buffer.alloc(0), e.data!]));
    }
  }
  return out;
}

async function endSession(session: StageSession, files: number, bytes: number): Promise<void> {
  await session.writer.end({ status: 'committed', endedNs: '1', files, failedFiles: 0, bytes, error: null }, null);
}

/** The records one file added to the session: those after SESSION_START and SESSION_INFO. */
async function fileRecords(session: StageSession): Promise<string[]> {
  return (await session.recordTypes()).slice(2);
}

describe('file saver', () => {
  it('saves each file the filesystem agent hands out, small ones whole and larger ones in chunks, byte for byte', async () => {
    const tree = tempDir('saver-tree');
    const contents: Record<string, Buffer> = {
      'empty.txt': Buffer.alloc(0),
      'small.txt': Buffer.from('a small file\n'),
      'limit.bin': randomBytes(WHOLE_FILE_LIMIT), // exactly the limit: still whole
      'over.bin': randomBytes(WHOLE_FILE_LIMIT + 1), // one byte more: streamed
      'large.bin': randomBytes(2.5 * 1024 * 1024), // three chunks of at most 1 MiB
    };
    mkdirSync(path.join(tree, 'd'));
    for (const [name, data] of Object.entries(contents)) writeFileSync(path.join(tree, 'd', name), data);
    const session = await openStageSession({ agent: filesystemAgent });
    const progress: BackupProgress[] = [];
    const saver = new FileSaver(session.writer, filesystemAgent, parseCompression('none'), (p) => progress.push(p));
    const run = await filesystemRun(path.join(tree, 'd'));
    const saved = new Map<string, SavedFile>();
    const kinds: string[] = [];
    try {
      let index = 0;
      for await (const file of run.files) {
        const before = (await session.recordTypes()).length;
        const result = await saver.save(file, index);
        if (!result.whole) await session.writer.fileEnd(file.path, { fileIndex: index, status: 'ok', error: null });
        saved.set(path.basename(file.path), result);
        kinds.push(`${path.basename(file.path)}: ${(await session.recordTypes()).slice(before).join(' ')}`);
        index++;
      }
      await endSession(session, index, saver.bytes);
      expect(kinds).toEqual([
        'd: FILE_WHOLE',
        'empty.txt: FILE_WHOLE',
        'large.bin: FILE CHUNK CHUNK CHUNK STREAM_END FILE_END',
        'limit.bin: FILE_WHOLE',
        'over.bin: FILE CHUNK STREAM_END FILE_END',
        'small.txt: FILE_WHOLE',
      ]);
      const total = Object.values(contents).reduce((sum, d) => sum + d.length, 0);
      expect(saver.bytes).toBe(total);
      const restored = restoredStreams(await session.events());
      for (const [name, data] of Object.entries(contents)) {
        const row = saved.get(name)!.row;
        expect(row).toMatchObject({ status: 'ok', error: null, agent: 'filesystem', kind: 'regular', size: data.length });
        expect(row.streams).toEqual([{ index: 0, name: 'data', type: 'data', rawRestorable: false, bytes: data.length, sha256: sha256(data) }]);
        if (data.length > 0) expect(restored.get(`${row.path}/0`)?.equals(data), name).toBe(true);
      }
      // The streamed files report their progress chunk by chunk, as the job's file number.
      const large = progress.filter((p) => p.path.endsWith('large.bin'));
      expect(large.map((p) => p.files)).toEqual([3, 3, 3]);
      expect(large.at(-1)!.bytes - large[0]!.bytes).toBe(1.5 * 1024 * 1024);
    } finally {
      await run.close();
      await saver.close();
      await session.close();
    }
  });

  it('compresses a small file whole and a streamed one chunk by chunk, and reads both back', async () => {
    const session = await openStageSession({ agent: filesystemAgent, compression: 'zstd:3' });
    const saver = new FileSaver(session.writer, filesystemAgent, parseCompression('zstd:3'));
    const text = Buffer.from('the same line of text, again and again\n'.repeat(40_000)); // ~1.5 MiB
    const small = text.subarray(0, 1000);
    try {
      const whole = await saver.save(describedFile('/small.txt', [{ sizeHint: small.length, pieces: [small] }]), 0);
      const streamed = await saver.save(describedFile('/text.txt', [{ sizeHint: null, pieces: [text.subarray(0, 700_000), text.subarray(700_000)] }]), 1);
      await session.writer.fileEnd('/text.txt', { fileIndex: 1, status: 'ok', error: null });
      await endSession(session, 2, saver.bytes);
      expect(whole.whole).toBe(true);
      expect(streamed.whole).toBe(false);
      expect(session.writer.storedBytes).toBeLessThan(text.length / 10);
      const events = await session.events();
      expect(events.filter((e) => e.kind === 'chunk').map((e) => (e.kind === 'chunk' ? e.prefix.plainLength : 0))).toEqual([1000, 1024 * 1024, text.length - 1024 * 1024]);
      const restored = restoredStreams(events);
      expect(restored.get('/small.txt/0')?.equals(small)).toBe(true);
      expect(restored.get('/text.txt/0')?.equals(text)).toBe(true);
    } finally {
      await saver.close();
      await session.close();
    }
  });

  it('streams a small file that grew past the size it declared, losing none of the bytes read before', async () => {
    const session = await openStageSession({ agent: filesystemAgent });
    const saver = new FileSaver(session.writer, filesystemAgent, parseCompression('none'));
    const first = randomBytes(10);
    const grown = [randomBytes(40_000), randomBytes(40_000), randomBytes(5)]; // declared 100 bytes, delivers 80,005
    try {
      const file = describedFile('/grew.log', [{ sizeHint: 10, pieces: [first] }, { sizeHint: 90, pieces: grown }]);
      const saved = await saver.save(file, 0);
      await session.writer.fileEnd(file.path, { fileIndex: 0, status: 'ok', error: null });
      await endSession(session, 1, saver.bytes);
      expect(saved.whole).toBe(false);
      expect(await fileRecords(session)).toEqual(['FILE', 'CHUNK', 'STREAM_END', 'CHUNK', 'STREAM_END', 'FILE_END', 'SESSION_END']);
      const restored = restoredStreams(await session.events());
      expect(restored.get('/grew.log/0')?.equals(first)).toBe(true);
      expect(restored.get('/grew.log/1')?.equals(Buffer.concat(grown))).toBe(true);
      expect(saved.row.streams.map((s) => s.bytes)).toEqual([10, 80_005]);
    } finally {
      await saver.close();
      await session.close();
    }
  });

  it('fails a file whose stream breaks off, naming the file and the stream, after writing its FILE record', async () => {
    const session = await openStageSession({ agent: filesystemAgent });
    const saver = new FileSaver(session.writer, filesystemAgent, parseCompression('none'));
    try {
      const large = describedFile('/db.edb', [{ sizeHint: null, pieces: [randomBytes(300_000), new Error('EIO: i/o error, read')] }]);
      await expect(saver.save(large, 0)).rejects.toMatchObject({ code: 'E_FILE_FAILED', message: '/db.edb: stream "data" broke off: EIO: i/o error, read' });
      const small = describedFile('/small.cfg', [{ sizeHint: 20, pieces: [new Error('EACCES: permission denied')] }]);
      await expect(saver.save(small, 1)).rejects.toMatchObject({ code: 'E_FILE_FAILED', message: '/small.cfg: reading it broke off: EACCES: permission denied' });
      // Each FILE record is there for the failed FILE_END the job writes; no chunk was complete.
      expect(await fileRecords(session)).toEqual(['FILE', 'FILE']);
    } finally {
      await saver.close();
      await session.close();
    }
  });

  it('refuses a file agentfd refused (E_FILE_REFUSED with the reason) and reads none of its data', async () => {
    const session = await openStageSession({ agent: filesystemAgent });
    const saver = new FileSaver(session.writer, filesystemAgent, parseCompression('none'));
    let read = false;
    try {
      const file = describedFile('/@faulty/x', [{ sizeHint: 4, pieces: [Buffer.from('data')] }], 'stream 0 has unknown type 77');
      file.streams[0]!.data = async function* () {
        read = true;
        yield Buffer.from('data');
      };
      await expect(saver.save(file, 0)).rejects.toMatchObject({ code: 'E_FILE_REFUSED', message: 'stream 0 has unknown type 77' });
      expect(read).toBe(false);
      expect(await fileRecords(session)).toEqual(['FILE']);
    } finally {
      await saver.close();
      await session.close();
    }
  });
});
