/**
 * Bridge benchmark: the Exchange sample streaming one large database (from the page cache)
 * through the bridge to a sink that discards it, in-process and isolated in a host process,
 * against the C harness calling the same agent directly (the ceiling).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';

export async function bridgeCases({ streamBytes, scratch, root }) {
  const dist = (p) => import(path.join(root, 'dist', p));
  const { loadNativeAgent } = await dist('agents/native/library.js');
  const { describeLibrary } = await dist('agents/descriptor.js');
  const { NativeAgent } = await dist('bridge/native-agent.js');
  const { IsolatedAgent } = await dist('host/isolated-agent.js');
  const agentFile = path.join(root, 'binding', 'build', 'Release', 'agents', process.platform === 'win32' ? 'exchange.dll' : 'exchange.so');
  const harness = path.join(root, 'binding', 'build', 'Release', process.platform === 'win32' ? 'afd_harness.exe' : 'afd_harness');

  // One storage group with one database of streamBytes (written once, then read from the cache).
  const store = path.join(scratch, 'store');
  mkdirSync(path.join(store, 'SG1', 'logs'), { recursive: true });
  const fd = openSync(path.join(store, 'SG1', 'Big.edb'), 'w');
  const block = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let written = 0; written < streamBytes; written += block.length) writeSync(fd, block);
  closeSync(fd);

  const library = loadNativeAgent(agentFile);
  const descriptor = describeLibrary(library);
  const request = () => ({
    jobName: 'bench', jobId: 1, options: { store, truncate_logs: 'no' }, filesetCheck: () => true, log: () => undefined,
    isCancelled: () => false, level: 'full', sinceNs: 0n, jobStartNs: 0n, referenceState: null,
  });
  const drain = async (agent) => {
    const started = process.hrtime.bigint();
    const run = await agent.backup(request());
    let bytes = 0;
    for await (const file of run.files) for (const stream of file.streams) for await (const chunk of stream.data()) bytes += chunk.length;
    await run.close();
    return { bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  };
  return {
    title: 'bridge',
    store,
    cases: [
      {
        name: 'C harness (direct calls)',
        run: async () => {
          const started = process.hrtime.bigint();
          const result = spawnSync(harness, ['backup', agentFile, path.join(scratch, 'dump'), '--discard', '--buf', String(1024 * 1024), '-q', `store=${store}`, 'truncate_logs=no'], { encoding: 'utf8' });
          if (result.status !== 0) throw new Error(`afd_harness failed: ${result.stderr}`);
          return { bytes: streamBytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
        },
      },
      { name: 'in-process (isolation = none)', baseline: 'C harness (direct calls)', run: () => drain(new NativeAgent(library)) },
      {
        name: 'isolated host process (default)',
        baseline: 'in-process (isolation = none)',
        note: 'goal: at least 85% of in-process',
        run: () => drain(new IsolatedAgent(descriptor, { callTimeoutMs: 600_000, cancelGraceMs: 10_000 })),
      },
    ],
  };
}
