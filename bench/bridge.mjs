/**
 * Bridge benchmark: the Exchange sample streaming one large database (from the page cache)
 * through the bridge to a sink that discards it, in-process and isolated in a host process,
 * against the C harness calling the same agent directly (the ceiling). Nothing but the bridge is
 * measured: no hashing, no codec, no volume (the pipeline suite has those).
 *
 * The database is the large input of the invocation (quick 1 GiB, full 4 GiB): long enough that
 * the fixed cost of starting a host process does not dominate.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** `input`: an Exchange store of one database (bench/inputs.mjs), `input.bytes` long. */
export async function bridgeCases({ input, scratch, root }) {
  const { store, bytes: streamBytes } = input;
  const dist = (p) => import(path.join(root, 'dist', p));
  const { loadNativeAgent } = await dist('agents/native/library.js');
  const { describeLibrary } = await dist('agents/descriptor.js');
  const { NativeAgent } = await dist('bridge/native-agent.js');
  const { IsolatedAgent } = await dist('host/isolated-agent.js');
  const agentFile = path.join(root, 'binding', 'build', 'Release', 'agents', process.platform === 'win32' ? 'exchange.dll' : 'exchange.so');
  const harness = path.join(root, 'binding', 'build', 'Release', process.platform === 'win32' ? 'afd_harness.exe' : 'afd_harness');

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
    if (bytes !== streamBytes) throw new Error(`the bridge delivered ${bytes} bytes of a ${streamBytes}-byte database`);
    return { bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  };
  const bridgeCase = (id, name, extra) => ({ id: `bridge/${id}`, suite: 'bridge', name, input, note: 'discarding sink, in this process', ...extra });
  return [
    bridgeCase('harness', 'C harness (direct calls)', {
      note: 'discarding sink, afd_harness in a child process',
      run: async () => {
        const started = process.hrtime.bigint();
        const result = spawnSync(harness, ['backup', agentFile, path.join(scratch, 'dump'), '--discard', '--buf', String(1024 * 1024), '-q', `store=${store}`, 'truncate_logs=no'], { encoding: 'utf8' });
        if (result.status !== 0) throw new Error(`afd_harness failed: ${result.stderr}`);
        return { bytes: streamBytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
      },
    }),
    bridgeCase('in-process', 'in-process (isolation = none)', { baseline: 'bridge/harness', run: () => drain(new NativeAgent(library)) }),
    bridgeCase('isolated', 'isolated host process (default)', {
      baseline: 'bridge/in-process',
      note: 'discarding sink; goal: >= 0.85x in-process',
      run: () => drain(new IsolatedAgent(descriptor, { callTimeoutMs: 600_000, cancelGraceMs: 10_000 })),
    }),
  ];
}
