/**
 * The bridge with a real compiled agent: files and streams as async iterators, reads pulled by the
 * consumer (backpressure reaches the agent), the event loop free while the agent reads, and the
 * read order enforced.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BackupRequest } from '../../src/agents/agent.js';
import { NativeAgentSession, type NativeAgentLibrary } from '../../src/agents/native/session.js';
import { loadNativeAgent } from '../../src/agents/native/library.js';
import { NativeAgent, READ_SIZE } from '../../src/bridge/native-agent.js';
import { builtAgent, removeDir, tempDir } from '../helpers/native.js';

let exchange: NativeAgentLibrary;
let store: string;
const BIG = 64 * 1024 * 1024;

beforeAll(() => {
  exchange = loadNativeAgent(builtAgent('exchange'));
  store = tempDir('bridge-store');
  mkdirSync(path.join(store, 'SG1', 'logs'), { recursive: true });
  writeFileSync(path.join(store, 'SG1', 'Big.edb'), Buffer.alloc(BIG, 7));
  writeFileSync(path.join(store, 'SG1', 'Small.edb'), randomBytes(1000));
  writeFileSync(path.join(store, 'SG1', 'logs', 'E00000001.log'), randomBytes(3000));
});
afterAll(() => {
  exchange.unload();
  removeDir(store);
});

function request(): BackupRequest {
  return {
    jobName: 'bridge', jobId: 1, options: { store, truncate_logs: 'no' }, filesetCheck: () => true, log: () => undefined,
    isCancelled: () => false, level: 'full', sinceNs: 0n, jobStartNs: 0n, referenceState: null,
  };
}

describe('the native bridge', () => {
  it('turns the agent calls into files with streams, byte for byte', async () => {
    const run = await new NativeAgent(exchange).backup(request());
    const seen = new Map<string, Buffer>();
    for await (const file of run.files) {
      const parts: Buffer[] = [];
      for (const stream of file.streams) for await (const chunk of stream.data()) parts.push(Buffer.from(chunk));
      seen.set(file.path, Buffer.concat(parts));
    }
    await run.close();
    expect([...seen.keys()]).toEqual(['/@exchange/SG1/Big.edb', '/@exchange/SG1/Small.edb', '/@exchange/SG1/logs/E00000001.log']);
    expect(seen.get('/@exchange/SG1/Small.edb')!.equals(readFileSync(path.join(store, 'SG1', 'Small.edb')))).toBe(true);
    expect(seen.get('/@exchange/SG1/Big.edb')!.length).toBe(BIG);
  });

  it('reads only when the consumer pulls: a paused consumer pauses the agent', async () => {
    const reads = vi.spyOn(NativeAgentSession.prototype, 'read');
    try {
      const run = await new NativeAgent(exchange).backup(request());
      const files = run.files[Symbol.asyncIterator]();
      const big = (await files.next()).value!;
      const data = big.streams[0]!.data()[Symbol.asyncIterator]();
      await data.next();
      await data.next();
      const before = reads.mock.calls.length;
      await sleep(100); // a slow sink
      expect(reads.mock.calls.length).toBe(before);
      expect(before).toBe(2);
      await data.return?.(undefined);
      await run.close();
    } finally {
      reads.mockRestore();
    }
  });

  it('keeps the event loop turning while the agent reads (calls run on the thread pool)', async () => {
    const turns = async (offThread: boolean) => {
      let count = 0;
      let running = true;
      const spin = () => {
        count++;
        if (running) setImmediate(spin);
      };
      const run = await new NativeAgent(exchange, { offThread }).backup(request());
      const files = run.files[Symbol.asyncIterator]();
      const big = (await files.next()).value!;
      setImmediate(spin);
      count = 0;
      let bytes = 0;
      for await (const chunk of big.streams[0]!.data()) bytes += chunk.length;
      const during = count;
      running = false;
      await files.return?.(undefined);
      await run.close();
      expect(bytes).toBe(BIG);
      return during;
    };
    // In-process calls on the main thread would hold the loop for the whole stream; off-thread
    // calls let it turn between reads.
    expect(await turns(false)).toBe(0);
    expect(await turns(true)).toBeGreaterThanOrEqual(BIG / READ_SIZE / 2);
  });

  it('refuses to read streams out of order or to skip to the next file early', async () => {
    const run = await new NativeAgent(exchange).backup(request());
    const files = run.files[Symbol.asyncIterator]();
    const big = (await files.next()).value!;
    await expect(files.next()).rejects.toThrow(/the next file was asked for before all 1 streams were read/);
    await run.close();
    expect(big.path).toBe('/@exchange/SG1/Big.edb');
  });
});
