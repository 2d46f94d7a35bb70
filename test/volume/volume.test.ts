/**
 * Volumes: records written across rotation read back identically, a set is continued after a
 * reopen, a torn tail is reported and cut off, any altered byte is caught, arbitrary bytes never
 * crash the reader, and a full disk fails the writer with a message a person can act on.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentfdError } from '../../src/errors.js';
import {
  decodeRecordHeader,
  encodeRecordHeader,
  findVolumes,
  MAX_RECORD_PAYLOAD,
  readRecords,
  readVolumeHeader,
  recordAad,
  RecordType,
  VolumeWriter,
  type AppendResult,
  type VolumeRecord,
} from '../../src/volume/index.js';

const MiB = 1024 * 1024;
const VERSION = '0.1.0';
const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentfd-volume-'));
  dirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function openWriter(dir: string, maxVolumeBytes = 3 * MiB): VolumeWriter {
  return VolumeWriter.open({ dir, set: 'agentfd', maxVolumeBytes, agentfdVersion: VERSION });
}

async function readAll(file: string): Promise<VolumeRecord[]> {
  const records: VolumeRecord[] = [];
  for await (const record of readRecords(file)) records.push(record);
  return records;
}

/** The records read before the reader threw, and what it threw (null when it did not). */
async function readUntilError(file: string, options?: { verifyHeader?: boolean }): Promise<{ records: VolumeRecord[]; error: unknown }> {
  const records: VolumeRecord[] = [];
  try {
    for await (const record of readRecords(file, options)) records.push(record);
    return { records, error: null };
  } catch (error) {
    return { records, error };
  }
}

async function corruptError(file: string): Promise<AgentfdError> {
  const { error } = await readUntilError(file);
  expect(error).toBeInstanceOf(AgentfdError);
  expect((error as AgentfdError).code).toBe('E_VOLUME_CORRUPT');
  return error as AgentfdError;
}

function json(payload: Buffer): Record<string, unknown> {
  return JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
}

interface Written {
  type: number;
  codec: number;
  cipher: number;
  flags: number;
  session: number;
  seq: number;
  payload: Buffer;
  at: AppendResult;
}

async function appendAll(writer: VolumeWriter, specs: Omit<Written, 'at'>[]): Promise<Written[]> {
  const written: Written[] = [];
  for (const spec of specs) written.push({ ...spec, at: await writer.append(spec) });
  return written;
}

function spec(type: number, size: number, seq: number, session = 7): Omit<Written, 'at'> {
  return { type, codec: seq % 3, cipher: seq % 2, flags: seq & 0xff, session, seq, payload: randomBytes(size) };
}

describe('volume format', () => {
  it('encodes and decodes a record header, and gives the AAD of its first 16 bytes', () => {
    const payload = Buffer.from('hello');
    const header = encodeRecordHeader({ type: RecordType.FILE, codec: 2, cipher: 1, flags: 3, session: 42, seq: 9 }, payload);
    expect(header.length).toBe(24);
    expect(header.subarray(0, 4).toString('ascii')).toBe('AFR1');
    expect(decodeRecordHeader(header)).toMatchObject({ type: 4, codec: 2, cipher: 1, flags: 3, session: 42, seq: 9, length: 5 });
    expect(recordAad(header)).toEqual(header.subarray(0, 16));
    expect(recordAad({ type: RecordType.FILE, codec: 2, cipher: 1, flags: 3, session: 42, seq: 9 })).toEqual(header.subarray(0, 16));
  });
});

