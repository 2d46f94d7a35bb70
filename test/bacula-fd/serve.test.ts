/**
 * agentfd serve's Director conversation over a real socket, with this test playing the Director
 * the way bacula-dir 9.6 does ("Hello Director NAME calling 103", then the FD challenges first with
 * "auth cram-md5 <challenge> ssl=0"): the hello, CRAM-MD5 both ways with the MD5 of the Client
 * password, a wrong password refused, `status` answered line by line until EOD, and an unknown
 * command refused. Jobs against a real Director and Storage Daemon
 * are in test/bacula-lab/.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BNET, Bsock } from '../../src/bacula-fd/wire/bsock.js';
import { cramAccepts, cramResponse, makeChallenge } from '../../src/bacula-fd/wire/cram-md5.js';
import { FileDaemonServer } from '../../src/bacula-fd/director/server.js';
import { tempDir } from '../helpers/native.js';
import { connectTo, directorAt, handshake, startServer, statusClient } from './scripted-director.js';

let server: FileDaemonServer;
let port: number;
const logs: string[] = [];

beforeAll(async () => {
  server = new FileDaemonServer({
    name: 'agentfd-fd', address: '127.0.0.1', port: 0, maxJobs: 5, authFailureDelayMs: 0,
    directors: [{ name: 'test-dir', password: 'right-pass' }],
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  port = await server.listen();
});
afterAll(() => server.close());

const connect = (): Promise<Bsock> => connectTo(port);

describe('agentfd serve, as a Director sees it', () => {
  it('authenticates a known Director both ways and says it speaks protocol 213', async () => {
    const bs = await connect();
    expect(await handshake(bs, 'test-dir', 'right-pass')).toBe('2000 OK Hello 213\n');
    bs.destroy();
  });

  it('refuses a wrong password and an unknown Director', async () => {
    for (const [name, password] of [['test-dir', 'wrong-pass'], ['other-dir', 'right-pass']] as const) {
      const bs = await connect();
      expect(await handshake(bs, name, password)).toBe('1999 Authorization failed.\n');
      bs.destroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(logs.some((l) => l.includes('Director "test-dir" failed authentication'))).toBe(true);
    expect(logs.some((l) => l.includes('Director "other-dir" is not in [[serve.directors]]'))).toBe(true);
  });

  it('answers status client with its name and jobs, then EOD', async () => {
    const bs = await connect();
    await handshake(bs, 'test-dir', 'right-pass');
    const status = await statusClient(bs);
    expect(status).toMatch(/^agentfd-fd Version: agentfd /);
    expect(status).toContain('No Jobs running.');
    expect(status).toContain('Terminated Jobs:');
    await bs.sendSignal(BNET.TERMINATE);
    bs.destroy();
  });

  it('refuses a command it does not know, as bacula-fd does', async () => {
    const bs = await connect();
    await handshake(bs, 'test-dir', 'right-pass');
    await bs.send('frobnicate now\n');
    expect(await bs.receiveText()).toBe('2999 Invalid command\n');
    bs.destroy();
  });
});

/**
 * A Storage Daemon that takes one append session and is slow to mount its volume, the way a real
 * SD keeps the FD waiting for "3000 OK data"; it reads the streams and says how many it got.
 */
async function slowStorageDaemon(key: string, mountDelayMs: number): Promise<{ port: number; streams: Promise<number>; close: () => void }> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const streams = new Promise<number>((resolve, reject) => {
    listener.once('connection', (socket) => {
      const sd = new Bsock(socket, 'agentfd serve (as FD)');
      (async () => {
        expect(await sd.receiveText()).toMatch(/^Hello Bacula SD: Start Job \S+ 213/);
        const ours = makeChallenge('test-sd');
        await sd.send(`auth cram-md5 ${ours} ssl=0\n`);
        expect(cramAccepts(ours, key, await sd.receiveText())).toBe(true);
        await sd.send('1000 OK auth\n');
        const theirs = /^auth cram-md5 (<[^>]+>)/.exec(await sd.receiveText())![1]!;
        await sd.send(`${cramResponse(theirs, key)}\0`);
        expect(await sd.receiveText()).toBe('1000 OK auth\n');
        await sd.send('3000 OK Hello 306\n');
        expect(await sd.receiveText()).toBe('append open session\n');
        await sd.send('3000 OK open ticket = 1\n');
        expect(await sd.receiveText()).toBe('append data 1\n');
        await new Promise((r) => setTimeout(r, mountDelayMs));
        await sd.send('3000 OK data\n');
        let count = 0;
        for (;;) {
          const header = await sd.receive();
          if (header.kind === 'signal') break; // EOD where a stream header would be: the end of the data
          count++;
          for (let m = await sd.receive(); m.kind === 'data'; m = await sd.receive());
        }
        await sd.send('3000 OK append data\n');
        expect(await sd.receiveText()).toBe('append end session 1\n');
        await sd.send('3000 OK end\n');
        expect(await sd.receiveText()).toBe('append close session 1\n');
        await sd.send('3000 OK close Status = 84\n');
        await sd.sendSignal(BNET.EOD);
        return count;
      })().then(resolve, reject);
    });
  });
  return { port: (listener.address() as net.AddressInfo).port, streams, close: () => listener.close() };
}

