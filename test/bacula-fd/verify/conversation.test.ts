/** `verify level=...` in a Director's conversation with agentfd serve, as bacula-dir 9.6 sends it. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FileDaemonServer } from '../../../src/bacula-fd/director/server.js';
import { BNET, type Bsock } from '../../../src/bacula-fd/wire/bsock.js';
import { tempDir } from '../../helpers/native.js';
import { directorAt, startServer, statusClient } from '../scripted-director.js';

let fd: FileDaemonServer | null = null;
afterEach(async () => {
  await fd?.close();
  fd = null;
});

/** Every message up to and including the TERMINATE signal, as text ('EOD' and 'TERMINATE' for those signals). */
async function untilTerminate(bs: Bsock): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const m = await bs.receive();
    if (m.kind === 'signal') {
      if (m.signal === BNET.HEARTBEAT) continue;
      got.push(m.signal === BNET.EOD ? 'EOD' : m.signal === BNET.TERMINATE ? 'TERMINATE' : `signal ${m.signal}`);
      if (m.signal === BNET.TERMINATE) return got;
    } else got.push(m.data.toString('latin1'));
  }
}

/** JobId, then the FileSet of one File line, as the Director starts a Verify job. */
async function startJob(bs: Bsock, root: string, options = 'MVpins5:'): Promise<void> {
  await bs.send('JobId=7 Job=Verify.2026-12-07_10.00.00_01 SDid=0 SDtime=0 Authorization=dummy\n');
  expect(await bs.receiveText()).toMatch(/^2000 OK Job /);
  await bs.send('fileset vss=1\n');
  for (const item of ['I\n', `O ${options}\n`, 'N\n', `F ${root}`, 'N\n', 'N\n']) await bs.send(item);
  await bs.sendSignal(BNET.EOD);
  expect(await bs.receiveText()).toBe('2000 OK include\n');
}

describe('serve: verify level=', () => {
  it('init: 2000 OK verify, the attributes and digests, EOD, then the End Job and TERMINATE as bacula-fd sends them', async () => {
    const root = path.join(tempDir('verify-conversation'), 'root');
    mkdirSync(root);
    writeFileSync(path.join(root, 'hello'), 'hello\n');
    const logs: string[] = [];
    const server = await startServer(logs);
    fd = server.fd;
    const bs = await directorAt(server.port);
    await startJob(bs, root);
    await bs.send('verify level=init\n');
    expect(await bs.receiveText()).toBe('2000 OK verify\n');
    const got = await untilTerminate(bs);
    expect(got[0]).toMatch(new RegExp(`^1 1 VVpins5 ${root}/hello\\0[^\\0]+ A A A\\0\\0$`));
    expect(got[1]).toBe('1 3 sZRqySSS0jR8YjW00mERhA *MD5-1*');
    expect(got[2]).toMatch(new RegExp(`^2 1 VVpins5 ${root}/\\0`));
    expect(got.slice(3)).toEqual(['EOD', '2800 End Job TermCode=84 JobFiles=2 ReadBytes=6 JobBytes=6 Errors=0 VSS=0 Encrypt=0 CommBytes=0 CompressCommBytes=0\n', 'TERMINATE']);
    bs.close();
    const status = await statusClient(await directorAt(server.port));
    // The Terminated table as bacula-fd writes it: level "Init" (Init Catalog, cut to 4), the job's name without its date.
    expect(status).toMatch(/\n\s+7\s+Init\s+2\s+6\s+OK\s+\S+ \S+ Verify\n/);
  });

  it('a level bacula-fd does not know is refused with 2994; a volume level without storage ends the job fatally, saying why', async () => {
    const server = await startServer([]);
    fd = server.fd;
    const bs = await directorAt(server.port);
    await startJob(bs, '/nonexistent');
    await bs.send('verify level=everything\n');
    expect(await bs.receiveText()).toBe('2994 Bad verify level: verify level=everything\n\n');
    bs.close();
    const again = await directorAt(server.port);
    await startJob(again, '/nonexistent');
    await again.send('verify level=volume\n');
    expect(await again.receiveText()).toBe('2000 OK verify\n');
    const got = await untilTerminate(again);
    expect(got[0]).toMatch(/^Jmsg JobId=7 type=3 .*Fatal error: Storage command not issued before Verify\.\n$/);
    expect(got.slice(1)).toEqual(['EOD', expect.stringMatching(/^2800 End Job TermCode=102 JobFiles=0 ReadBytes=0 JobBytes=0 Errors=1 /), 'TERMINATE']);
  });
});