describe('VolumeWriter and readRecords', () => {
  it('reads back every record written across rotation, at the offsets append returned', async () => {
    const dir = tempDir();
    const max = 3 * MiB;
    const writer = openWriter(dir, max);
    expect(writer.recovered).toBeNull();
    const types = [2, 3, 4, 5, 6, 7, 8, 9, 11, 200];
    const sizes = [0, 1, MiB, 0, 1, 17, 4096, MiB, 300_000, 65_536, 1, 0, 900_000, MiB + 5, 24, 3];
    const specs = Array.from({ length: 48 }, (_, i) => spec(types[i % types.length]!, sizes[i % sizes.length]!, i, 1 + (i % 4)));
    const written = await appendAll(writer, specs.slice(0, 40));
    // Appends that are not awaited one by one are still written in call order, at the offsets returned.
    const rest = specs.slice(40);
    const results = await Promise.all(rest.map((s) => writer.append(s)));
    rest.forEach((s, i) => written.push({ ...s, at: results[i]! }));
    await writer.close({ final: true });

    const volumes = await findVolumes(dir, 'agentfd');
    expect(volumes.length).toBeGreaterThanOrEqual(4);
    expect(volumes.map((v) => path.basename(v))).toEqual(volumes.map((_, i) => `agentfd-${String(i + 1).padStart(4, '0')}.afv`));

    const data: VolumeRecord[] = [];
    for (const [index, file] of volumes.entries()) {
      const records = await readAll(file);
      const label = path.basename(file, '.afv');
      const first = records[0]!;
      expect(first).toMatchObject({ type: RecordType.LABEL, session: 0, seq: 0, offset: 4096, volume: label });
      expect(json(first.payload)).toMatchObject({ format: 1, label, set: 'agentfd', sequence: index + 1, agentfdVersion: VERSION });
      const last = records[records.length - 1]!;
      expect(last.type).toBe(RecordType.VOLUME_END);
      const nextFile = volumes[index + 1];
      expect(json(last.payload)).toEqual({ next: nextFile ? path.basename(nextFile, '.afv') : null, records: records.length - 1, bytes: last.offset });
      // Volumes stay within maxVolumeBytes (no record here is larger than a volume).
      expect(statSync(file).size).toBeLessThanOrEqual(max);
      data.push(...records.slice(1, -1));

      const head = readFileSync(file).subarray(0, 4096);
      const text = head.toString('utf8').replace(/\0+$/, '');
      expect(head.subarray(Buffer.byteLength(text)).every((b) => b === 0)).toBe(true);
      expect(text).toMatch(/^agentfd volume, format 1\nlabel: agentfd-\d{4}\nvolume set: agentfd, volume \d+\ncreated: \d{4}-\d\d-\d\dT[\d:.]+Z\nwritten by: agentfd 0\.1\.0\n/);
      expect(text).toContain('agentfd restore --job-id ID --to DIR');
      expect(text).toContain('records start at byte 4096');
      const header = await readVolumeHeader(file);
      expect(header.text).toBe(text);
      expect(header.label.label).toBe(label);
    }

    expect(data.length).toBe(written.length);
    data.forEach((record, i) => {
      const w = written[i]!;
      expect({ type: record.type, codec: record.codec, cipher: record.cipher, flags: record.flags, session: record.session, seq: record.seq }).toEqual({
        type: w.type, codec: w.codec, cipher: w.cipher, flags: w.flags, session: w.session, seq: w.seq,
      });
      expect(record.payload.equals(w.payload)).toBe(true);
      expect({ volume: record.volume, path: record.path, offset: record.offset }).toEqual({ volume: w.at.volume, path: w.at.path, offset: w.at.offset });
      expect(w.at.length).toBe(24 + w.payload.length);
      expect(record.header.length).toBe(24);
    });
    expect(data.some((r) => r.type === 200)).toBe(true);
  });

  it('writes a record larger than a volume alone in a fresh volume', async () => {
    const dir = tempDir();
    const writer = openWriter(dir, 64 * 1024);
    const small = await writer.append({ type: RecordType.STATE, session: 1, seq: 0, payload: Buffer.alloc(100) });
    const big = await writer.append({ type: RecordType.CHUNK, session: 1, seq: 1, payload: randomBytes(200_000) });
    const after = await writer.append({ type: RecordType.STATE, session: 1, seq: 2, payload: Buffer.alloc(100) });
    await writer.close({ final: true });
    expect([small.volume, big.volume, after.volume]).toEqual(['agentfd-0001', 'agentfd-0002', 'agentfd-0003']);
    const middle = await readAll(big.path);
    expect(middle.map((r) => r.type)).toEqual([RecordType.LABEL, RecordType.CHUNK, RecordType.VOLUME_END]);
  });

  it('continues the last volume after a reopen, and starts a new one after a final close', async () => {
    const dir = tempDir();
    const first = openWriter(dir);
    const a = await appendAll(first, [spec(RecordType.SESSION_START, 50, 0), spec(RecordType.CHUNK, 5000, 1), spec(RecordType.STATE, 10, 2)]);
    await first.close({ final: false });
    const file = a[0]!.at.path;
    const sizeAfterFirst = statSync(file).size;

    const second = openWriter(dir);
    expect(second.recovered).toBeNull();
    expect(second.volume.path).toBe(file);
    const b = await appendAll(second, [spec(RecordType.CHUNK, 70, 3), spec(RecordType.SESSION_END, 0, 4)]);
    expect(b[0]!.at.offset).toBe(sizeAfterFirst);
    expect(b[0]!.at.path).toBe(file);
    await second.close({ final: true });

    const third = openWriter(dir);
    expect(third.volume.path).toBe(path.join(dir, 'agentfd-0002.afv'));
    const c = await appendAll(third, [spec(RecordType.SESSION_START, 5, 0, 8)]);
    await third.close({ final: false });
    expect(c[0]!.at.volume).toBe('agentfd-0002');

    const one = await readAll(file);
    expect(one.map((r) => r.type)).toEqual([1, 2, 5, 8, 5, 9, 10]);
    expect(one.slice(1, -1).map((r) => r.offset)).toEqual([...a, ...b].map((w) => w.at.offset));
    expect(json(one[one.length - 1]!.payload)).toMatchObject({ next: null });
    // The last volume was closed without final: it does not end with VOLUME_END.
    const two = await readAll(path.join(dir, 'agentfd-0002.afv'));
    expect(two.map((r) => r.type)).toEqual([RecordType.LABEL, RecordType.SESSION_START]);

    // Opening and closing without appending creates nothing.
    const empty = openWriter(dir);
    expect(empty.volume.path).toBe(path.join(dir, 'agentfd-0002.afv'));
    await empty.close({ final: false });
    const fresh = tempDir();
    await openWriter(fresh).close({ final: true });
    expect(await findVolumes(fresh)).toEqual([]);
  });

  it('reports a torn tail precisely, and open() cuts it off and appends after the last good record', async () => {
    const dir = tempDir();
    const writer = openWriter(dir);
    const written = await appendAll(writer, [spec(RecordType.SESSION_START, 100, 0), spec(RecordType.FILE, 5000, 1), spec(RecordType.CHUNK, 200_000, 2)]);
    await writer.close({ final: false });
    const file = written[0]!.at.path;
    const last = written[2]!.at;
    truncateSync(file, last.offset + 24 + 1000);

    const { records, error } = await readUntilError(file);
    expect(records.map((r) => r.type)).toEqual([RecordType.LABEL, RecordType.SESSION_START, RecordType.FILE]);
    expect(error).toBeInstanceOf(AgentfdError);
    expect((error as AgentfdError).code).toBe('E_VOLUME_CORRUPT');
    const message = (error as Error).message;
    expect(message).toContain(file);
    expect(message).toContain(`at byte ${last.offset} (record 4, a CHUNK record)`);
    expect(message).toContain('the volume is truncated: the last record is incomplete');
    expect(message).toContain('the file ends 1024 bytes into it');
    expect(message).toContain(`take ${24 + 200_000} bytes`);

    const reopened = openWriter(dir);
    expect(reopened.recovered).toEqual({ volume: 'agentfd-0001', path: file, truncatedBytes: 1024 });
    expect(statSync(file).size).toBe(last.offset);
    const added = await appendAll(reopened, [spec(RecordType.CHUNK, 300, 3)]);
    expect(added[0]!.at.offset).toBe(last.offset);
    await reopened.close({ final: true });
    const after = await readAll(file);
    expect(after.map((r) => r.type)).toEqual([RecordType.LABEL, RecordType.SESSION_START, RecordType.FILE, RecordType.CHUNK, RecordType.VOLUME_END]);
    expect(after[3]!.payload.equals(added[0]!.payload)).toBe(true);
    expect(after[2]!.payload.equals(written[1]!.payload)).toBe(true);
  });

  it('treats a cut header, a last record failing its CRC and a NUL tail as torn; leaves damage elsewhere alone', async () => {
    async function volumeWith(count: number): Promise<{ dir: string; file: string; at: AppendResult[] }> {
      const dir = tempDir();
      const writer = openWriter(dir);
      const written = await appendAll(writer, Array.from({ length: count }, (_, i) => spec(RecordType.CHUNK, 1000 + i, i)));
      await writer.close({ final: false });
      return { dir, file: written[0]!.at.path, at: written.map((w) => w.at) };
    }

    // Cut 10 bytes into the last header.
    const cutHeader = await volumeWith(3);
    truncateSync(cutHeader.file, cutHeader.at[2]!.offset + 10);
    const error = await corruptError(cutHeader.file);
    expect(error.message).toContain(`at byte ${cutHeader.at[2]!.offset} (record 4, a CHUNK record): the volume is truncated`);
    expect(error.message).toContain('the file ends 10 bytes into it');
    expect(openWriter(cutHeader.dir).recovered?.truncatedBytes).toBe(10);

    // The last record complete but failing its CRC.
    const badCrc = await volumeWith(3);
    const bytes = readFileSync(badCrc.file);
    bytes[bytes.length - 1]! ^= 0x55;
    writeFileSync(badCrc.file, bytes);
    expect((await corruptError(badCrc.file)).message).toMatch(/bad CRC \(expected 0x[0-9a-f]{8} as stored in the header, actual 0x[0-9a-f]{8}\)/);
    const reopened = openWriter(badCrc.dir);
    expect(reopened.recovered).toMatchObject({ truncatedBytes: 24 + 1002 });
    await reopened.close({ final: false });
    expect((await readAll(badCrc.file)).length).toBe(3);

    // NUL bytes after the last record (a file system that grew the file without its data).
    const zeros = await volumeWith(2);
    appendFileSync(zeros.file, Buffer.alloc(5000));
    expect(openWriter(zeros.dir).recovered).toMatchObject({ truncatedBytes: 5000 });
    expect((await readAll(zeros.file)).length).toBe(3);

    // Damage in the middle, data after it: the volume is left as it is and the next one started.
    const middle = await volumeWith(3);
    const original = readFileSync(middle.file);
    const damaged = Buffer.from(original);
    damaged[middle.at[1]!.offset]! ^= 0xff;
    writeFileSync(middle.file, damaged);
    const writer = openWriter(middle.dir);
    expect(writer.recovered).toBeNull();
    expect(writer.abandoned).toEqual({ path: middle.file, reason: expect.stringContaining(`byte ${middle.at[1]!.offset}`) as unknown as string });
    expect(writer.volume.path).toBe(path.join(middle.dir, 'agentfd-0002.afv'));
    expect(readFileSync(middle.file).equals(damaged)).toBe(true);
  });

  it('fails reading at the record (or the text header) whose byte was flipped', async () => {
    const dir = tempDir();
    const writer = openWriter(dir);
    const written = await appendAll(writer, [spec(RecordType.SESSION_START, 300, 0), spec(RecordType.CHUNK, 20_000, 1), spec(RecordType.SESSION_END, 40, 2)]);
    await writer.close({ final: true });
    const file = written[0]!.at.path;
    const original = readFileSync(file);
    const chunk = written[1]!.at.offset;
    const end = written[2]!.at.offset + written[2]!.at.length; // the VOLUME_END record
    const headerPositions = [0, 5, 23, 30, 60, 200, 700, 1500, 3000, 4000, 4095];
    const recordPositions: [number, number][] = [
      // [position flipped, offset of the record that must be named]
      [4096, 4096], [4100, 4096], [4105, 4096], [4112, 4096], [4117, 4096], [4119, 4096], [4130, 4096], [written[0]!.at.offset - 1, 4096],
      [chunk, chunk], [chunk + 4, chunk], [chunk + 7, chunk], [chunk + 9, chunk], [chunk + 13, chunk], [chunk + 16, chunk], [chunk + 18, chunk],
      [chunk + 19, chunk], [chunk + 21, chunk], [chunk + 24, chunk], [chunk + 10_000, chunk], [chunk + 24 + 19_999, chunk],
      [end + 2, end], [original.length - 1, end],
    ];
    const copy = path.join(dir, 'flipped.afv');
    for (const [positions, expectWhere] of [
      ...headerPositions.map((p) => [p, 'text header'] as const),
      ...recordPositions.map(([p, at]) => [p, `at byte ${at} `] as const),
    ]) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bytes = Buffer.from(original);
        bytes[positions]! ^= mask;
        writeFileSync(copy, bytes);
        const error = await corruptError(copy);
        expect(error.message, `flip 0x${mask.toString(16)} at byte ${positions}`).toContain(expectWhere);
        expect(error.message).toContain(copy);
      }
    }
  });

  it('uses labelFor for labels and VOLUME_END, and refuses a label that would break the text header', async () => {
    const dir = tempDir();
    const writer = VolumeWriter.open({ dir, set: 'weekly', maxVolumeBytes: 16 * 1024, agentfdVersion: VERSION, labelFor: (n) => `TAPE ${n}` });
    const first = await writer.append({ type: RecordType.CHUNK, session: 2, seq: 0, payload: Buffer.alloc(10_000) });
    const second = await writer.append({ type: RecordType.CHUNK, session: 2, seq: 1, payload: Buffer.alloc(10_000) });
    await writer.close({ final: true });
    expect([first.volume, second.volume]).toEqual(['TAPE 1', 'TAPE 2']);
    expect(path.basename(second.path)).toBe('weekly-0002.afv');
    const one = await readAll(first.path);
    expect(json(one[one.length - 1]!.payload)).toMatchObject({ next: 'TAPE 2' });
    expect((await readVolumeHeader(second.path)).text).toContain('label: TAPE 2\nvolume set: weekly, volume 2\n');
    expect(() => VolumeWriter.open({ dir: tempDir(), set: 'x', maxVolumeBytes: MiB, agentfdVersion: VERSION, labelFor: () => 'a\nb' })).toThrow(
      expect.objectContaining({ code: 'E_VOLUME_OPTIONS' }),
    );
    expect(() => VolumeWriter.open({ dir: tempDir(), set: '../x', maxVolumeBytes: MiB, agentfdVersion: VERSION })).toThrow(/volume set name/);
  });

  it('writes the repository id into the LABEL and text header when given, and reads volumes without one as before', async () => {
    const withId = tempDir();
    const id = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
    const writer = VolumeWriter.open({ dir: withId, set: 'agentfd', maxVolumeBytes: 3 * MiB, agentfdVersion: VERSION, repository: id });
    await writer.append(spec(RecordType.STATE, 10, 0));
    await writer.close({ final: false });
    const file = path.join(withId, 'agentfd-0001.afv');
    expect((await readVolumeHeader(file)).label.repository).toBe(id);
    expect((await readVolumeHeader(file)).text).toContain(`written by: agentfd ${VERSION}\nrepository: ${id}\n`);
    expect((await readAll(file)).length).toBe(2);
    // A volume from before repository ids: the same reader, no id.
    const without = tempDir();
    const old = openWriter(without);
    await old.append(spec(RecordType.STATE, 10, 0));
    await old.close({ final: false });
    const header = await readVolumeHeader(path.join(without, 'agentfd-0001.afv'));
    expect(header.label.repository).toBeUndefined();
    expect(header.text).not.toContain('repository:');
    expect((await readAll(path.join(without, 'agentfd-0001.afv'))).length).toBe(2);
  });

  it('says a volume in a newer format needs a newer agentfd', async () => {
    const dir = tempDir();
    const writer = openWriter(dir);
    const at = await writer.append({ type: RecordType.STATE, session: 1, seq: 0, payload: Buffer.from('x') });
    await writer.close({ final: true });
    // What a format-2 agentfd might write: another first line and a LABEL this reader cannot frame.
    const bytes = readFileSync(at.path);
    bytes.write('agentfd volume, format 2\n', 0, 'utf8');
    bytes.write('AFR2', 4096, 'ascii');
    writeFileSync(at.path, bytes);
    const { error } = await readUntilError(at.path);
    expect(error).toMatchObject({ code: 'E_VOLUME_FORMAT' });
    expect((error as Error).message).toMatch(/volume format 2, which this agentfd \(format 1\) cannot read: .*upgrade agentfd/);
  });

  it('names the missing volume', async () => {
    const file = path.join(tempDir(), 'agentfd-0009.afv');
    const { error } = await readUntilError(file);
    expect(error).toMatchObject({ code: 'E_VOLUME_MISSING' });
    expect((error as Error).message).toMatch(/^volume .*agentfd-0009\.afv is missing: .*restore it from where volumes are kept/i);
    await expect(readVolumeHeader(file)).rejects.toMatchObject({ code: 'E_VOLUME_MISSING' });
  });
});

