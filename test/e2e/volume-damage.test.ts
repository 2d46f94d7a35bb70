/**
 * Damaged volumes through the real CLI: a backup after damage in the middle of the last volume
 * never cuts a committed job off it (the volume is left byte for byte as it was, the set goes on
 * in a new volume and the job's output says so), while a tail really torn by an interrupted job is
 * still cut. And scan: a session header with a damaged field is reported precisely and the rest of
 * the volume is still scanned; a FIFO is refused at once. Two storage directories (or a copy of
 * one) are never indexed by one catalog: the second is refused before anything is written.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCliJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/native.js';
import { encodeRecordHeader, readRecords, readVolumeHeader, RecordType, type VolumeRecord } from '../../src/volume/index.js';

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
    // The second job's own records are sound: it verifies, with the damage named as a warning.
    expect(verifiedBefore[1]!.status).toBe('ok');
    expect(cli(s, ['verify', '--job-id', String(second)]).json.warnings.join('\n')).toContain(`at byte ${chunk.offset}`);

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

/** `file` with the record `record` replaced by one with the same header fields and `payload`. */
function replaceRecord(bytes: Buffer, record: VolumeRecord, payload: Buffer): Buffer {
  const header = encodeRecordHeader({ type: record.type, codec: record.codec, cipher: record.cipher, flags: record.flags, session: record.session, seq: record.seq }, payload);
  return Buffer.concat([bytes.subarray(0, record.offset), header, payload, bytes.subarray(record.offset + 24 + record.payload.length)]);
}

