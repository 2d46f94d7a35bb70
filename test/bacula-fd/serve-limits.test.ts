/**
 * agentfd serve before a Director has authenticated: strangers cannot starve it. An idle
 * connection is dropped after [serve] auth_timeout, a message header announcing more than a
 * Director's hello needs is refused at once (nothing buffered for it), at most
 * max_unauthenticated connections wait (a new one drops the oldest, so a Director still gets in,
 * even when the process has few file descriptors), and a failed authentication is answered only
 * after auth_failure_delay. Each drop is one log line naming the peer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_RECEIVE } from '../../src/bacula-fd/wire/bsock.js';
import { ROOT, tempDir } from '../helpers/native.js';
import { connectTo, directorAt, handshake, rawConnection, startServer, statusClient } from './scripted-director.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Resolves with the milliseconds until the server closes `socket`, or null if it is still open after `withinMs`. */
function closedWithin(socket: net.Socket, withinMs: number): Promise<number | null> {
  const start = Date.now();
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => resolve(null), withinMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
  });
}

/** A 4-byte Bacula message header announcing `length` bytes. */
function header(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(length, 0);
  return b;
}

async function serverFor(settings: Parameters<typeof startServer>[1]) {
  const logs: string[] = [];
  const { fd, port } = await startServer(logs, settings);
  cleanups.push(() => fd.close());
  return { logs, port };
}

async function idleConnection(port: number): Promise<net.Socket> {
  const socket = await rawConnection(port);
  socket.on('error', () => undefined); // the server resets it
  cleanups.push(() => socket.destroy());
  return socket;
}