/** What a 9.6 Director sends to start a full backup of `dir` to the SD at `sdPort`, up to "2000 OK backup". */
async function startBackup(bs: Bsock, job: { id: number; name: string; key: string; dir: string; sdPort: number }): Promise<void> {
  await bs.send(`JobId=${job.id} Job=${job.name} SDid=1 SDtime=1 Authorization=${job.key}\n`);
  expect(await bs.receiveText()).toMatch(/^2000 OK Job/);
  await bs.send('level = full  mtime_only=0 \n');
  expect(await bs.receiveText()).toBe('2000 OK level\n');
  await bs.send('fileset vss=0\n');
  for (const item of ['I', 'O M', 'N', `F ${job.dir}`, 'N', 'N']) await bs.send(`${item}\n`);
  await bs.sendSignal(BNET.EOD);
  expect(await bs.receiveText()).toBe('2000 OK include\n');
  await bs.send(`storage address=127.0.0.1 port=${job.sdPort} ssl=0\n`);
  expect(await bs.receiveText()).toBe('2000 OK storage\n');
  await bs.send('backup FileIndex=0\n');
  expect(await bs.receiveText()).toBe('2000 OK backup\n');
}

describe('heartbeats', () => {
  it('sends the Director heartbeats while the job waits on the Storage Daemon', async () => {
    const { fd: beating, port: fdPort } = await startServer([], { heartbeatMs: 100 });
    const key = 'HKGM-AKMD-NAPI-MMFP-CCNM-GGKK-FAKG-IICH';
    const sd = await slowStorageDaemon(key, 700);
    const dataDir = tempDir('heartbeat');
    writeFileSync(path.join(dataDir, 'one.txt'), 'one\n');
    try {
      const bs = await directorAt(fdPort);
      await startBackup(bs, { id: 7, name: 'Beat.2026-11-27_10.00.00_07', key, dir: dataDir, sdPort: sd.port });
      // Read everything up to the End Job, heartbeats included (receive() would skip them).
      let heartbeats = 0;
      let endJob = '';
      for (;;) {
        const m = await bs.receive({ skipHeartbeats: false });
        if (m.kind === 'signal') {
          if (m.signal === BNET.HEARTBEAT) heartbeats++;
          else break; // TERMINATE after the End Job
        } else if (m.data.toString().startsWith('2800 End Job')) endJob = m.data.toString();
      }
      expect(heartbeats).toBeGreaterThanOrEqual(4); // 700 ms of waiting, one every 100 ms
      expect(endJob).toMatch(/^2800 End Job TermCode=84 JobFiles=2 /);
      expect(await sd.streams).toBe(4); // the file's attributes, data and MD5, then the directory's attributes
      bs.destroy();
    } finally {
      sd.close();
      await beating.close();
    }
  });
});

describe('a Director that hangs up', () => {
  it('ends only its job, as failed and said why, and agentfd goes on serving', async () => {
    const logs: string[] = [];
    const { fd, port: fdPort } = await startServer(logs);
    const key = 'AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH';
    const sd = await slowStorageDaemon(key, 600);
    const dataDir = tempDir('hangup');
    for (let i = 0; i < 50; i++) writeFileSync(path.join(dataDir, `f${i}.txt`), `file ${i}\n`);
    try {
      const bs = await directorAt(fdPort);
      await startBackup(bs, { id: 9, name: 'Dropped.2026-11-27_10.00.00_09', key, dir: dataDir, sdPort: sd.port });
      bs.destroy(); // the Director is gone while the SD is still mounting its volume
      // The job stops at once (no file is sent after the SD is ready) and ends as an error.
      expect(await sd.streams).toBe(0);
      for (let i = 0; i < 50 && !logs.some((l) => l.includes('job 9 (Dropped')); i++) await new Promise((r) => setTimeout(r, 20));
      expect(logs.find((l) => l.includes('job 9 (Dropped'))).toMatch(/ended: Error, 0 files.*the job stopped: Director at 127\.0\.0\.1:\d+ closed the connection/);
      // Another Director connection is served, and status tells what happened to the job.
      const next = await directorAt(fdPort);
      await next.send('JobId=0 Job=-Console-.2026-11-27_10.00.01_10 SDid=0 SDtime=0 Authorization=dummy\n');
      await next.receiveText();
      await next.send('status');
      const lines: string[] = [];
      for (let m = await next.receive(); m.kind === 'data'; m = await next.receive()) lines.push(m.data.toString());
      expect(lines.join('')).toContain('No Jobs running.');
      // bacula-fd's table: level name, bytes with a suffix, the job's name without its date.
      expect(lines.join('')).toMatch(/^ {5}9 {2}Full {10}0 {9}0 {3}Error {4}\d\d-\w{3}-\d\d \d\d:\d\d Dropped\n/m);
      next.destroy();
    } finally {
      sd.close();
      await fd.close();
    }
  });
});

