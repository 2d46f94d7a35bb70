/**
 * The SyntheticFiles sample (native-samples/synthetic/), the benchmarks' load generator: the real
 * compiled library, driven through the bridge as a job drives it, through the session where the
 * bridge hides something (the read size, a tampered restore), through the C harness for
 * generation 1, and once through the CLI for a whole backup and restore.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentFile, BackupRequest, RestoreRequest } from '../../src/agents/agent.js';
import { HOST_MAX_ABI, type LogLevel } from '../../src/agents/types.js';
import { loadNativeAgent } from '../../src/agents/native/library.js';
import { NativeAgentSession, type NativeAgentLibrary } from '../../src/agents/native/session.js';
import { NativeAgent } from '../../src/bridge/native-agent.js';
import { AgentCallError } from '../../src/errors.js';
import { runCliJson } from '../helpers/cli.js';
import { LIB_EXT, RELEASE_DIR, SAMPLE_DIR, builtAgent, builtAgentNames, makePluginDir, removeDir, tempDir } from '../helpers/native.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let library: NativeAgentLibrary;
let agent: NativeAgent;
const cleanup: string[] = [];

beforeAll(() => {
  library = loadNativeAgent(builtAgent('synthetic'));
  agent = new NativeAgent(library);
});
afterAll(() => {
  library.unload();
  cleanup.forEach(removeDir);
});

function dir(prefix: string): string {
  const d = tempDir(prefix);
  cleanup.push(d);
  return d;
}

function collectLogs() {
  const lines: { level: LogLevel; message: string }[] = [];
  return { lines, log: (level: LogLevel, message: string) => void lines.push({ level, message }) };
}

interface Saved {
  file: AgentFile;
  data: Buffer;
}

/** A whole full backup through the bridge (as a job runs it): every file with its data. */
async function backup(options: Record<string, string>, request: Partial<BackupRequest> = {}): Promise<Saved[]> {
  const run = await agent.backup({
    jobName: 'synthetic', jobId: 1, options, filesetCheck: () => true, log: () => undefined, isCancelled: () => false,
    level: 'full', sinceNs: 0n, jobStartNs: 0n, referenceState: null, ...request,
  });
  const saved: Saved[] = [];
  try {
    for await (const file of run.files) {
      const chunks: Buffer[] = [];
      for (const stream of file.streams) for await (const chunk of stream.data()) chunks.push(Buffer.from(chunk));
      saved.push({ file, data: Buffer.concat(chunks) });
    }
    await run.finish(true);
  } finally {
    await run.close();
  }
  return saved;
}

/** Replay saved files through the agent's restore, in chunks of `chunk` bytes. */
async function restore(saved: Iterable<Saved>, options: Record<string, string>, request: Partial<RestoreRequest> = {}, chunk = 65536) {
  const run = await agent.restore({
    jobName: 'synthetic', jobId: 1, options, filesetCheck: () => true, log: () => undefined, isCancelled: () => false,
    target: dir('synthetic-target'), sourceAbi: 2, sourceAgentVersion: '1.0.0', ...request,
  });
  try {
    for (const { file, data } of saved) {
      await run.startFile(file);
      for (let off = 0; off < data.length; off += chunk) await run.write(0, data.subarray(off, off + chunk));
      await run.endFile(true);
    }
    await run.finish();
  } finally {
    await run.close();
  }
}

const sha256 = (saved: Saved[]) => saved.reduce((h, s) => h.update(s.file.path).update(s.data), createHash('sha256')).digest('hex');

/** The content as synthetic.c documents it: splitmix64 keyed by (seed, i), little-endian words. */
function expectedContent(seed: number, i: number, length: number): Buffer {
  const M = (1n << 64n) - 1n;
  const mix = (z: bigint) => {
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return z ^ (z >> 31n);
  };
  const key = mix((BigInt(seed) << 32n) | BigInt(i));
  const out = Buffer.alloc(Math.ceil(length / 8) * 8);
  for (let k = 0; k < out.length / 8; k++) out.writeBigUInt64LE(mix((key + BigInt(k + 1) * 0x9e3779b97f4a7c15n) & M), k * 8);
  return out.subarray(0, length);
}