describe('never anything but an AgentfdError on damaged input, and never a committed record lost', () => {
  /**
   * Reading every record (with and without the header check) and opening a writer on the file and
   * appending. `committed`: the records (whole, header and payload) of sessions that finished before
   * the damage, and those sessions: whatever the damage, every one of them still in the damaged
   * file is there, byte for byte at the same place, after the writer appended.
   */
  async function exercise(dir: string, file: string, committed?: { records: Buffer[]; sessions: number[] }): Promise<void> {
    for (const verifyHeader of [true, false]) {
      const { error } = await readUntilError(file, { verifyHeader });
      if (error !== null && !(error instanceof AgentfdError)) throw error;
    }
    try {
      await readVolumeHeader(file);
    } catch (error) {
      if (!(error instanceof AgentfdError)) throw error;
    }
    const damaged = readFileSync(file);
    const survivors = (committed?.records ?? [])
      .map((bytes) => ({ bytes, at: damaged.indexOf(bytes) }))
      .filter((r) => r.at !== -1);
    try {
      const writer = VolumeWriter.open({ dir, set: 'fuzz', maxVolumeBytes: 64 * 1024, agentfdVersion: VERSION, protectedSessions: () => committed?.sessions ?? [] });
      await writer.append({ type: RecordType.STATE, session: 1, seq: 1, payload: Buffer.from('after') });
      await writer.close({ final: false });
      // Whatever open() decided, the set is readable up to its damage and the new record is there.
      const volumes = await findVolumes(dir, 'fuzz');
      const last = await readAll(volumes[volumes.length - 1]!);
      if (last[last.length - 1]!.payload.toString() !== 'after') throw new Error('the appended record is not last');
    } catch (error) {
      if (!(error instanceof AgentfdError)) throw error;
    }
    const after = readFileSync(file);
    for (const { bytes, at } of survivors) {
      expect(after.subarray(at, at + bytes.length).equals(bytes), `a committed record at byte ${at} was cut or changed`).toBe(true);
    }
  }

  it('reads arbitrary bytes (alone or after a valid text header) without crashing', { timeout: 30_000 }, async () => {
    const base = tempDir();
    const startWriter = VolumeWriter.open({ dir: path.join(base, 'seed'), set: 'fuzz', maxVolumeBytes: 64 * 1024, agentfdVersion: VERSION });
    await startWriter.append({ type: RecordType.STATE, session: 1, seq: 0, payload: Buffer.from('x') });
    await startWriter.close({ final: false });
    const validStart = readFileSync(path.join(base, 'seed', 'fuzz-0001.afv'));
    const labelEnd = validStart.length - 25; // the header and LABEL, without the 25-byte STATE record
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 20_000 }), fc.integer({ min: 0, max: 2 }), async (bytes, prefix) => {
        const dir = path.join(base, `case-${n++}`);
        const file = path.join(dir, 'fuzz-0001.afv');
        const head = prefix === 0 ? Buffer.alloc(0) : prefix === 1 ? validStart.subarray(0, 4096) : validStart.subarray(0, labelEnd);
        mkdirSync(dir);
        writeFileSync(file, Buffer.concat([head, bytes]));
        await exercise(dir, file);
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 200 },
    );
  });

  /** A volume of one finished session (SESSION_END last), closed or left open as a backup leaves it. */
  async function seedVolume(dir: string, final: boolean): Promise<{ bytes: Buffer; committed: { records: Buffer[]; sessions: number[] } }> {
    const writer = VolumeWriter.open({ dir, set: 'fuzz', maxVolumeBytes: 64 * 1024, agentfdVersion: VERSION });
    const placed: AppendResult[] = [];
    for (let i = 0; i < 12; i++) placed.push(await writer.append({ type: [2, 4, 5, 200][i % 4]!, session: 3, seq: i, payload: randomBytes([0, 1, 700, 3000][i % 4]!) }));
    placed.push(await writer.append({ type: RecordType.SESSION_END, session: 3, seq: 12, payload: randomBytes(90) }));
    await writer.close({ final });
    const bytes = readFileSync(path.join(dir, 'fuzz-0001.afv'));
    return { bytes, committed: { records: placed.map((p) => bytes.subarray(p.offset, p.offset + p.length)), sessions: [3] } };
  }

  it('reads a valid volume with random flips, cuts and insertions without crashing, and appending never loses a committed record', { timeout: 60_000 }, async () => {
    const base = tempDir();
    const seeds = [await seedVolume(path.join(base, 'seed-closed'), true), await seedVolume(path.join(base, 'seed-open'), false)];
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
    );
    let n = 0;
    let failures = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 1 }), async (mutations, seed) => {
        const { bytes: valid, committed } = seeds[seed]!;
        let bytes = Buffer.from(valid);
        for (const m of mutations) {
          const at = bytes.length === 0 ? 0 : m.at % bytes.length;
          if (m.kind === 'flip' && bytes.length > 0) bytes[at]! ^= m.mask;
          else if (m.kind === 'cut') bytes = bytes.subarray(0, at);
          else if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        }
        const dir = path.join(base, `case-${n++}`);
        const file = path.join(dir, 'fuzz-0001.afv');
        mkdirSync(dir);
        writeFileSync(file, bytes);
        if ((await readUntilError(file)).error) failures++;
        await exercise(dir, file, committed);
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 300 },
    );
    expect(failures).toBeGreaterThan(220); // nearly every mutation is detected
  });

  it('keeps every committed record through any single flipped bit of any record header, and of the last record', { timeout: 60_000 }, async () => {
    const base = tempDir();
    const { bytes: valid, committed } = await seedVolume(path.join(base, 'seed'), false);
    const starts = committed.records.map((r) => valid.indexOf(r));
    const positions = new Set<number>();
    // The headers of the first, a middle and the last record (its length field above all), and the
    // payload of the last record, which nothing follows.
    for (const at of [starts[0]!, starts[6]!, starts.at(-1)!]) for (let i = 0; i < 24; i++) positions.add(at + i);
    const lastStart = starts.at(-1)!;
    for (let i = 24; i < valid.length - lastStart; i += 11) positions.add(lastStart + i);
    let n = 0;
    for (const at of positions) {
      for (const bit of [0, 7]) {
        const dir = path.join(base, `flip-${n++}`);
        const file = path.join(dir, 'fuzz-0001.afv');
        mkdirSync(dir);
        const bytes = Buffer.from(valid);
        bytes[at]! ^= 1 << bit;
        writeFileSync(file, bytes);
        await exercise(dir, file, committed);
        // Nothing is cut at all: a single flip is damage, never a torn tail.
        expect(readFileSync(file).subarray(0, bytes.length).equals(bytes), `flip of bit ${bit} at byte ${at}`).toBe(true);
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

describe('write failures', () => {
  // Writes to /dev/full fail with ENOSPC on Linux: the volume file is a symlink to it. The writer
  // takes the empty (0-byte) existing file as a volume to start, so its first write hits ENOSPC.
  it.skipIf(!existsSync('/dev/full'))('reports a full disk as E_VOLUME_WRITE and stays failed', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'agentfd-0001.afv');
    symlinkSync('/dev/full', file);
    const writer = openWriter(dir);
    expect(writer.volume.path).toBe(file);
    // Small records are buffered: the append succeeds, flush hits the full disk.
    await writer.append({ type: RecordType.STATE, session: 1, seq: 0, payload: Buffer.from('small') });
    const flushed = await writer.flush().then(() => null, (error: unknown) => error);
    expect(flushed).toBeInstanceOf(AgentfdError);
    expect(flushed).toMatchObject({ code: 'E_VOLUME_WRITE' });
    const message = (flushed as Error).message;
    expect(message).toContain(`cannot write volume ${file}: disk full (ENOSPC); free space`);
    expect(message).toMatch(/the job is not recorded as complete$/);
    await expect(writer.append({ type: RecordType.STATE, session: 1, seq: 1, payload: Buffer.alloc(1) })).rejects.toBe(flushed);
    await expect(writer.sync()).rejects.toBe(flushed);
    await expect(writer.flush()).rejects.toBe(flushed);
    await expect(writer.close({ final: true })).rejects.toBe(flushed);

    // A large record is written at once, behind the caller: the next call reports the failure.
    const direct = path.join(tempDir(), 'agentfd-0001.afv');
    symlinkSync('/dev/full', direct);
    const other = openWriter(path.dirname(direct));
    await other.append({ type: RecordType.CHUNK, session: 1, seq: 0, payload: Buffer.alloc(MiB) });
    const synced = await other.sync().then(() => null, (error: unknown) => error);
    expect(synced).toMatchObject({ code: 'E_VOLUME_WRITE', message: expect.stringContaining('disk full (ENOSPC)') as unknown as string });
    await expect(other.append({ type: RecordType.STATE, session: 1, seq: 1, payload: Buffer.alloc(1) })).rejects.toBe(synced);
  });

  it('refuses a record larger than 64 MiB, and stays usable', async () => {
    const dir = tempDir();
    const writer = openWriter(dir);
    const huge = new Uint8Array(MAX_RECORD_PAYLOAD + 1); // allocated once
    await expect(writer.append({ type: RecordType.CHUNK, session: 1, seq: 0, payload: huge })).rejects.toMatchObject({
      code: 'E_VOLUME_RECORD_TOO_LARGE',
      message: expect.stringMatching(/CHUNK record of 67108865 bytes: a volume record holds at most 64 MiB/) as unknown as string,
    });
    expect(() => encodeRecordHeader({ type: RecordType.CHUNK, session: 1, seq: 0 }, huge)).toThrow(AgentfdError);
    const ok = await writer.append({ type: RecordType.CHUNK, session: 1, seq: 0, payload: Buffer.from('fine') });
    await writer.close({ final: true });
    expect((await readAll(ok.path)).map((r) => r.type)).toEqual([RecordType.LABEL, RecordType.CHUNK, RecordType.VOLUME_END]);
  });

  it('reads a header whose length is over 64 MiB as corrupt, without allocating it', async () => {
    const dir = tempDir();
    const writer = openWriter(dir);
    const at = await writer.append({ type: RecordType.FILE, session: 1, seq: 0, payload: Buffer.from('abc') });
    await writer.close({ final: false });
    const bytes = readFileSync(at.path);
    bytes.writeUInt32LE(MAX_RECORD_PAYLOAD + 1, at.offset + 16);
    writeFileSync(at.path, bytes);
    const error = await corruptError(at.path);
    expect(error.message).toContain(`at byte ${at.offset} (record 2, a FILE record): length too large`);
  });
});
