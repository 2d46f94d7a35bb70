/**
 * A restore through agentfd serve of a bacula-fd backup with `compression = LZO` (streams 29 and
 * 30, each record a comp_stream_header then an LZO1X-1 block: lzo-records.ts), and of records it
 * cannot decode: LZO records cut short or damaged, another algorithm's header, compressed Win32
 * data (31), a stream number no version knows. The Director and the Storage Daemon are scripted as
 * 9.6 speaks (filed/job.c, stored/fd_cmds.c). LZO files are restored byte for byte, holes
 * included; each file that cannot be decoded must fail with a job error naming it and its stream,
 * must not be left behind as if restored, and the job must end with errors, while the files it can
 * decode are restored. An agent's file (a Plugin line's, here the sample Exchange agent's) gets
 * its LZO data decoded, or is ended as failed for the agent.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RestoreRun as AgentRestoreRun } from '../../src/agents/agent.js';
import { loadPluginDir } from '../../src/agents/registry.js';
import { pluginAgents, startPluginRestore } from '../../src/bacula-fd/transfer/plugin-agents.js';
import { newTotals, sendBackup, type StreamSink } from '../../src/bacula-fd/transfer/backup.js';
import { BNET, Bsock } from '../../src/bacula-fd/wire/bsock.js';
import { cramAccepts, cramResponse, makeChallenge } from '../../src/bacula-fd/wire/cram-md5.js';
import { FT, STREAM } from '../../src/bacula-fd/attributes/lstat.js';
import { lzoRecord } from '../../src/bacula-fd/transfer/lzo-records.js';
import { parseFileSet } from '../../src/bacula-fd/fileset/fileset.js';
import { receiveRestore } from '../../src/bacula-fd/transfer/restore.js';
import type { SdRecord } from '../../src/bacula-fd/transfer/storage-daemon.js';
import { parseConfig } from '../../src/config/load.js';
import { ensureDebianPackage, LIBLZO2, skipNote } from '../helpers/debian.js';
import { SAMPLE_DIR, tempDir } from '../helpers/native.js';
import { attrRecord } from './records.js';
import { directorAt, startServer } from './scripted-director.js';

const MISSING = ensureDebianPackage(LIBLZO2);
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A comp_stream_header as Bacula serialises it: magic, compressed size, level 0, version 1, all big-endian. */
function compHeader(magic: string, size: number): Buffer {
  const b = Buffer.alloc(12);
  b.write(magic, 0, 'latin1');
  b.writeUInt32BE(size, 4);
  b.writeUInt16BE(0, 8);
  b.writeUInt16BE(1, 10);
  return b;
}

/** A sparse LZO record (stream 30): the block's offset, then its LZO record. */
function sparseLzo(at: number, block: Buffer): Buffer {
  const record = lzoRecord(block, 8);
  record.writeBigUInt64BE(BigInt(at), 0);
  return record;
}

/** A Storage Daemon that serves one read session of `records` to the FD, as stored/fd_cmds.c does. */
async function readSessionSd(key: string, records: SdRecord[]): Promise<number> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => listener.close());
  listener.once('connection', (socket) => {
    const sd = new Bsock(socket, 'agentfd serve (as FD)');
    cleanups.push(() => sd.destroy());
    void (async () => {
      await sd.receiveText(); // Hello Bacula SD: Start Job ...
      const ours = makeChallenge('test-sd');
      await sd.send(`auth cram-md5 ${ours} ssl=0\n`);
      if (!cramAccepts(ours, key, await sd.receiveText())) throw new Error('the FD does not know the session key');
      await sd.send('1000 OK auth\n');
      const theirs = /^auth cram-md5 (<[^>]+>)/.exec(await sd.receiveText())![1]!;
      await sd.send(`${cramResponse(theirs, key)}\0`);
      await sd.receiveText(); // 1000 OK auth
      await sd.send('3000 OK Hello 306\n');
      await sd.receiveText(); // read open session = ...
      await sd.send('3000 OK open ticket = 1\n');
      await sd.receiveText(); // read data 1
      await sd.send('3000 OK data\n');
      for (const record of records) {
        await sd.send(`rechdr 1 1 ${record.fileIndex} ${record.stream} ${record.data.length}`);
        await sd.send(record.data);
      }
      await sd.sendSignal(BNET.EOD);
      await sd.receiveText(); // read close session 1
      await sd.send('3000 OK close\n');
      await sd.sendSignal(BNET.EOD);
    })().catch(() => undefined); // a broken conversation shows in the Director's End Job
  });
  return (listener.address() as net.AddressInfo).port;
}