describe('SyntheticFiles: the library', () => {
  it('is listed by agentfd plugins list with generations 1..3 and full backup and restore only', () => {
    const { status, json } = runCliJson(['plugins', 'list', '--plugin-dir', SAMPLE_DIR]);
    expect(status).toBe(0);
    expect(json.refused).toEqual([]);
    const names = json.agents.map((a: { name: string }) => a.name).sort();
    expect(names).toEqual(builtAgentNames());
    const synthetic = json.agents.find((a: { name: string }) => a.name === 'SyntheticFiles');
    expect(synthetic).toMatchObject({
      abi: HOST_MAX_ABI, agentAbiRange: [1, 3], vendor: 'agentfd samples', version: '1.0.0', file: path.join(SAMPLE_DIR, `synthetic${LIB_EXT}`),
    });
    expect([...synthetic.capabilities].sort()).toEqual(['cancel', 'full', 'restore', 'thread-safe']);
  });
});

describe('SyntheticFiles: backup', () => {
  it('generates 2,000 files of 1 KiB in directories of 1,000, reproducibly for a seed', async () => {
    const logs = collectLogs();
    const first = await backup({ files: '2000' }, { log: logs.log });
    expect(first).toHaveLength(2000);
    expect(first[0]!.file.path).toBe('/@synthetic/d000000/f000000000.dat');
    expect(first[999]!.file.path).toBe('/@synthetic/d000000/f000000999.dat');
    expect(first[1999]!.file.path).toBe('/@synthetic/d000001/f000001999.dat');
    expect(new Set(first.map((s) => s.file.path)).size).toBe(2000);
    for (const { file, data } of first) {
      expect(file).toMatchObject({ kind: 'regular', mode: 0o644, size: KiB, seen: false, linkTarget: null });
      expect(file.streams).toMatchObject([{ index: 0, type: 'data', name: 'data', sizeHint: KiB }]);
      expect(data.length).toBe(KiB);
    }
    // The default seed (1) gives an mtime in 2020, the same for every file.
    expect(new Set(first.map((s) => s.file.mtimeNs))).toEqual(new Set([(1577836800n + 1n) * 1_000_000_000n]));
    expect(logs.lines.map((l) => l.message)).toEqual([
      'SyntheticFiles: 2000 files of 1024 bytes, 1000 per directory, seed 1',
      'SyntheticFiles: generated 2000 files, 2048000 bytes; the job was committed',
    ]);

    // The content is the documented generator's, and it does not compress.
    expect(first[42]!.data.equals(expectedContent(1, 42, KiB))).toBe(true);
    const all = Buffer.concat(first.map((s) => s.data));
    expect(gzipSync(all).length).toBeGreaterThan(all.length);
    // Different files differ.
    expect(first[0]!.data.equals(first[1]!.data)).toBe(false);

    const again = await backup({ files: '2000', seed: '1' });
    expect(sha256(again)).toBe(sha256(first));
    const other = await backup({ files: '2000', seed: '2' });
    expect(sha256(other)).not.toBe(sha256(first));
    expect(other.map((s) => s.file.path)).toEqual(first.map((s) => s.file.path));
    expect(other[0]!.file.mtimeNs).toBe((1577836800n + 2n) * 1_000_000_000n);
  });

  it('delivers 3 files of 3 MiB over several reads of whatever size the host asks for', async () => {
    const options = { files: '3', size: String(3 * MiB), seed: '77', dirs: '2' };
    const saved = await backup(options); // the bridge reads 1 MiB at a time
    expect(saved.map((s) => s.file.path)).toEqual(['/@synthetic/d000000/f000000000.dat', '/@synthetic/d000000/f000000001.dat', '/@synthetic/d000001/f000000002.dat']);
    for (const { file, data } of saved) {
      expect(file.size).toBe(3 * MiB);
      expect(file.streams[0]!.sizeHint).toBe(3 * MiB);
      expect(data.length).toBe(3 * MiB);
    }
    expect(saved[2]!.data.equals(expectedContent(77, 2, 3 * MiB))).toBe(true);

    // Reads of 1000 bytes (not a multiple of the generator's 8-byte word) give the same bytes.
    const session = await NativeAgentSession.open(library, { jobName: 'synthetic', options });
    try {
      await session.backupPrepare('full', 0n, 0n);
      const buffer = new Uint8Array(1000);
      for (const { data } of saved) {
        const info = await session.nextFile();
        expect(info).not.toBeNull();
        await session.startStream(0);
        const chunks: Buffer[] = [];
        for (let n = await session.read(buffer); n > 0; n = await session.read(buffer)) {
          expect(n).toBeLessThanOrEqual(1000);
          chunks.push(Buffer.from(buffer.subarray(0, n)));
        }
        await session.endStream();
        await session.endFile();
        expect(Buffer.concat(chunks).equals(data)).toBe(true);
      }
      expect(await session.nextFile()).toBeNull();
    } finally {
      session.close();
    }
  });

  it('saves only what the fileset includes', async () => {
    const saved = await backup({ files: '2500', size: '0' }, { filesetCheck: (p) => !p.startsWith('/@synthetic/d000001/') });
    expect(saved).toHaveLength(1500);
    expect(saved.some((s) => s.file.path.startsWith('/@synthetic/d000001/'))).toBe(false);
    expect(saved.at(-1)!.file.path).toBe('/@synthetic/d000002/f000002499.dat');
  });

  it('asks is_cancelled() at the first file and then every 4096 files, and stops with AFD_E_CANCELLED', async () => {
    let cancelled = false;
    let asked = 0;
    const session = await NativeAgentSession.open(library, {
      jobName: 'synthetic', options: { files: '10000', size: '0' }, isCancelled: () => (asked++, cancelled),
    });
    try {
      await session.backupPrepare('full', 0n, 0n);
      let handedOut = 0;
      let error: unknown;
      try {
        for (;;) {
          if (await session.nextFile() === null) break;
          await session.endFile();
          handedOut++;
          cancelled = true;
        }
      } catch (e) {
        error = e;
      }
      expect(asked).toBe(2);
      expect(handedOut).toBe(4096);
      expect(error).toBeInstanceOf(AgentCallError);
      expect((error as AgentCallError).message).toMatch(/failed in backup_next_file\(\): the job was cancelled while generating files \(AFD_E_CANCELLED\)/);
    } finally {
      session.close();
    }
  });

  it('refuses bad option values, naming the option and the range', async () => {
    const prepare = async (options: Record<string, string>) => {
      const session = await NativeAgentSession.open(library, { jobName: 'synthetic', options });
      try {
        await session.backupPrepare('full', 0n, 0n);
      } finally {
        session.close();
      }
    };
    await expect(prepare({ files: '-1' })).rejects.toThrow(
      'agent "SyntheticFiles" failed in backup_prepare(): the job option files="-1" is invalid: give the number of files, a whole number from 0 to 100000000 (AFD_E_INVALID)',
    );
    await expect(prepare({ size: String(64 * MiB + 1) })).rejects.toThrow(
      'the job option size="67108865" is invalid: give the bytes per file (at most 64 MiB), a whole number from 0 to 67108864',
    );
    await expect(prepare({ dirs: '0' })).rejects.toThrow(/job option dirs="0" is invalid: .* from 1 to 100000000/);
    await expect(prepare({ seed: '4294967296' })).rejects.toThrow(/job option seed="4294967296" is invalid: .* from 0 to 4294967295/);
    await expect(prepare({ files: '12abc' })).rejects.toThrow(/job option files="12abc" is invalid/);
    await expect(prepare({ files: '' })).rejects.toThrow(/job option files="" is invalid/);
    await expect(prepare({ files: '100000000', size: String(64 * MiB), dirs: '100000000', seed: '4294967295' })).resolves.toBeUndefined();
  });
});

