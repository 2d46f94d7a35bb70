/**
 * A restore through agentfd serve whose volume holds streams agentfd cannot decode: a bacula-fd
 * backup with `compression = LZO` (streams 29 and 30, each record starting with a
 * comp_stream_header whose magic is "LZOX"), and a stream number no version knows. The Director
 * and the Storage Daemon are scripted as 9.6 speaks (filed/job.c, stored/fd_cmds.c); each such
 * file must fail with a job error naming it and its stream, must not be left behind as if
 * restored, and the job must end with errors, while the files it can decode are restored. A file
 * of an agent (a Plugin line's, here the sample Exchange agent's) is ended as failed for the agent.
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
import { parseFileSet } from '../../src/bacula-fd/fileset/fileset.js';
import { receiveRestore } from '../../src/bacula-fd/transfer/restore.js';
import type { SdRecord } from '../../src/bacula-fd/transfer/storage-daemon.js';
import { parseConfig } from '../../src/config/load.js';
import { SAMPLE_DIR, tempDir } from '../helpers/native.js';
import { attrRecord } from './records.js';
import { directorAt, startServer } from './scripted-director.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A comp_stream_header (ch.h): magic, level, version 1, then the compressed size, all big-endian. */
function compHeader(magic: string, size: number): Buffer {
  const b = Buffer.alloc(12);
  b.write(magic, 0, 'latin1');
  b.writeUInt16BE(1, 4);
  b.writeUInt16BE(1, 6);
  b.writeUInt32BE(size, 8);
  return b;
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

describe('a restore meeting streams agentfd cannot decode', () => {
  it('fails each such file with a job error naming it and its stream, leaves nothing of it, restores the rest and ends with errors', async () => {
    const where = tempDir('undecodable');
    const plain = Buffer.from('plain data, restored\n');
    const lzo = Buffer.concat([compHeader('LZOX', 40), Buffer.alloc(40, 0x11)]);
    const sparseLzo = Buffer.concat([Buffer.alloc(8), compHeader('LZOX', 40), Buffer.alloc(40, 0x22)]); // offset 0, then the header
    const records: SdRecord[] = [
      attrRecord(1, FT.REG, '/data/lzo.txt', { size: 4096n, dataStream: 29 }),
      { fileIndex: 1, stream: 29, data: lzo },
      { fileIndex: 1, stream: 29, data: lzo },
      attrRecord(2, FT.REG, '/data/sparse-lzo.img', { size: 65536n, dataStream: 30 }),
      { fileIndex: 2, stream: 30, data: sparseLzo },
      attrRecord(3, FT.REG, '/data/future.bin', { size: 10n }),
      { fileIndex: 3, stream: 777, data: Buffer.from('0123456789') },
      attrRecord(4, FT.REG, '/data/plain.txt', { size: BigInt(plain.length) }),
      { fileIndex: 4, stream: STREAM.FILE_DATA, data: plain },
      { fileIndex: 4, stream: STREAM.MD5_DIGEST, data: Buffer.alloc(16) },
    ];
    const { messages, endJob, logs } = await restoreThroughServe(records, where);

    const errors = messages.filter((m) => /^Jmsg JobId=21 type=4 /.test(m));
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/agentfd-fd JobId 21: Error: "\/data\/lzo\.txt" is not restored: its data is in stream 29 \(STREAM_COMPRESSED_DATA, compressed with LZO \("LZOX"\)\), which agentfd cannot decompress; .*lzo\.txt was removed/);
    expect(errors[1]).toMatch(/Error: "\/data\/sparse-lzo\.img" is not restored: its data is in stream 30 \(STREAM_SPARSE_COMPRESSED_DATA, compressed with LZO \("LZOX"\)\)/);
    expect(errors[2]).toMatch(/Error: "\/data\/future\.bin" is not restored: its data is in stream 777, which this version of agentfd does not know/);
    // Nothing of the three is left as if restored; the file agentfd can decode is.
    for (const name of ['lzo.txt', 'sparse-lzo.img', 'future.bin']) expect(existsSync(path.join(where, 'data', name))).toBe(false);
    expect(readFileSync(path.join(where, 'data', 'plain.txt'))).toEqual(plain);
    // The job ends with errors (E, 3 of them), counting only the file restored.
    expect(endJob).toMatch(/^2800 End Job TermCode=69 JobFiles=1 ReadBytes=\d+ JobBytes=\d+ Errors=3 /);
    expect(logs.find((l) => l.includes('job 21 ('))).toMatch(/ended: OK -- with warnings, 1 files/);
  });
});