describe('before authentication', () => {
  it('drops a connection that does not authenticate within auth_timeout, saying so with its address', async () => {
    const { logs, port } = await serverFor({ authTimeoutMs: 300 });
    const idle = await idleConnection(port);
    const idlePort = idle.localPort;
    const after = await closedWithin(idle, 5_000);
    expect(after).not.toBeNull();
    expect(after!).toBeGreaterThanOrEqual(250);
    expect(logs).toContain(`warning: connection from 127.0.0.1:${idlePort} dropped: not authenticated within 0.3 s ([serve] auth_timeout)`);
    // A Director that authenticates is not dropped once the timeout has passed.
    const director = await directorAt(port);
    cleanups.push(() => director.destroy());
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await statusClient(director)).toContain('No Jobs running.');
  });

  it('refuses a header announcing more than a Director would send at once, and holds no memory for half-sent frames', async () => {
    const { logs, port } = await serverFor({ maxUnauthenticated: 1000 });
    const one = await idleConnection(port);
    const onePort = one.localPort;
    one.write(header(MAX_RECEIVE)); // Bacula's own limit: fine after authentication, not before
    expect(await closedWithin(one, 2_000)).not.toBeNull();
    expect(logs).toContainEqual(expect.stringMatching(new RegExp(`^warning: connection from 127\\.0\\.0\\.1:${onePort}: .*sent a 1000000-byte message before authenticating, over the 65536-byte limit`)));

    // 100 strangers each send a header and most of a 1 MB payload: nothing of it may stay in memory.
    const payload = Buffer.alloc(900_000, 7); // one buffer for every write, so the senders hold nothing more
    globalThis.gc?.();
    const before = process.memoryUsage().arrayBuffers;
    const sockets = await Promise.all(Array.from({ length: 100 }, () => idleConnection(port)));
    await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve) => {
            socket.once('close', () => resolve());
            socket.write(Buffer.concat([header(MAX_RECEIVE), payload.subarray(0, 1000)]));
            socket.write(payload, () => resolve());
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(grown).toBeLessThan(16 * 1024 * 1024); // unbounded, it is ~90 MB
  });

  it('with more idle connections than max_unauthenticated, drops the oldest and still lets a Director authenticate and run status', async () => {
    const { logs, port } = await serverFor({ maxUnauthenticated: 5 });
    const idle: net.Socket[] = [];
    const ports: (number | undefined)[] = [];
    for (let i = 0; i < 20; i++) {
      idle.push(await idleConnection(port));
      ports.push(idle[i]!.localPort); // read now: a dropped socket forgets it
    }
    const director = await directorAt(port);
    cleanups.push(() => director.destroy());
    expect(await statusClient(director)).toMatch(/^agentfd-fd Version: agentfd /);
    // The 16 oldest made room (the 15 over the cap, then one for the Director); the newest four wait on.
    const closed = await Promise.all(idle.map((socket) => closedWithin(socket, 300)));
    expect(closed.slice(0, 16).every((ms) => ms !== null)).toBe(true);
    expect(closed.slice(16).every((ms) => ms === null)).toBe(true);
    const drops = logs.filter((l) => l.includes('max_unauthenticated'));
    expect(drops).toHaveLength(16);
    expect(drops[0]).toBe(`warning: connection from 127.0.0.1:${ports[0]} dropped: 5 connections were waiting to authenticate, the most [serve] max_unauthenticated allows, and it was the oldest`);
  });

  it('answers a failed authentication only after auth_failure_delay, without making a Director wait meanwhile', async () => {
    const { logs, port } = await serverFor({ authFailureDelayMs: 800 });
    const guesser = await connectTo(port);
    cleanups.push(() => guesser.destroy());
    const start = Date.now();
    const verdict = handshake(guesser, 'test-dir', 'wrong-pass').then((answer) => ({ answer, ms: Date.now() - start }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const director = await directorAt(port); // authenticates while the guesser waits
    cleanups.push(() => director.destroy());
    const directorDone = Date.now() - start;
    const { answer, ms } = await verdict;
    expect(answer).toBe('1999 Authorization failed.\n');
    expect(ms).toBeGreaterThanOrEqual(780);
    expect(directorDone).toBeLessThan(780);
    expect(logs.some((l) => new RegExp(`connection from 127\\.0\\.0\\.1:\\d+: Director "test-dir" failed authentication`).test(l))).toBe(true);
  });
});

describe('agentfd serve (the CLI) with few file descriptors', () => {
  let child: ChildProcess | null = null;
  afterEach(() => {
    child?.kill('SIGTERM');
    child = null;
  });

  it('keeps serving a Director while more idle connections are open than it has descriptors for', async () => {
    const dir = tempDir('serve-fds');
    const config = path.join(dir, 'agentfd.toml');
    writeFileSync(config, ['[serve]', 'name = "agentfd-fd"', 'port = 9102', 'max_unauthenticated = 16', 'auth_timeout = "1m"', '[[serve.directors]]', 'name = "test-dir"', 'password = "right-pass"', ''].join('\n'));
    // 128 descriptors: Node and its libraries take a few dozen, the 200 strangers would take the rest.
    const started = spawn('sh', ['-c', `ulimit -n 128 && exec "$0" "$@"`, process.execPath, path.join(ROOT, 'bin', 'agentfd.js'), 'serve', '--config', config, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let output = '';
    const port = await new Promise<number>((resolve, reject) => {
      const take = (chunk: Buffer) => {
        output += chunk.toString();
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(output);
        if (m) resolve(Number(m[1]));
      };
      started.stdout!.on('data', take);
      started.stderr!.on('data', take);
      started.once('exit', (code) => reject(new Error(`agentfd serve exited (${code}):\n${output}`)));
    });
    const idle: net.Socket[] = [];
    for (let i = 0; i < 200; i++) idle.push(await idleConnection(port));
    const director = await directorAt(port);
    cleanups.push(() => director.destroy());
    expect(await statusClient(director)).toMatch(/^agentfd-fd Version: agentfd /);
    expect(output).toContain('dropped: 16 connections were waiting to authenticate');
    expect(started.exitCode).toBeNull();
  });
});