describe('SyntheticFiles: restore', () => {
  const options = { files: '2000', size: '1000', dirs: '300', seed: '9' };
  let saved: Saved[];
  beforeAll(async () => {
    saved = await backup(options);
  });

  it('verifies every file, writes nothing without write=yes, and logs a summary', async () => {
    const logs = collectLogs();
    const target = dir('synthetic-restore');
    await restore(saved, options, { log: logs.log, target }, 333);
    expect(readdirSync(target)).toEqual([]);
    expect(logs.lines.at(-1)).toEqual({
      level: 'info',
      message: 'SyntheticFiles: verified 2000 files (2000000 bytes) against seed 9, 0 failed; nothing written to disk',
    });
    expect(logs.lines.some((l) => l.message.includes(`nothing is written to ${target}`))).toBe(true);
  });

  it('writes the verified files below the restore target with write=yes', async () => {
    const writeTo = path.join(dir('synthetic-write'), 'out');
    const logs = collectLogs();
    await restore(saved.slice(0, 700), { ...options, write: 'yes' }, { log: logs.log, target: writeTo });
    expect(readdirSync(writeTo)).toEqual(['d000000', 'd000001', 'd000002']);
    expect(readdirSync(path.join(writeTo, 'd000001'))).toHaveLength(300);
    expect(readFileSync(path.join(writeTo, 'd000002', 'f000000699.dat')).equals(saved[699]!.data)).toBe(true);
    expect(logs.lines.at(-1)!.message).toBe(`SyntheticFiles: verified 700 files (700000 bytes) against seed 9, 0 failed; written below ${writeTo}`);
  });

  /** A restore session that has been prepared; the caller closes it. */
  async function restorer(extra: Record<string, string> = {}, target: string | null = null) {
    const session = await NativeAgentSession.open(library, { jobName: 'synthetic', options: { ...options, ...extra } });
    await session.restorePrepare(target, 2, null);
    return session;
  }

  it('refuses a tampered byte, naming the file and the offset, and leaves nothing behind', async () => {
    const writeTo = dir('synthetic-tampered');
    const session = await restorer({ write: 'yes' }, writeTo);
    try {
      const { file, data } = saved[42]!;
      const tampered = Buffer.from(data);
      tampered[517]! ^= 0x01;
      await session.restoreStartFile(file);
      await session.restoreWrite(0, tampered.subarray(0, 500)); // the first chunk is fine
      await expect(session.restoreWrite(0, tampered.subarray(500))).rejects.toThrow(
        new RegExp(
          `failed in restore_write\\(\\): /@synthetic/d000000/f000000042\\.dat: the byte at offset 517 is 0x${tampered[517]!.toString(16).padStart(2, '0')}, ` +
            `the generated content has 0x${data[517]!.toString(16).padStart(2, '0')} \\(seed 9\\): the backup is damaged, or was made with other job options \\(AFD_E_IO\\)`,
        ),
      );
      await session.restoreEndFile(false);
      await session.restoreFinish();
    } finally {
      session.close();
    }
    expect(readdirSync(writeTo, { recursive: true }).filter((f) => String(f).endsWith('.dat') || String(f).endsWith('.part'))).toEqual([]);
  });

  it('refuses a short file, a long file, a wrong seed and a path the options do not give', async () => {
    const { file, data } = saved[1234]!;
    const session = await restorer();
    const logs = collectLogs();
    try {
      await session.restoreStartFile(file);
      await session.restoreWrite(0, data.subarray(0, 999));
      await expect(session.restoreEndFile(true)).rejects.toThrow(
        '/@synthetic/d000004/f000001234.dat: the data ends at offset 999, 1000 bytes are expected (size=1000) (AFD_E_IO)',
      );

      await session.restoreStartFile(file);
      await expect(session.restoreWrite(0, Buffer.concat([data, Buffer.from([0])]))).rejects.toThrow(
        '/@synthetic/d000004/f000001234.dat: the data is longer than the 1000 bytes expected (size=1000): extra bytes at offset 1000',
      );
      await session.restoreEndFile(false);

      for (const bad of ['/@synthetic/d000004/f000002000.dat', '/@synthetic/d000000/f000001234.dat', '/@synthetic/d4/f1234.dat', '/@synthetic/../f000000001.dat', '/@other/d000000/f000000001.dat']) {
        await expect(session.restoreStartFile({ ...file, path: bad })).rejects.toThrow(
          `refusing to restore "${bad}": not one of the 2000 files the job options give (/@synthetic/dNNNNNN/fNNNNNNNNN.dat, 300 per directory) (AFD_E_INVALID)`,
        );
      }
    } finally {
      session.close();
    }

    const wrongSeed = await NativeAgentSession.open(library, { jobName: 'synthetic', options: { ...options, seed: '10' }, log: logs.log });
    try {
      await wrongSeed.restorePrepare(null, 2, null);
      await wrongSeed.restoreStartFile(file);
      await expect(wrongSeed.restoreWrite(0, data)).rejects.toThrow(/f000001234\.dat: the byte at offset 0 is 0x[0-9a-f]{2}, the generated content has 0x[0-9a-f]{2} \(seed 10\)/);
      await wrongSeed.restoreEndFile(false);
      await wrongSeed.restoreFinish();
    } finally {
      wrongSeed.close();
    }
    expect(logs.lines.at(-1)).toEqual({ level: 'warning', message: 'SyntheticFiles: verified 0 files (0 bytes) against seed 10, 1 failed; nothing written to disk' });
  });
});

