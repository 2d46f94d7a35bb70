/**
 * Damaged volumes through the real CLI: a backup after damage in the middle of the last volume
 * never cuts a committed job off it (the volume is left byte for byte as it was, the set goes on
 * in a new volume and the job's output says so), while a tail really torn by an interrupted job is
 * still cut.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/native.js';
import { readRecords, RecordType, type VolumeRecord } from '../../src/volume/index.js';

interface Setup {
  ws: string;
  config: string;
  volumes: string;
  /** The bytes of each data file, by name. */
  files: Map<string, Buffer>;
}

/** A workspace with a filesystem job over a few files (one large enough for CHUNK records). */
function setup(name: string): Setup {
  const ws = tempDir(name);
  const data = path.join(ws, 'data');
  mkdirSync(data);
  const files = new Map<string, Buffer>([
    ['big.bin', randomBytes(3 * 1024 * 1024 + 123)],
    ['small.txt', Buffer.from('a small file\n')],
    ['medium.bin', randomBytes(200_000)],
  ]);
  for (const [file, bytes] of files) writeFileSync(path.join(data, file), bytes);
  const config = path.join(ws, 'agentfd.toml');
  writeFileSync(config, ['data_dir = "state"', 'volume_size = "64M"', '', '[jobs.files]', 'agent = "filesystem"', 'paths = ["data"]', 'compression = "none"', ''].join('\n'));
  return { ws, config, volumes: path.join(ws, 'state', 'volumes'), files };
}

function cli(s: Setup, args: string[]) {
  return runCliJson([...args, '--config', s.config]);
}

function backup(s: Setup): number {
  const result = cli(s, ['backup', '--job', 'files']);
  expect(result.status, result.stdout + result.stderr).toBe(0);
  return result.json.jobId as number;
}

async function records(file: string): Promise<VolumeRecord[]> {
  const all: VolumeRecord[] = [];
  for await (const record of readRecords(file)) all.push(record);
  return all;
}

/** Every file under `dir`, by base name. */
function filesUnder(dir: string, found = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) filesUnder(full, found);
    else if (entry.isFile()) found.set(entry.name, readFileSync(full));
  }
  return found;
}

/** Restores job `jobId` into a fresh directory; true when every file came back identical. */
function restoresIdentical(s: Setup, jobId: number): boolean {
  const to = path.join(s.ws, `restore-${jobId}-${Math.random().toString(36).slice(2)}`);
  const result = cli(s, ['restore', '--job-id', String(jobId), '--to', to]);
  if (result.status !== 0) return false;
  const back = filesUnder(to);
  return [...s.files].every(([name, bytes]) => back.get(name)?.equals(bytes) === true);
}

function verify(s: Setup, jobId: number): { status: string; error: string | null } {
  const result = cli(s, ['verify', '--job-id', String(jobId)]);
  return { status: result.json.status as string, error: (result.json.error as string | null) ?? null };
}

describe('a backup after damage to the last volume', () => {
  it('leaves a volume whose middle record has a flipped length bit untouched, says so, and every committed job reads as before', async () => {
    const s = setup('damage-length');
    const first = backup(s);
    const second = backup(s);
    const volume = path.join(s.volumes, 'agentfd-0001.afv');
    // A CHUNK of the first job, in the middle of the volume: flip bit 24 of its length, which
    // makes the rest of the volume look like the payload of that one record.
    const chunk = (await records(volume)).find((r) => r.session === first && r.type === RecordType.CHUNK)!;
    const damaged = readFileSync(volume);
    damaged[chunk.offset + 16 + 3]! ^= 0x01;
    writeFileSync(volume, damaged);
    const verifiedBefore = [verify(s, first), verify(s, second)];
    expect(verifiedBefore[0]!.error).toContain(`at byte ${chunk.offset}`);

    const third = cli(s, ['backup', '--job', 'files']);
    expect(third.status, third.stdout + third.stderr).toBe(0);
    const warnings = (third.json.warnings as string[]).join('\n');
    expect(warnings).toContain(`volume ${volume} is damaged: the record at byte ${chunk.offset} is damaged, yet a sound record follows`);
    expect(warnings).toContain('It was left exactly as it is');
    expect(warnings).toContain(path.join(s.volumes, 'agentfd-0002.afv'));

    // Not a byte of the damaged volume changed; the new job went to a new volume.
    expect(readFileSync(volume).equals(damaged)).toBe(true);
    expect(third.json.volumes).toEqual([path.join(s.volumes, 'agentfd-0002.afv')]);
    // The committed jobs read exactly as they did before the backup: the second job (untouched by
    // the damage) restores whole, and verify names the damaged record, not a truncated volume.
    expect([verify(s, first), verify(s, second)]).toEqual(verifiedBefore);
    expect(restoresIdentical(s, second)).toBe(true);
    expect(verify(s, third.json.jobId as number)).toEqual({ status: 'ok', error: null });
    expect(restoresIdentical(s, third.json.jobId as number)).toBe(true);
  });

  it('never cuts the damaged last record of a committed job (the catalog knows the job ended there)', async () => {
    const s = setup('damage-session-end');
    const first = backup(s);
    const second = backup(s);
    const volume = path.join(s.volumes, 'agentfd-0001.afv');
    const all = await records(volume);
    const end = all.at(-1)!;
    expect(end).toMatchObject({ session: second, type: RecordType.SESSION_END });
    // One flipped bit in the payload of the last record: nothing in the volume after it, so only the
    // catalog can tell this from a record an interrupted job was writing.
    const damaged = readFileSync(volume);
    damaged[end.offset + 24 + 5]! ^= 0x10;
    writeFileSync(volume, damaged);

    const third = cli(s, ['backup', '--job', 'files']);
    expect(third.status, third.stdout + third.stderr).toBe(0);
    expect((third.json.warnings as string[]).join('\n')).toContain(
      `the record at byte ${end.offset} is damaged, and cutting the volume there would remove records of job ${second}, which the catalog records as finished in this volume`,
    );
    expect(readFileSync(volume).equals(damaged)).toBe(true);
    expect(restoresIdentical(s, first)).toBe(true);
    expect(verify(s, second).error).toContain(`at byte ${end.offset}`);
    expect(verify(s, third.json.jobId as number).status).toBe('ok');
  });

  it('still cuts a tail torn by an interrupted job, and every committed job verifies and restores', async () => {
    const s = setup('torn-tail');
    const first = backup(s);
    const volume = path.join(s.volumes, 'agentfd-0001.afv');
    const size = statSync(volume).size;
    // What a job killed while writing leaves: the first 1000 bytes of a 70,000-byte CHUNK record.
    const header = Buffer.alloc(24);
    header.write('AFR1', 0, 'ascii');
    header.writeUInt8(RecordType.CHUNK, 4);
    header.writeUInt32LE(first + 1, 8);
    header.writeUInt32LE(70_000, 16);
    appendFileSync(volume, Buffer.concat([header, randomBytes(976)]));

    const second = cli(s, ['backup', '--job', 'files']);
    expect(second.status, second.stdout + second.stderr).toBe(0);
    expect((second.json.warnings as string[]).join('\n')).toContain(`volume ${volume} ended with 1000 bytes that an interrupted job was writing (a torn tail)`);
    expect(second.json.volumes).toEqual([volume]);
    expect(readFileSync(volume).length).toBeGreaterThan(size);
    for (const jobId of [first, second.json.jobId as number]) {
      expect(verify(s, jobId)).toEqual({ status: 'ok', error: null });
      expect(restoresIdentical(s, jobId)).toBe(true);
    }
  });
});
