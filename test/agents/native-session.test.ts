/**
 * The sample agents driven through the ABI from TypeScript (koffi, synchronous session calls):
 * full and incremental backups with agent state, restores, the fileset check, cancellation, and
 * the errors agents report. Real compiled libraries, real files.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentFileInfo, Level, LogLevel } from '../../src/agents/types.js';
import { NativeAgentSession, type NativeAgentLibrary, type SessionOptions } from '../../src/agents/native/session.js';
import { loadNativeAgent } from '../../src/agents/native/library.js';
import { AgentCallError } from '../../src/errors.js';
import { builtAgent, removeDir, tempDir } from '../helpers/native.js';

interface SavedFile {
  info: AgentFileInfo;
  streams: Buffer[];
}

const libraries = new Map<string, NativeAgentLibrary>();
const cleanup: string[] = [];

beforeAll(() => {
  for (const file of ['exchange', 'mssql', 'legacy']) {
    const library = loadNativeAgent(builtAgent(file));
    libraries.set(library.name, library);
  }
});
afterAll(() => {
  for (const library of libraries.values()) library.unload();
  cleanup.forEach(removeDir);
});

function dir(prefix: string): string {
  const d = tempDir(prefix);
  cleanup.push(d);
  return d;
}

function write(file: string, content: Buffer | string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

const logName = (n: number) => `E${n.toString(16).toUpperCase().padStart(8, '0')}.log`;

/** An Exchange-like store: two storage groups with databases and numbered logs. */
function makeExchangeStore(): string {
  const store = dir('exchange-store');
  write(path.join(store, 'SG1', 'DB1.edb'), randomBytes(200_000));
  write(path.join(store, 'SG1', 'DB1.stm'), randomBytes(50_000));
  for (let n = 1; n <= 5; n++) write(path.join(store, 'SG1', 'logs', logName(n)), randomBytes(4096 + n));
  write(path.join(store, 'SG2', 'Mail.edb'), randomBytes(3 * 1024 * 1024 + 17));
  for (let n = 1; n <= 3; n++) write(path.join(store, 'SG2', 'logs', logName(n)), randomBytes(1000 * n));
  return store;
}

/** Every regular file below `root`, relative path -> content. */
function readTree(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = path.join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.set(path.relative(root, full).split(path.sep).join('/'), readFileSync(full));
    }
  };
  walk(root);
  return out;
}

async function open(agent: string, options: Partial<SessionOptions> & { options: Record<string, string> }) {
  return NativeAgentSession.open(libraries.get(agent)!, { jobName: 'test', ...options });
}

/** Run a whole backup; returns what the agent delivered and the level it chose. */
async function backup(session: NativeAgentSession, level: Level, bufferSize = 65536) {
  const delivered = await session.backupPrepare(level, 0n, BigInt(Date.now()) * 1_000_000n);
  const files = new Map<string, SavedFile>();
  const buffer = new Uint8Array(bufferSize);
  for (let info = await session.nextFile(); info !== null; info = await session.nextFile()) {
    const streams: Buffer[] = [];
    for (const stream of info.streams) {
      await session.startStream(stream.index);
      const chunks: Buffer[] = [];
      for (let n = await session.read(buffer); n > 0; n = await session.read(buffer)) chunks.push(Buffer.from(buffer.subarray(0, n)));
      await session.endStream();
      streams.push(Buffer.concat(chunks));
    }
    await session.endFile();
    files.set(info.path, { info, streams });
  }
  return { delivered, files };
}

/** Replay saved files through an agent's restore calls, in chunks of `chunk` bytes. */
async function restore(session: NativeAgentSession, target: string, files: Iterable<SavedFile>, chunk = 65536): Promise<void> {
  await session.restorePrepare(target, session.agent.abi, session.agent.info.version ?? null);
  for (const { info, streams } of files) {
    await session.restoreStartFile(info);
    for (const [index, data] of streams.entries()) {
      for (let off = 0; off < data.length; off += chunk) await session.restoreWrite(index, data.subarray(off, off + chunk));
    }
    await session.restoreEndFile(true);
  }
  await session.restoreFinish();
}

function collectLogs() {
  const lines: { level: LogLevel; message: string }[] = [];
  return { lines, log: (level: LogLevel, message: string) => lines.push({ level, message }) };
}