describe('scan of damaged input', () => {
  it('reports a session header with an edited number (volume, byte, field), adds the other jobs, and they verify and restore', async () => {
    const s = setup('scan-field');
    const first = backup(s);
    const second = backup(s);
    const volume = path.join(s.volumes, 'agentfd-0001.afv');
    const start = (await records(volume)).find((r) => r.session === first && r.type === RecordType.SESSION_START)!;
    const edited = Buffer.from(start.payload.toString('utf8').replace(/"startedNs":"\d+"/, '"startedNs":"NaN!"'));
    expect(edited.equals(start.payload)).toBe(false);
    // A copy of the volume, with the record's CRC made right: only the field is wrong.
    const copy = path.join(s.ws, 'copy', 'agentfd-0001.afv');
    mkdirSync(path.dirname(copy));
    writeFileSync(copy, replaceRecord(readFileSync(volume), start, edited));
    const rescan = path.join(s.ws, 'rescan.toml');
    writeFileSync(rescan, readFileSync(s.config, 'utf8').replace('data_dir = "state"', 'data_dir = "rescan"'));

    const scan = runCliJson(['scan', copy, '--config', rescan]);
    expect(scan.status).toBe(1);
    expect(scan.json.errors).toEqual([
      `volume ${copy} is damaged at byte ${start.offset} (the SESSION_START record of job ${first}): the session header: its field "startedNs" is "NaN!", not a time in nanoseconds; job ${first} was not added (the rest of the volume was scanned)`,
    ]);
    expect(scan.json.added).toMatchObject([{ jobId: second, status: 'committed' }]);
    const jobs = runCliJson(['jobs', '--config', rescan]).json.jobs as { jobId: number }[];
    expect(jobs.map((j) => j.jobId)).toEqual([second]);
    expect(runCliJson(['verify', '--job-id', String(second), '--config', rescan]).json).toMatchObject({ status: 'ok', verify: 'ok' });
    const to = path.join(s.ws, 'restored');
    expect(runCliJson(['restore', '--job-id', String(second), '--to', to, '--config', rescan]).status).toBe(0);
    const back = filesUnder(to);
    for (const [name, bytes] of s.files) expect(back.get(name)?.equals(bytes), name).toBe(true);
  });

  it('goes on past a damaged record at the next sound one: the jobs after the damage are added whole, the damaged one as aborted', async () => {
    const s = setup('scan-resync');
    const first = backup(s);
    const second = backup(s);
    const volume = path.join(s.volumes, 'agentfd-0001.afv');
    const all = await records(volume);
    const chunk = all.find((r) => r.session === first && r.type === RecordType.CHUNK)!;
    const next = all[all.indexOf(chunk) + 1]!;
    const copy = path.join(s.ws, 'copy', 'agentfd-0001.afv');
    mkdirSync(path.dirname(copy));
    const damaged = readFileSync(volume);
    damaged[chunk.offset + 16 + 3]! ^= 0x01; // its length grows by 16 MiB
    writeFileSync(copy, damaged);
    const rescan = path.join(s.ws, 'rescan.toml');
    writeFileSync(rescan, readFileSync(s.config, 'utf8').replace('data_dir = "state"', 'data_dir = "rescan"'));

    const scan = runCliJson(['scan', copy, '--config', rescan]);
    expect(scan.status).toBe(1);
    expect(scan.json.errors[0]).toContain(`volume ${copy} is corrupt at byte ${chunk.offset}`);
    expect(scan.json.errors[0]).toContain(`reading went on at the next sound record, at byte ${next.offset}`);
    expect(scan.json.added).toMatchObject([
      { jobId: first, status: 'aborted' },
      { jobId: second, status: 'committed' },
    ]);
    const to = path.join(s.ws, 'restored');
    expect(runCliJson(['restore', '--job-id', String(second), '--to', to, '--config', rescan]).status).toBe(0);
    const back = filesUnder(to);
    for (const [name, bytes] of s.files) expect(back.get(name)?.equals(bytes), name).toBe(true);
    expect(runCliJson(['restore', '--job-id', String(first), '--to', path.join(s.ws, 'r1'), '--config', rescan]).json.code).toBe('E_JOB_NOT_RESTORABLE');
  });

  it('refuses a FIFO at once, naming it', () => {
    const s = setup('scan-fifo');
    const fifo = path.join(s.ws, 'x');
    execFileSync('mkfifo', [fifo]);
    const started = Date.now();
    const scan = runCliJson(['scan', fifo, '--config', s.config]);
    expect(scan.signal).toBeNull();
    expect(scan.status).toBe(1);
    expect(scan.json).toMatchObject({ status: 'error', code: 'E_VOLUME_NOT_FILE' });
    expect(scan.json.message).toContain(`cannot scan ${fifo}: it is a FIFO (named pipe), not a volume file; nothing was scanned`);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe('volume identities', () => {
  it('refuses a second storage directory (or a copy of the first) with the same data_dir before writing anything; the first one\'s jobs still verify and restore', async () => {
    const s = setup('two-storages');
    const withStorage = (name: string, storage: string) => {
      const file = path.join(s.ws, name);
      writeFileSync(file, readFileSync(s.config, 'utf8').replace('data_dir = "state"', `data_dir = "state"\nstorage_dir = "${storage}"`));
      return file;
    };
    const a = withStorage('a.toml', 'store-a');
    const b = withStorage('b.toml', 'store-b');
    const first = runCliJson(['backup', '--job', 'files', '--config', a]);
    expect(first.status, first.stdout).toBe(0);
    const volumeA = path.join(s.ws, 'store-a', 'agentfd-0001.afv');
    const before = readFileSync(volumeA);
    // Every new volume carries the id of the storage directory it was made in.
    const id = readFileSync(path.join(s.ws, 'store-a', '.agentfd-repository'), 'utf8').trim();
    expect((await readVolumeHeader(volumeA)).label.repository).toBe(id);
    expect(before.subarray(0, 4096).toString('utf8')).toContain(`repository: ${id}\n`);

    const second = runCliJson(['backup', '--job', 'files', '--config', b]);
    expect(second.status).toBe(1);
    expect(second.json.code).toBe('E_STORAGE_MISMATCH');
    expect(second.json.message).toContain(`already indexes the volumes of the storage directory ${path.join(s.ws, 'store-a')}, and this configuration writes to ${path.join(s.ws, 'store-b')}`);
    expect(second.json.message).toContain('Give this configuration a data_dir of its own');
    expect(existsSync(path.join(s.ws, 'store-b', 'agentfd-0001.afv'))).toBe(false);

    // A copy of the first directory is the same repository in another place: refused too.
    cpSync(path.join(s.ws, 'store-a'), path.join(s.ws, 'store-c'), { recursive: true });
    const third = runCliJson(['backup', '--job', 'files', '--config', withStorage('c.toml', 'store-c')]);
    expect(third.status).toBe(1);
    expect(third.json.message).toContain(`holds repository ${id}, which the catalog ${path.join(s.ws, 'state', 'catalog.sqlite')} indexes in ${path.join(s.ws, 'store-a')}: it is a copy of that directory`);

    expect(readFileSync(volumeA).equals(before)).toBe(true);
    const jobs = runCliJson(['jobs', '--config', a]).json.jobs as { jobId: number }[];
    expect(jobs.map((j) => j.jobId)).toEqual([first.json.jobId]);
    expect(runCliJson(['verify', '--job-id', String(first.json.jobId), '--config', a]).json).toMatchObject({ status: 'ok', verify: 'ok' });
    const to = path.join(s.ws, 'restored');
    expect(runCliJson(['restore', '--job-id', String(first.json.jobId), '--to', to, '--config', a]).status).toBe(0);
    const back = filesUnder(to);
    for (const [name, bytes] of s.files) expect(back.get(name)?.equals(bytes), name).toBe(true);
    // The first configuration goes on as before.
    expect(runCliJson(['backup', '--job', 'files', '--config', a]).status).toBe(0);
  });

  it('refuses to scan the volumes of another storage directory into a catalog (their labels would take over its volumes)', () => {
    const s = setup('scan-other-repository');
    const own = (name: string) => {
      const file = path.join(s.ws, `${name}.toml`);
      writeFileSync(file, readFileSync(s.config, 'utf8').replace('data_dir = "state"', `data_dir = "state-${name}"\nstorage_dir = "store-${name}"`));
      return file;
    };
    const a = own('a');
    const b = own('b');
    const first = runCliJson(['backup', '--job', 'files', '--config', a]);
    expect(first.status, first.stdout).toBe(0);
    // Jobs 2 and 3 of the other catalog have ids this one does not use: only the label guard stops them.
    for (let i = 0; i < 3; i++) expect(runCliJson(['backup', '--job', 'files', '--config', b]).status).toBe(0);
    const foreign = path.join(s.ws, 'store-b', 'agentfd-0001.afv');

    const scan = runCliJson(['scan', foreign, '--config', a]);
    expect(scan.status).toBe(1);
    expect(JSON.stringify(scan.json)).toContain(`volume ${foreign} was not scanned: it belongs to repository`);
    // The catalog still finds the first job in its own volume.
    expect(runCliJson(['verify', '--job-id', String(first.json.jobId), '--config', a]).json).toMatchObject({ status: 'ok', verify: 'ok' });
    const to = path.join(s.ws, 'restored');
    expect(runCliJson(['restore', '--job-id', String(first.json.jobId), '--to', to, '--config', a]).status).toBe(0);
    const back = filesUnder(to);
    for (const [name, bytes] of s.files) expect(back.get(name)?.equals(bytes), name).toBe(true);
  });
});