/** Runs a restore of `records` into `where` as a Director does; the FD's messages up to and including the End Job. */
async function restoreThroughServe(records: SdRecord[], where: string): Promise<{ messages: string[]; endJob: string; logs: string[] }> {
  const logs: string[] = [];
  const { fd, port } = await startServer(logs);
  cleanups.push(() => fd.close());
  const key = 'RKEY-AKMD-NAPI-MMFP-CCNM-GGKK-FAKG-IICH';
  const sdPort = await readSessionSd(key, records);
  const bs = await directorAt(port);
  cleanups.push(() => bs.destroy());
  await bs.send(`JobId=21 Job=RestoreFiles.2026-12-07_16.00.00_21 SDid=1 SDtime=1 Authorization=${key}\n`);
  expect(await bs.receiveText()).toMatch(/^2000 OK Job/);
  await bs.send(`storage address=127.0.0.1 port=${sdPort} ssl=0 Authorization=${key}\n`);
  expect(await bs.receiveText()).toBe('2000 OK storage\n');
  await bs.send(`restore files=${records.length} replace=a prelinks=0 where=${where}\n`);
  const messages: string[] = [];
  for (let text = await bs.receiveText(); !text.startsWith('2000 OK storage end'); text = await bs.receiveText()) messages.push(text);
  await bs.send('endrestore');
  let endJob = await bs.receiveText();
  while (endJob.startsWith('Jmsg')) endJob = await bs.receiveText();
  expect(await bs.receive()).toEqual({ kind: 'signal', signal: BNET.TERMINATE });
  return { messages, endJob, logs };
}

describe.skipIf(MISSING !== null)(`a restore of LZO records${skipNote(MISSING)}`, () => {
  it('restores streams 29 and 30 byte for byte, the sparse file with its holes, and ends OK', async () => {
    const where = tempDir('lzo-restore');
    const text = Buffer.from(Array.from({ length: 5000 }, (_, i) => `line ${i} compresses\n`).join(''));
    const random = randomBytes(70_000);
    expect(text.length).toBeGreaterThan(65536);
    const size = 5 * 65528 + 100;
    const records: SdRecord[] = [
      attrRecord(1, FT.REG, '/data/text.txt', { size: BigInt(text.length), dataStream: 29 }),
      { fileIndex: 1, stream: 29, data: lzoRecord(text.subarray(0, 65536)) },
      { fileIndex: 1, stream: 29, data: lzoRecord(text.subarray(65536)) },
      attrRecord(2, FT.REG, '/data/random.bin', { size: BigInt(random.length), dataStream: 29 }),
      { fileIndex: 2, stream: 29, data: lzoRecord(random.subarray(0, 65536)) },
      { fileIndex: 2, stream: 29, data: lzoRecord(random.subarray(65536)) },
      // Blocks of 65,528 bytes at their offsets; blocks 0, 2 and 3 were all zeros and not sent.
      attrRecord(3, FT.REG, '/data/sparse.img', { size: BigInt(size), dataStream: 30 }),
      { fileIndex: 3, stream: 30, data: sparseLzo(65528, random.subarray(0, 65528)) },
      { fileIndex: 3, stream: 30, data: sparseLzo(4 * 65528, text.subarray(0, 65528)) },
      { fileIndex: 3, stream: 30, data: sparseLzo(5 * 65528, Buffer.alloc(100)) },
    ];
    const { messages, endJob } = await restoreThroughServe(records, where);
    expect(messages.filter((m) => /type=[34] /.test(m))).toEqual([]);
    expect(readFileSync(path.join(where, 'data', 'text.txt'))).toEqual(text);
    expect(readFileSync(path.join(where, 'data', 'random.bin'))).toEqual(random);
    const sparse = readFileSync(path.join(where, 'data', 'sparse.img'));
    const expected = Buffer.alloc(size);
    random.copy(expected, 65528, 0, 65528);
    text.copy(expected, 4 * 65528, 0, 65528);
    expect(sparse.equals(expected)).toBe(true);
    expect(endJob).toMatch(new RegExp(`^2800 End Job TermCode=84 JobFiles=3 ReadBytes=\\d+ JobBytes=${text.length + random.length + 2 * 65528 + 100} Errors=0 `));
  });
});