describe('MicrosoftExchange sample', () => {
  it('backs up the store as logical objects and restores it byte for byte', async () => {
    const store = makeExchangeStore();
    const session = await open('MicrosoftExchange', { options: { store, truncate_logs: 'no' } });
    const { delivered, files } = await backup(session, 'full');
    await session.backupFinish(true);
    const state = session.state;
    session.close();

    expect(delivered).toBe('full');
    const original = readTree(store);
    expect([...files.keys()].sort()).toEqual([...original.keys()].map((p) => `/@exchange/${p}`).sort());
    for (const [p, saved] of files) {
      expect(saved.info.kind).toBe('virtual');
      expect(saved.info.streams.map((s) => s.name)).toEqual(['data']);
      expect(saved.streams[0]!.equals(original.get(p.slice('/@exchange/'.length))!), p).toBe(true);
      expect(saved.info.size).toBe(saved.streams[0]!.length);
    }
    // The checkpoint: the highest log number per storage group, as the agent's own state.
    expect(Buffer.from(state!).toString()).toMatch(/SG1 0+5\n[\s\S]*SG2 0+3\n/);
    // truncate_logs = no: nothing was removed from the store.
    expect(readTree(store).size).toBe(original.size);

    const target = dir('exchange-restore');
    const restorer = await open('MicrosoftExchange', { options: {} });
    await restore(restorer, target, files.values(), 7000);
    restorer.close();
    const restored = readTree(target);
    expect([...restored.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [p, data] of original) expect(restored.get(p)!.equals(data), p).toBe(true);
    // mtimes come back too.
    const db = path.join('SG1', 'DB1.edb');
    expect(Math.trunc(statSync(path.join(target, db)).mtimeMs / 1000)).toBe(Math.trunc(statSync(path.join(store, db)).mtimeMs / 1000));
  });

  it('saves only logs newer than the checkpoint in an incremental, and reports the rest as seen', async () => {
    const store = makeExchangeStore();
    const full = await open('MicrosoftExchange', { options: { store, truncate_logs: 'no' } });
    await backup(full, 'full');
    await full.backupFinish(true);
    const checkpoint = full.state;
    full.close();

    write(path.join(store, 'SG1', 'logs', logName(6)), randomBytes(5000));
    write(path.join(store, 'SG1', 'logs', logName(7)), randomBytes(6000));
    const incr = await open('MicrosoftExchange', { options: { store, truncate_logs: 'no' }, referenceState: checkpoint });
    const { delivered, files } = await backup(incr, 'incremental');
    incr.close();

    expect(delivered).toBe('incremental');
    const saved = [...files.values()].filter((f) => !f.info.seen).map((f) => f.info.path);
    expect(saved.sort()).toEqual([`/@exchange/SG1/logs/${logName(6)}`, `/@exchange/SG1/logs/${logName(7)}`]);
    const seen = [...files.values()].filter((f) => f.info.seen);
    expect(seen.map((f) => f.info.path)).toContain('/@exchange/SG2/Mail.edb');
    for (const f of seen) expect(f.info.streams).toEqual([]);
    expect(Buffer.from(incr.state!).toString()).toMatch(/SG1 0+7\n/);
  });

  it('upgrades an incremental without a checkpoint to a full, and says why', async () => {
    const store = makeExchangeStore();
    const logs = collectLogs();
    const session = await open('MicrosoftExchange', { options: { store }, log: logs.log, referenceState: null });
    const { delivered, files } = await backup(session, 'incremental');
    session.close();
    expect(delivered).toBe('full');
    expect([...files.values()].every((f) => !f.info.seen)).toBe(true);
    expect(logs.lines.some((l) => l.level === 'warning' && /no checkpoint/.test(l.message))).toBe(true);
  });

  it('truncates logs only when told the job was committed', async () => {
    const store = makeExchangeStore();
    const failed = await open('MicrosoftExchange', { options: { store } });
    await backup(failed, 'full');
    await failed.backupFinish(false);
    failed.close();
    expect(readdirSync(path.join(store, 'SG1', 'logs'))).toHaveLength(5);

    const committed = await open('MicrosoftExchange', { options: { store } });
    await backup(committed, 'full');
    await committed.backupFinish(true);
    committed.close();
    // Exchange keeps the current (newest) log of each storage group.
    expect(readdirSync(path.join(store, 'SG1', 'logs'))).toEqual([logName(5)]);
    expect(readdirSync(path.join(store, 'SG2', 'logs'))).toEqual([logName(3)]);
  });

  it('asks the fileset which objects to save', async () => {
    const store = makeExchangeStore();
    const asked: string[] = [];
    const session = await open('MicrosoftExchange', {
      options: { store },
      filesetCheck: (p) => (asked.push(p), !p.startsWith('/@exchange/SG2/')),
    });
    const { files } = await backup(session, 'full');
    session.close();
    expect(asked).toContain('/@exchange/SG2/Mail.edb');
    expect([...files.keys()].some((p) => p.startsWith('/@exchange/SG2/'))).toBe(false);
    expect(files.has('/@exchange/SG1/DB1.edb')).toBe(true);
  });

  it('stops with AFD_E_CANCELLED when the job is cancelled', async () => {
    const store = makeExchangeStore();
    let cancelled = false;
    const session = await open('MicrosoftExchange', { options: { store }, isCancelled: () => cancelled });
    await session.backupPrepare('full', 0n, 0n);
    expect(await session.nextFile()).not.toBeNull();
    await session.endFile();
    cancelled = true;
    let error: unknown;
    try {
      await session.nextFile();
    } catch (e) {
      error = e;
    }
    session.close();
    expect(error).toBeInstanceOf(AgentCallError);
    expect((error as AgentCallError).message).toMatch(/agent "MicrosoftExchange" failed in backup_next_file\(\): .*\(AFD_E_CANCELLED\)/);
  });

  it("reports the agent's own error message when the store option is missing", async () => {
    const session = await open('MicrosoftExchange', { options: {} });
    await expect(session.backupPrepare('full', 0n, 0n)).rejects.toThrow(/agent "MicrosoftExchange" failed in backup_prepare\(\): .*store/);
    session.close();
  });

  it('refuses a restore path that climbs out of the target', async () => {
    const target = dir('exchange-hostile');
    const session = await open('MicrosoftExchange', { options: {} });
    await session.restorePrepare(target, 2, null);
    const hostile: AgentFileInfo = {
      path: '/@exchange/../../etc/evil.edb', kind: 'virtual', linkTarget: null, mode: 0o644, seen: false,
      mtimeNs: 0n, size: 1, winAttributes: 0, streams: [{ index: 0, type: 'data', name: 'data', sizeHint: 1, rawRestorable: false }],
    };
    await expect(session.restoreStartFile(hostile)).rejects.toThrow(/restore_start_file.*AFD_E_INVALID/);
    session.close();
    expect(readdirSync(target)).toEqual([]);
  });
});

describe('MSSQL sample', () => {
  function makeDataDir(): string {
    const data = dir('mssql-data');
    write(path.join(data, 'sales', 'sales.mdf'), randomBytes(300_000));
    write(path.join(data, 'sales', 'sales_log.ldf'), randomBytes(40_000));
    write(path.join(data, 'hr', 'hr.mdf'), randomBytes(12_345));
    return data;
  }

  it('saves one self-contained .bak stream per database and restores it through the agent', async () => {
    const data = makeDataDir();
    const session = await open('MSSQL', { options: { data_dir: data } });
    const { files } = await backup(session, 'full', 4096);
    session.close();
    expect([...files.keys()].sort()).toEqual(['/@mssql/MSSQLSERVER/hr.bak', '/@mssql/MSSQLSERVER/sales.bak']);
    for (const saved of files.values()) {
      const [stream] = saved.info.streams;
      expect(stream).toMatchObject({ name: 'data', type: 'data', rawRestorable: true });
      expect(saved.streams[0]!.subarray(0, 8).toString('latin1')).toBe('AFDBAK01');
      expect(stream!.sizeHint).toBe(saved.streams[0]!.length);
    }

    const target = dir('mssql-restore');
    const restorer = await open('MSSQL', { options: {} });
    await restore(restorer, target, files.values(), 1000);
    restorer.close();
    const original = readTree(data);
    const restored = readTree(target);
    expect([...restored.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [p, content] of original) expect(restored.get(p)!.equals(content), p).toBe(true);
  });

  it('refuses a corrupt .bak stream and leaves no file passed off as restored', async () => {
    const data = makeDataDir();
    const session = await open('MSSQL', { options: { data_dir: data } });
    const { files } = await backup(session, 'full');
    session.close();
    const sales = files.get('/@mssql/MSSQLSERVER/sales.bak')!;
    const corrupt = Buffer.from(sales.streams[0]!);
    corrupt.writeUInt8(corrupt.readUInt8(200_000) ^ 0x01, 200_000);

    const target = dir('mssql-corrupt');
    const restorer = await open('MSSQL', { options: {} });
    await restorer.restorePrepare(target, 2, null);
    await restorer.restoreStartFile(sales.info);
    await restorer.restoreWrite(0, corrupt);
    await expect(restorer.restoreEndFile(true)).rejects.toThrow(/MSSQL.*restore_end_file.*corrupt/);
    restorer.close();
    expect(existsSync(path.join(target, 'sales', 'sales.mdf'))).toBe(false);
    expect(existsSync(path.join(target, 'sales', 'sales_log.ldf'))).toBe(false);
  });
});

describe('LegacyFlatFiles sample (ABI generation 1)', () => {
  it('round-trips a directory through a generation 1 session, with no state', async () => {
    const source = dir('legacy-src');
    write(path.join(source, 'a.txt'), 'alpha\n');
    write(path.join(source, 'b.bin'), randomBytes(70_000));
    const session = await open('LegacyFlatFiles', { options: { dir: source } });
    expect(session.agent.abi).toBe(1);
    const { delivered, files } = await backup(session, 'full');
    await session.backupFinish(true); // no backup_finish in generation 1: a no-op, not a crash
    session.close();
    expect(delivered).toBe('full');
    expect(session.state).toBeNull();
    expect([...files.keys()].sort()).toEqual(['/@legacy/a.txt', '/@legacy/b.bin']);

    const target = dir('legacy-restore');
    const restorer = await open('LegacyFlatFiles', { options: {} });
    await restore(restorer, target, files.values());
    restorer.close();
    expect(readFileSync(path.join(target, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(readFileSync(path.join(target, 'b.bin')).equals(readFileSync(path.join(source, 'b.bin')))).toBe(true);
  });
});