describe('max_jobs', () => {
  it('refuses a job over the limit with bacula-fd\'s 2901 and the reason in a job message, and takes jobs again once one ends', async () => {
    const logs: string[] = [];
    const { fd, port: fdPort } = await startServer(logs, { maxJobs: 1 });
    const connectTo = () => directorAt(fdPort);
    const startJob = async (bs: Bsock, id: number) => {
      await bs.send(`JobId=${id} Job=Limit.2026-11-27_10.00.00_${id} SDid=1 SDtime=1 Authorization=KEY\n`);
      return bs.receiveText();
    };
    try {
      const first = await connectTo();
      expect(await startJob(first, 11)).toMatch(/^2000 OK Job/);
      const second = await connectTo();
      const jmsg = await startJob(second, 12);
      expect(jmsg).toMatch(/^Jmsg JobId=12 type=3 level=\d+ agentfd-fd JobId 12: Fatal error: agentfd-fd refused the job: 1 jobs are running, the most \[serve\] max_jobs allows/);
      expect(await second.receiveText()).toBe('2901 Bad Job\n');
      expect(logs.some((l) => l.includes('job 12 (Limit.2026-11-27_10.00.00_12) refused'))).toBe(true);
      second.destroy();
      first.destroy(); // the Director hangs up: job 11 ends
      for (let i = 0; i < 50 && !logs.some((l) => l.includes('job 11 (')); i++) await new Promise((r) => setTimeout(r, 20));
      const third = await connectTo();
      expect(await startJob(third, 13)).toMatch(/^2000 OK Job/);
      third.destroy();
    } finally {
      await fd.close();
    }
  });
});

describe('shutdown (SIGTERM)', () => {
  it('ends a running job within 2 s: a fatal job message and End Job TermCode=102 to the Director, the SD dropped', async () => {
    const { fd, port: fdPort } = await startServer([]);
    const key = 'KKLM-AKMD-NAPI-MMFP-CCNM-GGKK-FAKG-IICH';
    const sd = await slowStorageDaemon(key, 30_000); // the job waits on the SD's volume
    const dropped = sd.streams.then(() => false, () => true);
    const dataDir = tempDir('shutdown');
    writeFileSync(path.join(dataDir, 'one.txt'), 'one\n');
    try {
      const bs = await directorAt(fdPort);
      await startBackup(bs, { id: 11, name: 'Stopped.2026-11-27_10.00.00_11', key, dir: dataDir, sdPort: sd.port });
      const started = Date.now();
      await fd.shutdown('SIGTERM');
      expect(Date.now() - started).toBeLessThan(2_000);
      const said: string[] = [];
      for (let m = await bs.receive(); m.kind === 'data'; m = await bs.receive()) said.push(m.data.toString());
      expect(said[0]).toMatch(/^Jmsg JobId=11 type=3 level=\d+ agentfd-fd JobId 11: Fatal error: agentfd-fd received SIGTERM and is shutting down/);
      expect(said.find((m) => m.startsWith('2800 End Job'))).toMatch(/^2800 End Job TermCode=102 JobFiles=0 /);
      expect(await dropped).toBe(true);
      bs.destroy();
    } finally {
      sd.close();
    }
  });
});

describe('setbandwidth', () => {
  it("answers bacula-fd's replies: a running job's limit, the limit of future jobs, a job it does not run", async () => {
    const { fd, port } = await startServer([]);
    try {
      const bs = await directorAt(port);
      await bs.send('JobId=0 Job=-Console-.2026-11-27_10.00.00_01 SDid=0 SDtime=0 Authorization=dummy\n');
      await bs.receiveText();
      await bs.send('setbandwidth=1000 Job=Nope.2026-11-27_10.00.00_02\n');
      expect(await bs.receiveText()).toBe('2901 Job Nope.2026-11-27_10.00.00_02 not found.\n');
      await bs.send('setbandwidth=2048000 Job=\n');
      expect(await bs.receiveText()).toBe('2000 OK Bandwidth\n');
      expect(fd.statusLines().join('')).toContain(' bwlimit=2,000kB/s\n');
      bs.destroy();
    } finally {
      await fd.close();
    }
  });
});