describe.skipIf(MISSING !== null)(`a restore meeting records agentfd cannot decode${skipNote(MISSING)}`, () => {
  it('fails each such file with a job error naming it and its stream, leaves nothing of it, restores the rest and ends with errors', async () => {
    const where = tempDir('undecodable');
    const plain = Buffer.from('plain data, restored\n');
    const good = lzoRecord(Buffer.from('a block that is fine\n'.repeat(100)));
    const cut = lzoRecord(randomBytes(5000)).subarray(0, 3000);
    const damaged = Buffer.from(good);
    damaged.fill(0xff, damaged.length - 3); // its end marker gone
    const block = good.subarray(12);
    const records: SdRecord[] = [
      attrRecord(1, FT.REG, '/data/cut.txt', { size: 10_000n, dataStream: 29 }),
      { fileIndex: 1, stream: 29, data: good },
      { fileIndex: 1, stream: 29, data: cut },
      attrRecord(2, FT.REG, '/data/damaged.img', { size: 65536n, dataStream: 30 }),
      { fileIndex: 2, stream: 30, data: Buffer.concat([Buffer.alloc(8), damaged]) },
      attrRecord(3, FT.REG, '/data/zstd.bin', { size: 4096n, dataStream: 29 }),
      { fileIndex: 3, stream: 29, data: Buffer.concat([compHeader('ZSTD', block.length), block]) },
      attrRecord(4, FT.REG, '/data/win32.bin', { size: 4096n, dataStream: 31 }),
      { fileIndex: 4, stream: 31, data: good },
      attrRecord(5, FT.REG, '/data/future.bin', { size: 10n }),
      { fileIndex: 5, stream: 777, data: Buffer.from('0123456789') },
      attrRecord(6, FT.REG, '/data/plain.txt', { size: BigInt(plain.length) }),
      { fileIndex: 6, stream: STREAM.FILE_DATA, data: plain },
      { fileIndex: 6, stream: STREAM.MD5_DIGEST, data: Buffer.alloc(16) },
    ];
    const { messages, endJob, logs } = await restoreThroughServe(records, where);

    const errors = messages.filter((m) => /^Jmsg JobId=21 type=4 /.test(m));
    expect(errors).toHaveLength(5);
    expect(errors[0]).toMatch(/agentfd-fd JobId 21: Error: "\/data\/cut\.txt" is not restored: its stream 29 record cannot be decoded: its compression header announces \d+ compressed bytes but the record holds 2988: the record is damaged or cut short; .*cut\.txt was removed/);
    expect(errors[1]).toMatch(/Error: "\/data\/damaged\.img" is not restored: its stream 30 record cannot be decoded: its LZO block does not decompress \(LZO error -\d+ .*\): the record is damaged; .*damaged\.img was removed/);
    expect(errors[2]).toMatch(/Error: "\/data\/zstd\.bin" is not restored: its stream 29 record cannot be decoded: it is compressed with "ZSTD", which agentfd cannot decompress/);
    expect(errors[3]).toMatch(/Error: "\/data\/win32\.bin" is not restored: its data is in stream 31 \(STREAM_WIN32_COMPRESSED_DATA: Win32 BackupRead data, compressed with LZO \("LZOX"\)\), which agentfd cannot decode; .*win32\.bin was removed; restore it with a bacula-fd that can/);
    expect(errors[4]).toMatch(/Error: "\/data\/future\.bin" is not restored: its data is in stream 777, which this version of agentfd does not know/);
    // Nothing of the five is left as if restored; the file agentfd can decode is.
    for (const name of ['cut.txt', 'damaged.img', 'zstd.bin', 'win32.bin', 'future.bin']) expect(existsSync(path.join(where, 'data', name))).toBe(false);
    expect(readFileSync(path.join(where, 'data', 'plain.txt'))).toEqual(plain);
    // The job ends with errors (E, 5 of them), counting only the file restored.
    expect(endJob).toMatch(/^2800 End Job TermCode=69 JobFiles=1 ReadBytes=\d+ JobBytes=\d+ Errors=5 /);
    expect(logs.find((l) => l.includes('job 21 ('))).toMatch(/ended: OK -- with warnings, 1 files/);
  });
});

/**
 * The sample Exchange agent's backup with `compression = LZO` (O Zo), as agentfd serve sends it to
 * the SD, then its restore through the same agent, with `change` applied to the records first.
 */