describe('SyntheticFiles: other hosts', () => {
  it('works with a generation-1 host (the C harness with --abi 1)', () => {
    const harness = path.join(RELEASE_DIR, process.platform === 'win32' ? 'afd_harness.exe' : 'afd_harness');
    const result = spawnSync(harness, ['backup', builtAgent('synthetic'), dir('synthetic-gen1'), '--abi', '1', '--discard', '-q', 'files=300', 'size=4000'], {
      encoding: 'utf8',
    });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/totals: 300 files \(300 saved, 0 seen\), 1200000 bytes/);
  });

  it('backs up and restores through the CLI, with the options recorded at backup, and compression cannot shrink it', () => {
    const ws = dir('synthetic-cli');
    const plugins = makePluginDir(['synthetic']);
    cleanup.push(plugins);
    const config = path.join(ws, 'agentfd.toml');
    writeFileSync(config, [
      `plugin_dir = ${JSON.stringify(plugins)}`, 'data_dir = "state"', '',
      '[jobs.synthetic]', 'agent = "SyntheticFiles"', 'compression = "zstd:3"', 'options = { files = "300", size = "4096", dirs = "100", seed = "3" }',
    ].join('\n'));
    const backupRun = runCliJson(['backup', '--job', 'synthetic', '--config', config]);
    expect(backupRun.status, backupRun.stdout + backupRun.stderr).toBe(0);
    expect(backupRun.json).toMatchObject({ status: 'ok', jobStatus: 'committed', files: 300, bytes: 300 * 4096 });
    expect(backupRun.json.storedBytes).toBeGreaterThan(300 * 4096);

    const to = path.join(ws, 'restored');
    const restoreRun = runCliJson(['restore', '--job-id', String(backupRun.json.jobId), '--to', to, '--config', config]);
    expect(restoreRun.status, restoreRun.stdout + restoreRun.stderr).toBe(0);
    expect(restoreRun.json).toMatchObject({ status: 'ok', mode: 'agent', agents: ['SyntheticFiles'], files: 300, bytes: 300 * 4096, errors: [] });
    expect(existsSync(to) ? readdirSync(to) : []).toEqual([]);
  });
});