describe('an agent file whose data is in a stream agentfd cannot decode', () => {
  it('is ended as failed for its agent, with a job error naming it, and the agent restores nothing of it', async () => {
    const ws = tempDir('undecodable-agent');
    const store = path.join(ws, 'store');
    mkdirSync(path.join(store, 'SG1', 'logs'), { recursive: true });
    writeFileSync(path.join(store, 'SG1', 'DB1.edb'), randomBytes(100_000));
    writeFileSync(path.join(store, 'SG1', 'logs', 'E00000001.log'), 'transaction log\n'.repeat(100));
    const config = parseConfig(`plugin_dir = ${JSON.stringify(SAMPLE_DIR)}\ndata_dir = "state"\n`, path.join(ws, 'agentfd.toml'));
    const agents = pluginAgents(config, await loadPluginDir(SAMPLE_DIR));
    const command = `MicrosoftExchange:store=${store}:truncate_logs=no`;

    // The sample Exchange agent's backup, as agentfd serve sends it to the SD.
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
    const backupLogs: string[] = [];
    const totals = await sendBackup(
      { sd: sink, fileset: parseFileSet(['I', 'O M', 'N', `P ${command}`, 'N']), since: null, isCancelled: () => false, log: (l, m) => backupLogs.push(`${l}: ${m}`), plugins: { agents, level: 'full', jobName: 'ExchangeBackup', jobId: 30 } },
      newTotals(),
    );
    for (const run of totals.pluginRuns) {
      await run.finish(true);
      await run.close();
    }
    expect(totals.errors).toEqual([]);
    // The database's data records become LZO records (stream 29), as a bacula-fd with compression = LZO would write them.
    const db = sent.find((r) => r.stream === STREAM.UNIX_ATTRIBUTES && r.data.toString('latin1').includes('DB1.edb'))!;
    expect(db).toBeDefined();
    const records = sent.map((r) => (r.fileIndex === db.fileIndex && r.stream === STREAM.FILE_DATA ? { ...r, stream: 29, data: Buffer.concat([compHeader('LZOX', r.data.length), r.data]) } : r));

    const where = path.join(ws, 'restored');
    const logs: string[] = [];
    const runs: AgentRestoreRun[] = [];
    const restored = await receiveRestore({
      records: (async function* () {
        yield* records;
      })(),
      where,
      log: (l, m) => logs.push(`${l}: ${m}`),
      plugin: async (cmd) => {
        const agent = agents.agentFor(cmd)!;
        const run = await startPluginRestore(agents, agent, cmd, where, { jobName: 'Restore', jobId: 31, log: (l, m) => logs.push(`${l}: ${m}`), isCancelled: () => false });
        runs.push(run);
        return run;
      },
    });
    for (const run of runs) {
      await run.finish();
      await run.close();
    }
    expect(restored.errors).toHaveLength(1);
    expect(restored.errors[0]).toMatch(/"[^"]*DB1\.edb" is not restored: its data is in stream 29 \(STREAM_COMPRESSED_DATA, compressed with LZO \("LZOX"\)\), which agentfd cannot decompress; the agent was told the file failed/);
    // The log the agent could decode is restored; of the database, nothing is left.
    const left = readdirSync(where, { recursive: true }).map(String);
    expect(left.some((n) => n.endsWith('E00000001.log'))).toBe(true);
    expect(left.filter((n) => n.includes('DB1'))).toEqual([]);
  });
});