async function agentRoundTrip(name: string, change: (records: SdRecord[]) => SdRecord[]) {
  const ws = tempDir(name);
  const store = path.join(ws, 'store');
  mkdirSync(path.join(store, 'SG1', 'logs'), { recursive: true });
  const db = Buffer.concat([randomBytes(100_000), Buffer.from('page '.repeat(20_000))]);
  writeFileSync(path.join(store, 'SG1', 'DB1.edb'), db);
  writeFileSync(path.join(store, 'SG1', 'logs', 'E00000001.log'), 'transaction log\n'.repeat(100));
  const config = parseConfig(`plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\ndata_dir = "state"\n`, path.join(ws, 'agentfd.toml'));
  const agents = pluginAgents(config, await loadPluginDir(SAMPLE_DIR));
  const command = `MicrosoftExchange:store=${store}:truncate_logs=no`;

  const sent: SdRecord[] = [];
  const sink: StreamSink = {
    async sendStream(fileIndex, stream, _length, frames) {
      let bytes = 0;
      for await (const frame of frames) {
        sent.push({ fileIndex, stream, data: Buffer.from(frame) });
        bytes += frame.length;
      }
      return bytes;
    },
  };
  const totals = await sendBackup(
    { sd: sink, fileset: parseFileSet(['I', 'O MZo', 'N', `P ${command}`, 'N']), since: null, isCancelled: () => false, log: () => undefined, plugins: { agents, level: 'full', jobName: 'ExchangeBackup', jobId: 30 } },
    newTotals(),
  );
  for (const run of totals.pluginRuns) {
    await run.finish(true);
    await run.close();
  }
  expect(totals.errors).toEqual([]);

  const where = path.join(ws, 'restored');
  const runs: AgentRestoreRun[] = [];
  const restored = await receiveRestore({
    records: (async function* () {
      yield* change(sent);
    })(),
    where,
    log: () => undefined,
    plugin: async (cmd) => {
      const run = await startPluginRestore(agents, agents.agentFor(cmd)!, cmd, where, { jobName: 'Restore', jobId: 31, log: () => undefined, isCancelled: () => false });
      runs.push(run);
      return run;
    },
  });
  for (const run of runs) {
    await run.finish();
    await run.close();
  }
  return { sent, restored, where, db };
}

/** The records of DB1.edb's data. */
function dbData(records: SdRecord[]): SdRecord[] {
  const attributes = records.find((r) => r.stream === STREAM.UNIX_ATTRIBUTES && r.data.toString('latin1').includes('DB1.edb'))!;
  return records.filter((r) => r.fileIndex === attributes.fileIndex && r.stream === STREAM.COMPRESSED_DATA);
}

describe.skipIf(MISSING !== null)(`an agent's file with compression = LZO${skipNote(MISSING)}`, () => {
  it('is sent as LZO records (stream 29) and restored through its agent byte for byte', async () => {
    const { sent, restored, where, db } = await agentRoundTrip('lzo-agent', (records) => records);
    expect(dbData(sent).length).toBeGreaterThan(1);
    expect(sent.some((r) => r.stream === STREAM.FILE_DATA)).toBe(false);
    expect(restored.errors).toEqual([]);
    expect(readFileSync(path.join(where, 'SG1', 'DB1.edb'))).toEqual(db);
  });

  it('is ended as failed for its agent when a record does not decode, with a job error naming it, and the agent restores nothing of it', async () => {
    const { restored, where } = await agentRoundTrip('undecodable-agent', (records) => {
      const last = dbData(records).at(-1)!;
      return records.map((r) => (r === last ? { ...r, data: r.data.subarray(0, r.data.length - 10) } : r));
    });
    expect(restored.errors).toHaveLength(1);
    expect(restored.errors[0]).toMatch(/^"[^"]*DB1\.edb" is not restored: its data is in a stream 29 record that cannot be decoded: its compression header announces \d+ compressed bytes but the record holds \d+: the record is damaged or cut short; the agent was told the file failed$/);
    // The log the agent could decode is restored; of the database, nothing is left.
    const left = readdirSync(where, { recursive: true }).map(String);
    expect(left.some((n) => n.endsWith('E00000001.log'))).toBe(true);
    expect(left.filter((n) => n.includes('DB1'))).toEqual([]);
  });
});
