/**
 * agentfd serve's Director conversation over a real socket, with this test playing the Director
 * the way bacula-dir 9.6 does (research/bacula-protocol.md, section 4): the hello, CRAM-MD5 both
 * ways with the MD5 of the Client password, a wrong password refused, `status` answered line by
 * line until EOD, and an unknown command refused. Jobs against a real Director and Storage Daemon
 * are in test/bacula-lab/.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BNET, Bsock } from '../../src/bacula/bsock.js';
import { cramAccepts, cramResponse, directorKey, makeChallenge } from '../../src/bacula/cram-md5.js';
import { FileDaemonServer } from '../../src/bacula/server.js';

let server: FileDaemonServer;
let port: number;
const logs: string[] = [];

beforeAll(async () => {
  server = new FileDaemonServer({
    name: 'agentfd-fd', address: '127.0.0.1', port: 0, maxJobs: 5,
    directors: [{ name: 'test-dir', password: 'right-pass' }],
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  port = await server.listen();
});
afterAll(() => server.close());

async function connect(): Promise<Bsock> {
  const socket = await new Promise<net.Socket>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
  });
  return new Bsock(socket, 'agentfd serve');
}

/** The Director's side of the handshake; returns the FD's final answer. */
async function handshake(bs: Bsock, name: string, password: string): Promise<string> {
  await bs.send(`Hello Director ${name} calling 103\n`);
  const challenge = /^auth cram-md5 (<[^>]+>) ssl=0/.exec(await bs.receiveText());
  expect(challenge).not.toBeNull();
  await bs.send(`${cramResponse(challenge![1]!, directorKey(password))}\0`);
  const verdict = await bs.receiveText();
  if (!verdict.startsWith('1000 OK auth')) return verdict;
  const ours = makeChallenge('test-dir');
  await bs.send(`auth cram-md5 ${ours} ssl=0\n`);
  const answer = await bs.receiveText();
  expect(cramAccepts(ours, directorKey(password), answer)).toBe(true);
  await bs.send('1000 OK auth\n');
  return bs.receiveText();
}

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
    await bs.send('JobId=0 Job=-Console-.2026-11-27_10.00.00_01 SDid=0 SDtime=0 Authorization=dummy\n');
    expect(await bs.receiveText()).toMatch(/^2000 OK Job \S+ \(agentfd\) /);
    await bs.send('status');
    const lines: string[] = [];
    for (;;) {
      const m = await bs.receive();
      if (m.kind === 'signal') {
        expect(m.signal).toBe(BNET.EOD);
        break;
      }
      lines.push(m.data.toString());
    }
    expect(lines[0]).toMatch(/^agentfd-fd Version: agentfd /);
    expect(lines.join('')).toContain('No Jobs running.');
    expect(lines.join('')).toContain('Terminated Jobs:');
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
