/**
 * The Director's side of agentfd serve's conversation, as bacula-dir 9.6 speaks it
 * ("Hello Director NAME calling 103", then CRAM-MD5 with the FD challenging first): the hello,
 * CRAM-MD5 both ways with the MD5 of the Client password, and `status`. The tests that play the Director share it.
 */
import net from 'node:net';
import { expect } from 'vitest';
import { BNET, Bsock } from '../../src/bacula-fd/wire/bsock.js';
import { cramAccepts, cramResponse, directorKey, makeChallenge } from '../../src/bacula-fd/wire/cram-md5.js';
import { FileDaemonServer, type ServeSettings } from '../../src/bacula-fd/director/server.js';

/** A plain TCP connection to agentfd serve on 127.0.0.1:`port`. */
export function rawConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** A Bsock to agentfd serve, not yet authenticated. */
export async function connectTo(port: number): Promise<Bsock> {
  return new Bsock(await rawConnection(port), 'agentfd serve');
}

/** The Director's side of the handshake; returns the FD's final answer. */
export async function handshake(bs: Bsock, name: string, password: string): Promise<string> {
  await bs.send(`Hello Director ${name} calling 103\n`);
  const challenge = /^auth cram-md5 (<[^>]+>) ssl=0/.exec(await bs.receiveText());
  expect(challenge).not.toBeNull();
  await bs.send(`${cramResponse(challenge![1]!, directorKey(password))}\0`);
  const verdict = await bs.receiveText();
  if (!verdict.startsWith('1000 OK auth')) return verdict;
  const ours = makeChallenge(name);
  await bs.send(`auth cram-md5 ${ours} ssl=0\n`);
  const answer = await bs.receiveText();
  expect(cramAccepts(ours, directorKey(password), answer)).toBe(true);
  await bs.send('1000 OK auth\n');
  return bs.receiveText();
}

/** `status client` as the console asks it (a JobId=0 job, then `status`): the lines before EOD. */
export async function statusClient(bs: Bsock): Promise<string> {
  await bs.send('JobId=0 Job=-Console-.2026-11-27_10.00.00_01 SDid=0 SDtime=0 Authorization=dummy\n');
  expect(await bs.receiveText()).toMatch(/^2000 OK Job \S+ \(agentfd\) /);
  await bs.send('status');
  const lines: string[] = [];
  for (;;) {
    const m = await bs.receive();
    if (m.kind === 'signal') {
      expect(m.signal).toBe(BNET.EOD);
      return lines.join('');
    }
    lines.push(m.data.toString());
  }
}

/** A File Daemon on a free port of 127.0.0.1 for one test, for Director test-dir (password right-pass), logging into `logs`. */
export async function startServer(logs: string[], settings: Partial<ServeSettings> = {}): Promise<{ fd: FileDaemonServer; port: number }> {
  const fd = new FileDaemonServer({
    name: 'agentfd-fd', address: '127.0.0.1', port: 0, maxJobs: 5, heartbeatMs: 0,
    directors: [{ name: 'test-dir', password: 'right-pass' }],
    log: (level, message) => logs.push(`${level}: ${message}`),
    ...settings,
  });
  return { fd, port: await fd.listen() };
}

/** A Director connection to `port`, authenticated as test-dir. */
export async function directorAt(port: number): Promise<Bsock> {
  const bs = await connectTo(port);
  expect(await handshake(bs, 'test-dir', 'right-pass')).toBe('2000 OK Hello 213\n');
  return bs;
}
