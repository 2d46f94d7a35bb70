/**
 * The built-in filesystem agent against real temporary trees: a full round trip (bytes, modes,
 * times, symlinks, unicode names), the fileset, incremental backups, hostile restores that try to
 * write outside the target, discarded files, files that change while read, and missing roots.
 */
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentFile, BackupRequest, RestoreRun } from '../../src/agents/agent.js';
import { restoreComponents, toAgentPath } from '../../src/agents/filesystem/agent-path.js';
import { createFilesystemAgent } from '../../src/agents/filesystem/index.js';
import { orderedMap } from '../../src/agents/filesystem/ordered-map.js';
import { READ_AHEAD, walkRoots, type ReadAhead } from '../../src/agents/filesystem/walk.js';
import type { AgentFileInfo, Level } from '../../src/agents/types.js';
import { AgentfdError } from '../../src/errors.js';
import { HOST_VERSION } from '../../src/version.js';
import { restoreRequest, type Logged } from '../helpers/requests.js';

const IS_WINDOWS = process.platform === 'win32';
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const agent = createFilesystemAgent();
const cleanup: string[] = [];

afterAll(() => {
  for (const dir of cleanup) {
    // Undo any chmod 000 a test left behind, so the tree can be removed.
    try {
      chmodSync(dir, 0o700);
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `agentfd-fs-${prefix}-`));
  cleanup.push(dir);
  return dir;
}

/** The agent path of an OS path (POSIX: itself; Windows: "/C:/..."), as the agent documents it. */
function agentPathOf(osPath: string): string {
  if (!IS_WINDOWS) return osPath;
  const [drive, ...rest] = path.resolve(osPath).split(/[\\/]+/).filter((p) => p !== '');
  return [`/${drive!.toUpperCase()}`, ...rest].join('/');
}


function backupRequest(
  paths: string | undefined,
  extra: Partial<BackupRequest> = {},
  logs: Logged[] = [],
): BackupRequest {
  return {
    jobName: 'test',
    jobId: 1,
    options: paths === undefined ? {} : { paths },
    filesetCheck: () => true,
    log: (level, message) => logs.push({ level, message }),
    isCancelled: () => false,
    level: 'full' as Level,
    sinceNs: 0n,
    jobStartNs: BigInt(Date.now()) * 1_000_000n,
    referenceState: null,
    ...extra,
  };
}

interface Saved {
  info: AgentFileInfo;
  data: Buffer | null;
}

function infoOf(file: AgentFile): AgentFileInfo {
  const { streams, ...rest } = file;
  return { ...rest, streams: streams.map(({ data: _data, ...s }) => s) };
}

/** Back up `paths` completely, reading every stream, as the engine would. */
async function backupAll(paths: string, extra: Partial<BackupRequest> = {}, logs: Logged[] = []): Promise<Saved[]> {
  const run = await agent.backup(backupRequest(paths, extra, logs));
  expect(run.deliveredLevel).toBe(extra.level ?? 'full');
  const saved: Saved[] = [];
  for await (const file of run.files) {
    let data: Buffer | null = null;
    for (const stream of file.streams) {
      const chunks: Buffer[] = [];
      for await (const chunk of stream.data()) chunks.push(Buffer.from(chunk));
      data = Buffer.concat(chunks);
    }
    saved.push({ info: infoOf(file), data });
  }
  expect(run.state()).toBeNull();
  await run.finish(true);
  await run.close();
  return saved;
}

/** A restore of what this version's filesystem agent saved. */
const fsRestoreRequest = (target: string, logs: Logged[] = []) => restoreRequest(target, logs, HOST_VERSION);

/** Restore `saved` into `target`, in chunks of at most 64 KiB. */
async function restoreAll(saved: Saved[], target: string): Promise<void> {
  const run = await agent.restore(fsRestoreRequest(target));
  try {
    for (const { info, data } of saved) {
      await run.startFile(info);
      if (data) for (let at = 0; at < data.length; at += 65536) await run.write(0, data.subarray(at, at + 65536));
      await run.endFile(true);
    }
    await run.finish();
  } finally {
    await run.close();
  }
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<AgentfdError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected an AgentfdError ${code}`).toBeInstanceOf(AgentfdError);
  expect((error as AgentfdError).code).toBe(code);
  return error as AgentfdError;
}

/** Every entry below `dir`, relative, sorted. */
function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const child = rel === '' ? name : path.join(rel, name);
      out.push(child);
      const st = lstatSync(path.join(dir, child));
      if (st.isDirectory() && !st.isSymbolicLink()) walk(child);
    }
  };
  walk('');
  return out;
}

function makeTree(): { base: string; src: string } {
  const base = tempDir('tree');
  const src = path.join(base, 'src');
  mkdirSync(path.join(src, 'a', 'b', 'c'), { recursive: true });
  mkdirSync(path.join(src, 'private'));
  writeFileSync(path.join(src, 'a', 'b', 'c', 'deep.txt'), 'deep down\n');
  writeFileSync(path.join(src, 'a', 'top.txt'), 'top\n');
  writeFileSync(path.join(src, 'empty.txt'), '');
  writeFileSync(path.join(src, 'big.bin'), randomBytes(3 * 1024 * 1024));
  writeFileSync(path.join(src, 'secret.txt'), 'secret\n');
  chmodSync(path.join(src, 'secret.txt'), 0o640);
  writeFileSync(path.join(src, 'été 📦.txt'), 'unicode ✓\n');
  writeFileSync(path.join(src, 'private', 'key'), 'k');
  symlinkSync(path.join('a', 'b', 'c', 'deep.txt'), path.join(src, 'rel-link'));
  symlinkSync(path.join(base, 'somewhere', 'else'), path.join(src, 'abs-link'));
  chmodSync(path.join(src, 'private'), 0o750);
  // Directory times in the past, with sub-millisecond digits: they must survive the restore of
  // their contents. Files keep their own (nanosecond) creation times.
  utimesSync(path.join(src, 'private'), 1_600_000_000.123456, 1_600_000_000.654321);
  utimesSync(path.join(src, 'a', 'b'), 1_500_000_000.5, 1_500_000_000.250001);
  return { base, src };
}

describe('the agent', () => {
  it('identifies itself as the built-in filesystem agent', () => {
    expect(agent.name).toBe('filesystem');
    expect(agent.version).toBe(HOST_VERSION);
    expect(agent.abi).toBe(0);
    expect(agent.kind).toBe('builtin');
    expect([...agent.capabilities]).toEqual(['full', 'incremental', 'differential', 'restore', 'accurate']);
  });
});

describe('agent paths', () => {
  it('keep POSIX paths as they are and map Windows drives and shares under "/"', () => {
    expect(toAgentPath('/home/ann', false)).toBe('/home/ann');
    expect(toAgentPath('C:\\Users\\ann', true)).toBe('/C:/Users/ann');
    expect(toAgentPath('d:\\', true)).toBe('/D:');
    expect(toAgentPath('\\\\server\\share\\x', true)).toBe('/UNC/server/share/x');
  });

  it('restore under the target, dropping the drive colon on Windows and refusing stream names', () => {
    expect(restoreComponents('/C:/Users/ann', true)).toEqual(['C', 'Users', 'ann']);
    expect(restoreComponents('/C:/Users/ann', false)).toEqual(['C:', 'Users', 'ann']);
    expect(restoreComponents('/', false)).toEqual([]);
    // A colon would name an alternate data stream: written as %3A (windows-names.test.ts has the rules).
    expect(restoreComponents('/C:/file.txt:hidden', true)).toEqual(['C', 'file.txt%3Ahidden']);
    expect(() => restoreComponents('/a/../b', false)).toThrow(AgentfdError);
  });
});

describe('backup and restore', () => {
  it('round-trips a tree: bytes, modes, times, symlinks, unicode names', async () => {
    const { base, src } = makeTree();
    const saved = await backupAll(src);

    // Deterministic order: depth-first, sorted, each directory before its contents.
    const rootAgent = agentPathOf(src);
    const rel = saved.map((s) => s.info.path.slice(rootAgent.length) || '/');
    expect(rel).toEqual([
      '/',
      '/a',
      '/a/b',
      '/a/b/c',
      '/a/b/c/deep.txt',
      '/a/top.txt',
      '/abs-link',
      '/big.bin',
      '/empty.txt',
      '/private',
      '/private/key',
      '/rel-link',
      '/secret.txt',
      '/été 📦.txt',
    ]);
    const byRel = new Map(saved.map((s, i) => [rel[i]!, s]));
    expect(byRel.get('/big.bin')!.info.streams).toEqual([
      { index: 0, type: 'data', name: 'data', sizeHint: 3 * 1024 * 1024, rawRestorable: false },
    ]);
    expect(byRel.get('/empty.txt')!.data).toEqual(Buffer.alloc(0));
    expect(byRel.get('/a')!.info).toMatchObject({ kind: 'directory', size: 0, streams: [], seen: false, linkTarget: null, winAttributes: 0 });
    expect(byRel.get('/rel-link')!.info).toMatchObject({ kind: 'symlink', streams: [], linkTarget: path.join('a', 'b', 'c', 'deep.txt') });
    expect(byRel.get('/secret.txt')!.info.mode).toBe(0o640);

    const target = path.join(tempDir('restore'), 'target-not-yet-there');
    await restoreAll(saved, target);

    const restoredRoot = path.join(target, ...rootAgent.split('/').filter((p) => p !== '').map((p) => p.replace(/:$/, '')));
    expect(listTree(restoredRoot)).toEqual(listTree(src));
    expect(listTree(restoredRoot).some((p) => p.includes('agentfd-part'))).toBe(false);
    for (const relPath of ['', ...listTree(src)]) {
      const a = path.join(src, relPath);
      const b = path.join(restoredRoot, relPath);
      const sa = lstatSync(a, { bigint: true });
      const sb = lstatSync(b, { bigint: true });
      expect(sb.mode & 0o170000n, relPath).toBe(sa.mode & 0o170000n);
      if (sa.isSymbolicLink()) {
        expect(readlinkSync(b), relPath).toBe(readlinkSync(a));
        continue;
      }
      expect(sb.mode & 0o7777n, relPath).toBe(sa.mode & 0o7777n);
      expect(sb.mtimeNs / 1000n, `${relPath} mtime`).toBe(sa.mtimeNs / 1000n);
      if (sa.isFile()) expect(readFileSync(b).equals(readFileSync(a)), relPath).toBe(true);
    }
    expect(readFileSync(path.join(restoredRoot, 'été 📦.txt'), 'utf8')).toBe('unicode ✓\n');
    // The absolute symlink was restored as-is, and nothing was created where it points.
    expect(existsSync(path.join(base, 'somewhere'))).toBe(false);
  });

  it('skips what the fileset excludes, a directory with all its contents', async () => {
    const { src } = makeTree();
    const excluded = `${agentPathOf(src)}/a/b`;
    const asked: string[] = [];
    const saved = await backupAll(src, {
      filesetCheck: (p) => {
        asked.push(p);
        return p !== excluded;
      },
    });
    const paths = saved.map((s) => s.info.path);
    expect(paths).toContain(`${agentPathOf(src)}/a`);
    expect(paths).toContain(`${agentPathOf(src)}/a/top.txt`);
    expect(paths.filter((p) => p === excluded || p.startsWith(`${excluded}/`))).toEqual([]);
    // Not descended into: its contents are never even offered to the fileset.
    expect(asked.filter((p) => p.startsWith(`${excluded}/`))).toEqual([]);
  });

  it('saves several roots joined with the path delimiter, without listing a nested root twice', async () => {
    const { src } = makeTree();
    const other = tempDir('other');
    writeFileSync(path.join(other, 'x'), 'x');
    const logs: Logged[] = [];
    const saved = await backupAll([src, other, path.join(src, 'a')].join(path.delimiter), {}, logs);
    const paths = saved.map((s) => s.info.path);
    expect(new Set(paths).size).toBe(paths.length);
    expect(paths).toContain(`${agentPathOf(other)}/x`);
    expect(logs.some((l) => l.level === 'info' && l.message.includes('inside'))).toBe(true);
  });

  it('incremental: unchanged files come as seen without streams, changed ones with their data', async () => {
    const { src } = makeTree();
    await backupAll(src);
    await new Promise((r) => setTimeout(r, 50));
    const sinceNs = BigInt(Date.now()) * 1_000_000n;
    await new Promise((r) => setTimeout(r, 50));
    writeFileSync(path.join(src, 'a', 'top.txt'), 'changed\n');
    writeFileSync(path.join(src, 'new.txt'), 'new\n');
    // An old mtime put back after the change: the ctime still tells.
    writeFileSync(path.join(src, 'empty.txt'), 'no longer empty');
    utimesSync(path.join(src, 'empty.txt'), 1_000_000_000, 1_000_000_000);

    for (const level of ['incremental', 'differential'] as const) {
      const saved = await backupAll(src, { level, sinceNs });
      const root = agentPathOf(src);
      const byRel = new Map(saved.map((s) => [s.info.path.slice(root.length) || '/', s]));
      const changed = ['/a/top.txt', '/new.txt', '/empty.txt'];
      for (const rel of changed) {
        expect(byRel.get(rel)!.info.seen, rel).toBe(false);
        expect(byRel.get(rel)!.info.streams, rel).toHaveLength(1);
      }
      expect(byRel.get('/a/top.txt')!.data!.toString()).toBe('changed\n');
      for (const rel of ['/big.bin', '/secret.txt', '/a/b/c/deep.txt', '/été 📦.txt', '/rel-link', '/abs-link']) {
        expect(byRel.get(rel)!.info, rel).toMatchObject({ seen: true, streams: [] });
        expect(byRel.get(rel)!.data, rel).toBeNull();
      }
      // Directories always come, never "seen".
      expect(byRel.get('/a/b')!.info).toMatchObject({ kind: 'directory', seen: false });
    }
  });

  it('skips sockets with a warning', async () => {
    if (IS_WINDOWS) return;
    const dir = tempDir('sock');
    writeFileSync(path.join(dir, 'file'), 'f');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'sock'), resolve));
    try {
      const logs: Logged[] = [];
      const saved = await backupAll(dir, {}, logs);
      expect(saved.map((s) => s.info.path)).toEqual([agentPathOf(dir), `${agentPathOf(dir)}/file`]);
      expect(logs).toContainEqual({ level: 'warning', message: expect.stringContaining('socket') });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it.skipIf(IS_ROOT || IS_WINDOWS)('warns about an unreadable directory and goes on', async () => {
    const dir = tempDir('unreadable');
    mkdirSync(path.join(dir, 'closed'));
    writeFileSync(path.join(dir, 'closed', 'x'), 'x');
    writeFileSync(path.join(dir, 'open.txt'), 'o');
    chmodSync(path.join(dir, 'closed'), 0);
    try {
      const logs: Logged[] = [];
      const saved = await backupAll(dir, {}, logs);
      expect(saved.map((s) => s.info.path)).toContain(`${agentPathOf(dir)}/open.txt`);
      expect(logs.some((l) => l.level === 'warning' && l.message.includes('closed'))).toBe(true);
    } finally {
      chmodSync(path.join(dir, 'closed'), 0o700);
    }
  });

  it('stops with E_CANCELLED when the job is cancelled', async () => {
    const { src } = makeTree();
    let cancelled = false;
    const run = await agent.backup(backupRequest(src, { isCancelled: () => cancelled }));
    const iterator = run.files[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    cancelled = true;
    await expectCode(iterator.next(), 'E_CANCELLED');
  });
});

describe('sources that change or are missing', () => {
  async function streamOf(dir: string, name: string) {
    const run = await agent.backup(backupRequest(dir));
    for await (const file of run.files) if (file.path.endsWith(`/${name}`)) return file.streams[0]!;
    throw new Error(`${name} not listed`);
  }

  it('a file that grows while being read fails with E_SOURCE_CHANGED after yielding what was read', async () => {
    const dir = tempDir('grow');
    const file = path.join(dir, 'growing.log');
    writeFileSync(file, randomBytes(2 * 1024 * 1024 + 10));
    const stream = await streamOf(dir, 'growing.log');
    let read = 0;
    const consume = async () => {
      for await (const chunk of stream.data()) {
        if (read === 0) appendFileSync(file, 'more data arrived');
        read += chunk.byteLength;
      }
    };
    await expectCode(consume(), 'E_SOURCE_CHANGED');
    expect(read).toBeGreaterThan(2 * 1024 * 1024 + 10);
  });

  it('a file that shrinks while being read fails with E_SOURCE_CHANGED', async () => {
    const dir = tempDir('shrink');
    const file = path.join(dir, 'shrinking');
    writeFileSync(file, randomBytes(3 * 1024 * 1024));
    const stream = await streamOf(dir, 'shrinking');
    const consume = async () => {
      let first = true;
      for await (const _chunk of stream.data()) {
        if (first) truncateSync(file, 1024 * 1024 + 5);
        first = false;
      }
    };
    await expectCode(consume(), 'E_SOURCE_CHANGED');
  });

  it('a missing root fails with E_SOURCE and logs an error', async () => {
    const dir = tempDir('missing');
    const logs: Logged[] = [];
    const error = await expectCode(agent.backup(backupRequest(path.join(dir, 'not-there'), {}, logs)), 'E_SOURCE');
    expect(error.message).toContain('not-there');
    expect(logs.some((l) => l.level === 'error')).toBe(true);
  });

  it('a root that disappears before the walk reaches it fails with E_SOURCE', async () => {
    const one = tempDir('one');
    const two = tempDir('two');
    const run = await agent.backup(backupRequest([one, two].join(path.delimiter)));
    rmSync(two, { recursive: true });
    const drain = async () => {
      for await (const _file of run.files) {
        /* drain */
      }
    };
    await expectCode(drain(), 'E_SOURCE');
  });

  it('a missing or relative "paths" option fails with E_AGENT_OPTION', async () => {
    const missing = await expectCode(agent.backup(backupRequest(undefined)), 'E_AGENT_OPTION');
    expect(missing.message).toContain('paths');
    await expectCode(agent.backup(backupRequest('')), 'E_AGENT_OPTION');
    const relative = await expectCode(agent.backup(backupRequest(`relative${path.sep}dir`)), 'E_AGENT_OPTION');
    expect(relative.message).toContain('absolute');
  });
});

describe('restore safety', () => {
  function fileInfo(p: string, extra: Partial<AgentFileInfo> = {}): AgentFileInfo {
    return {
      path: p,
      kind: 'regular',
      linkTarget: null,
      mode: 0o644,
      seen: false,
      mtimeNs: 1_700_000_000_000_000_000n,
      size: 5,
      winAttributes: 0,
      streams: [{ index: 0, type: 'data', name: 'data', sizeHint: 5, rawRestorable: false }],
      ...extra,
    };
  }

  async function withRestore(target: string, body: (run: RestoreRun) => Promise<void>): Promise<void> {
    const run = await agent.restore(fsRestoreRequest(target));
    try {
      await body(run);
    } finally {
      await run.close();
    }
  }

  it('refuses ".." paths and symlink tricks, and creates nothing outside the target', async () => {
    const base = tempDir('hostile');
    const target = path.join(base, 'target');
    const outside = path.join(base, 'outside');
    mkdirSync(outside);
    mkdirSync(target);
    symlinkSync(outside, path.join(target, 'planted'));

    await withRestore(target, async (run) => {
      for (const bad of ['/../x', '/a/../../etc/x', '/a/..', '/./x', 'relative', '/a//b', '/nul\0x']) {
        await expectCode(run.startFile(fileInfo(bad)), 'E_RESTORE_PATH');
      }
      // A backslash is an ordinary character of a name: "a\..\x" is one file inside the target
      // (on Windows it is written a%5C..%5Cx).
      await run.startFile(fileInfo('/a\\..\\x'));
      await run.write(0, Buffer.from('hello'));
      await run.endFile(true);
      expect(readFileSync(path.join(target, process.platform === 'win32' ? 'a%5C..%5Cx' : 'a\\..\\x'), 'utf8')).toBe('hello');
      // A symlink may point anywhere: it is restored as it was...
      await run.startFile(fileInfo('/evil', { kind: 'symlink', linkTarget: outside, size: 0, streams: [] }));
      await run.endFile(true);
      expect(readlinkSync(path.join(target, 'evil'))).toBe(outside);
      // ...but nothing is ever written through it, nor through one planted before the restore.
      await expectCode(run.startFile(fileInfo('/evil/pwned')), 'E_RESTORE_PATH');
      await expectCode(run.startFile(fileInfo('/evil/sub/pwned')), 'E_RESTORE_PATH');
      await expectCode(run.startFile(fileInfo('/evil/dir', { kind: 'directory', size: 0, streams: [] })), 'E_RESTORE_PATH');
      await expectCode(
        run.startFile(fileInfo('/evil/link', { kind: 'symlink', linkTarget: '/etc/passwd', size: 0, streams: [] })),
        'E_RESTORE_PATH',
      );
      await expectCode(run.startFile(fileInfo('/planted/pwned')), 'E_RESTORE_PATH');
      // A regular file restored at the symlink's own name replaces the link, not its target.
      await run.startFile(fileInfo('/evil'));
      await run.write(0, Buffer.from('safe!'));
      await run.endFile(true);
      expect(lstatSync(path.join(target, 'evil')).isFile()).toBe(true);
      // A regular file where a regular file stands is not a directory either.
      await expectCode(run.startFile(fileInfo('/evil/under-a-file')), 'E_RESTORE_PATH');
      await run.finish();
    });
    expect(readdirSync(outside)).toEqual([]);
    expect(readdirSync(base).sort()).toEqual(['outside', 'target']);
  });

  it('restores times exact to the microsecond, even at the edges of a microsecond', async () => {
    const target = tempDir('times');
    const times = [
      1_700_000_000_123_456_999n,
      1_700_000_000_123_456_000n,
      1_700_000_000_999_999_999n,
      1_700_000_001_000_000_000n,
      4_102_444_800_000_000_999n,
      1_000_000n,
    ];
    await withRestore(target, async (run) => {
      await run.startFile(fileInfo('/d', { kind: 'directory', mode: 0o755, size: 0, streams: [], mtimeNs: times[0]! }));
      await run.endFile(true);
      for (const [i, mtimeNs] of times.entries()) {
        await run.startFile(fileInfo(`/d/f${i}`, { mtimeNs }));
        await run.write(0, Buffer.from('12345'));
        await run.endFile(true);
      }
      await run.finish();
    });
    for (const [i, mtimeNs] of times.entries()) {
      expect(lstatSync(path.join(target, 'd', `f${i}`), { bigint: true }).mtimeNs / 1000n, String(mtimeNs)).toBe(mtimeNs / 1000n);
    }
    expect(lstatSync(path.join(target, 'd'), { bigint: true }).mtimeNs / 1000n).toBe(times[0]! / 1000n);
  });

  it('endFile(false) leaves neither the file nor its temporary file', async () => {
    const target = tempDir('discard');
    await withRestore(target, async (run) => {
      await run.startFile(fileInfo('/dir/bad.bin'));
      await run.write(0, Buffer.from('junk'));
      expect(readdirSync(path.join(target, 'dir')).some((n) => n.includes('.agentfd-part-'))).toBe(true);
      await run.endFile(false);
      await run.finish();
    });
    expect(readdirSync(path.join(target, 'dir'))).toEqual([]);
  });

  it('close() with a file open removes its temporary file; an existing file is replaced whole', async () => {
    const target = tempDir('close');
    writeFileSync(path.join(target, 'keep.txt'), 'old content, longer than the new');
    const run = await agent.restore(fsRestoreRequest(target));
    await run.startFile(fileInfo('/keep.txt'));
    await run.write(0, Buffer.from('new!!'));
    await run.endFile(true);
    expect(readFileSync(path.join(target, 'keep.txt'), 'utf8')).toBe('new!!');
    await run.startFile(fileInfo('/half.txt'));
    await run.write(0, Buffer.from('half'));
    await run.close();
    expect(readdirSync(target)).toEqual(['keep.txt']);
  });

  it('refuses out-of-order calls, other streams, and virtual objects; skips seen files', async () => {
    const target = tempDir('order');
    await withRestore(target, async (run) => {
      await expectCode(run.write(0, Buffer.from('x')), 'E_RESTORE_ORDER');
      await expectCode(run.endFile(true), 'E_RESTORE_ORDER');
      await run.startFile(fileInfo('/f'));
      await expectCode(run.write(1, Buffer.from('x')), 'E_RESTORE_STREAM');
      await expectCode(run.startFile(fileInfo('/g')), 'E_RESTORE_ORDER');
      await run.endFile(false);
      const virtual = await expectCode(run.startFile(fileInfo('/@exchange/db', { kind: 'virtual' })), 'E_RESTORE_KIND');
      expect(virtual.message).toContain('--raw');
      await run.startFile(fileInfo('/seen.txt', { seen: true, streams: [] }));
      await expectCode(run.write(0, Buffer.from('x')), 'E_RESTORE_STREAM');
      await run.endFile(true);
      await run.finish();
    });
    expect(readdirSync(target)).toEqual([]);
  });
});

describe('orderedMap', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
    const out: T[] = [];
    for await (const item of items) out.push(item);
    return out;
  }
  async function* slowly<T>(items: T[], failAt = -1): AsyncGenerator<T> {
    for (const [i, item] of items.entries()) {
      if (i === failAt) throw new Error(`source failed at ${i}`);
      await sleep(i % 3);
      yield item;
    }
  }

  it('yields in input order with at most `window` calls running, and keeps the window full', async () => {
    const input = Array.from({ length: 60 }, (_, i) => i);
    let running = 0;
    let most = 0;
    const out = await collect(
      orderedMap(
        (async function* () {
          yield* input;
        })(),
        async (i) => {
          most = Math.max(most, ++running);
          await sleep((i * 7) % 5);
          running--;
          return i * 2;
        },
        { window: 5 },
      ),
    );
    expect(out).toEqual(input.map((i) => i * 2));
    expect(most).toBe(5);
  });

  it('throws a failure in its place: what came before is yielded first', async () => {
    const seen: number[] = [];
    const mapperFails = async () => {
      for await (const v of orderedMap([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], async (i) => {
        await sleep(10 - i);
        if (i === 6) throw new Error('mapper failed at 6');
        return i;
      }, { window: 4 })) seen.push(v);
    };
    await expect(mapperFails()).rejects.toThrow('mapper failed at 6');
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);

    seen.length = 0;
    const sourceFails = async () => {
      for await (const v of orderedMap(slowly([0, 1, 2, 3, 4, 5, 6, 7], 5), async (i) => i, { window: 3 })) seen.push(v);
    };
    await expect(sourceFails()).rejects.toThrow('source failed at 5');
    expect(seen).toEqual([0, 1, 2, 3, 4]);
  });

  it('holds at most maxCost of started, not yet yielded items, and lets a heavy item through alone', async () => {
    const weights = [3, 3, 3, 9, 1, 25, 2, 2, 2, 2, 7, 1];
    let held = 0;
    let most = 0;
    let alone = false;
    const out: number[] = [];
    for await (const i of orderedMap(weights.keys(), async (i) => {
      held += weights[i]!;
      if (weights[i]! > 10) alone = held === weights[i];
      else most = Math.max(most, held);
      await sleep(1);
      return i;
    }, { window: 8, cost: (i) => weights[i]!, maxCost: 10 })) {
      held -= weights[i]!;
      out.push(i);
    }
    expect(out).toEqual([...weights.keys()]);
    expect(most).toBeLessThanOrEqual(10);
    expect(alone).toBe(true);
  });

  it('return() waits for every started call and closes the source; nothing new starts', async () => {
    let started = 0;
    let settled = 0;
    let sourceClosed = false;
    async function* source() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        sourceClosed = true;
      }
    }
    const taken: number[] = [];
    for await (const v of orderedMap(source(), async (i) => {
      started++;
      await sleep(5);
      settled++;
      return i;
    }, { window: 6, cost: () => 1, maxCost: 4 })) {
      taken.push(v);
      if (taken.length === 3) break;
    }
    expect(taken).toEqual([0, 1, 2]);
    expect(settled).toBe(started);
    expect(started).toBeLessThanOrEqual(3 + 4);
    expect(sourceClosed).toBe(true);
  });
});

describe('read-ahead', () => {
  /** Read-ahead settings to try: the default, both I/O ways with tiny windows, none at all. */
  const SETTINGS: [string, ReadAhead][] = [
    ['default', { ...READ_AHEAD }],
    ['tiny windows, I/O thread', { ...READ_AHEAD, batch: 3, statAhead: 5, readAhead: 7, readBytes: 300_000 }],
    ['tiny windows, thread pool', { ...READ_AHEAD, batch: 3, statAhead: 5, readAhead: 7, readBytes: 300_000, thread: false }],
    ['one at a time', { ...READ_AHEAD, batch: 1, statAhead: 1, readAhead: 1, readBytes: 1, smallFile: 0, thread: false }],
  ];

  function rootOf(dir: string) {
    return [{ osPath: dir, agentPath: agentPathOf(dir) }];
  }

  interface Outcome {
    path: string;
    kind: string;
    size: number | null;
    data: Buffer | null;
    error: string | null;
  }

  /** Every file in order, each stream read as the engine would; a failed stream is recorded. */
  async function drain(files: AsyncIterable<AgentFile>): Promise<Outcome[]> {
    const out: Outcome[] = [];
    for await (const file of files) {
      let data: Buffer | null = null;
      let error: string | null = null;
      for (const stream of file.streams) {
        const chunks: Buffer[] = [];
        try {
          for await (const chunk of stream.data()) chunks.push(Buffer.from(chunk));
        } catch (e) {
          error = `${(e as AgentfdError).code}: ${(e as Error).message}`;
        }
        data = Buffer.concat(chunks);
      }
      out.push({ path: file.path, kind: file.kind, size: file.size, data, error });
    }
    return out;
  }

  /** The tree as the walk must list it: depth-first, byte order, each directory before its contents. */
  function expectedOrder(root: string): string[] {
    const out = [agentPathOf(root)];
    const walk = (dir: string) => {
      for (const raw of readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
        const child = path.join(dir, raw.toString('utf8'));
        out.push(agentPathOf(child));
        const st = lstatSync(child);
        if (st.isDirectory() && !st.isSymbolicLink()) walk(child);
      }
    };
    walk(root);
    return out;
  }

  function makeMixedTree(): string {
    const root = tempDir('mixed');
    const small = READ_AHEAD.smallFile;
    const sizes = [0, 1, 700, 4096, 65_536, small, small + 1, 1024 * 1024 + 3];
    for (let d = 0; d < 4; d++) {
      const dir = path.join(root, `dir${d}`);
      mkdirSync(path.join(dir, 'sub', 'deeper'), { recursive: true });
      mkdirSync(path.join(dir, 'empty'));
      for (let i = 0; i < 30; i++) {
        writeFileSync(path.join(dir, `f${String(i).padStart(2, '0')}.bin`), randomBytes(sizes[(i * 5 + d) % sizes.length]!));
        if (i % 6 === 0) writeFileSync(path.join(dir, 'sub', `s${i}`), randomBytes(sizes[i % 5]!));
      }
      writeFileSync(path.join(dir, 'sub', 'deeper', 'big'), randomBytes(2 * 1024 * 1024 + 17));
      writeFileSync(path.join(dir, 'sub', 'deeper', 'tiny'), 't');
      symlinkSync('f00.bin', path.join(dir, 'link'));
    }
    writeFileSync(path.join(root, 'zz-last'), 'last');
    return root;
  }

  it('keeps the order and the bytes with small and large files across directories, whatever the windows', async () => {
    const root = makeMixedTree();
    const order = expectedOrder(root);
    const fromAgent = await drain((await agent.backup(backupRequest(root))).files);
    expect(fromAgent.map((f) => f.path)).toEqual(order);
    for (const [name, settings] of SETTINGS) {
      const got = await drain(walkRoots(rootOf(root), backupRequest(root), settings));
      expect(got.map((f) => f.path), name).toEqual(order);
      for (const f of got) {
        expect(f.error, `${name}: ${f.path}`).toBeNull();
        const osPath = f.path; // POSIX: the agent path is the OS path; Windows: compared by size only
        if (f.kind === 'regular') {
          expect(f.data!.length, `${name}: ${f.path}`).toBe(f.size);
          if (!IS_WINDOWS) expect(f.data!.equals(readFileSync(osPath)), `${name}: ${f.path}`).toBe(true);
        } else {
          expect(f.data, `${name}: ${f.path}`).toBeNull();
        }
      }
    }
  });

  it.each(SETTINGS)('a file changed between its lstat and its read still fails with E_SOURCE_CHANGED (%s)', async (_name, settings) => {
    const dir = tempDir('race');
    const names = ['a-grows', 'b-shrinks', 'c-replaced', 'd-removed', 'e-unchanged', 'f-large-grows'];
    for (const name of names) writeFileSync(path.join(dir, name), 'x'.repeat(name.includes('large') ? READ_AHEAD.smallFile + 100 : 1000));
    // Right after the walk's lstat of each entry, before anything opens it.
    const afterStat = (osPath: string) => {
      const name = path.basename(osPath);
      if (name === 'a-grows' || name === 'f-large-grows') appendFileSync(osPath, 'more');
      if (name === 'b-shrinks') truncateSync(osPath, 10);
      if (name === 'c-replaced') {
        writeFileSync(`${osPath}.new`, 'y'.repeat(1000));
        renameSync(`${osPath}.new`, osPath);
      }
      if (name === 'd-removed') rmSync(osPath);
    };
    const got = await drain(walkRoots(rootOf(dir), backupRequest(dir), { ...settings, afterStat }));
    const byName = new Map(got.map((f) => [path.posix.basename(f.path), f]));
    expect([...byName.keys()].slice(1)).toEqual(names);
    expect(byName.get('a-grows')!.error).toMatch(/^E_SOURCE_CHANGED: .*a-grows: it grew while being read/);
    expect(byName.get('a-grows')!.data!.length).toBe(1001);
    expect(byName.get('b-shrinks')!.error).toMatch(/^E_SOURCE_CHANGED: .*b-shrinks: it shrank while being read \(10 of 1000 bytes\)/);
    expect(byName.get('c-replaced')!.error).toMatch(/^E_SOURCE_CHANGED: .*c-replaced: it was replaced by another file/);
    expect(byName.get('d-removed')!.error).toMatch(/^E_SOURCE_CHANGED: .*d-removed: it can no longer be opened \(ENOENT\)/);
    expect(byName.get('e-unchanged')!).toMatchObject({ error: null, data: Buffer.from('x'.repeat(1000)) });
    expect(byName.get('f-large-grows')!.error).toMatch(/^E_SOURCE_CHANGED: .*it grew while being read/);
  });

  it('asks the fileset before lstat: an excluded entry is never stat\'ed', async () => {
    const dir = tempDir('fileset');
    mkdirSync(path.join(dir, 'skip'));
    writeFileSync(path.join(dir, 'skip', 'inner'), 'i');
    writeFileSync(path.join(dir, 'skip.txt'), 's');
    writeFileSync(path.join(dir, 'keep.txt'), 'k');
    const stated: string[] = [];
    const request = backupRequest(dir, { filesetCheck: (p) => !path.posix.basename(p).startsWith('skip') });
    const got = await drain(walkRoots(rootOf(dir), request, { ...READ_AHEAD, afterStat: (p) => stated.push(path.basename(p)) }));
    expect(got.map((f) => path.posix.basename(f.path)).slice(1)).toEqual(['keep.txt']);
    expect(stated).toEqual(['keep.txt']);
  });

  it('works a bounded way ahead of the engine, however large the directory', async () => {
    const dir = tempDir('lazy');
    for (let i = 0; i < 3000; i++) writeFileSync(path.join(dir, `e${i}`), '');
    let stated = 0;
    let consumed = 0;
    let mostAhead = 0;
    const settings = { ...READ_AHEAD, afterStat: () => void stated++ };
    for await (const file of walkRoots(rootOf(dir), backupRequest(dir), settings)) {
      for (const stream of file.streams) for await (const _ of stream.data()) { /* drain */ }
      consumed++;
      mostAhead = Math.max(mostAhead, stated - consumed);
      // A slow engine: the walk must wait for it, not list the whole directory meanwhile.
      if (consumed % 500 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(consumed).toBe(3001);
    const bound = settings.readAhead + settings.statAhead + 3 * settings.batch;
    expect(mostAhead).toBeLessThanOrEqual(bound);
  });

  it.skipIf(process.platform !== 'linux')('an abandoned backup leaves no file open', async () => {
    const dir = tempDir('abandon');
    for (let d = 0; d < 4; d++) {
      mkdirSync(path.join(dir, `d${d}`));
      for (let i = 0; i < 300; i++) writeFileSync(path.join(dir, `d${d}`, `f${i}`), randomBytes(1024));
    }
    const openFds = () => readdirSync('/proc/self/fd');
    const openInTree = () =>
      openFds().filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
        } catch {
          return false; // closed meanwhile (the readdir's own fd)
        }
      }).length;
    const before = openFds().length;
    const budgetBound = { ...READ_AHEAD, batch: 4, readAhead: 16, readBytes: 5000 };
    for (const [name, settings] of [...SETTINGS, ['budget-bound', budgetBound] as [string, ReadAhead]]) {
      for (const stopAt of [1, 40, 700]) {
        let n = 0;
        for await (const file of walkRoots(rootOf(dir), backupRequest(dir), settings)) {
          if (++n === stopAt) break;
          if (n % 2) for (const stream of file.streams) for await (const _ of stream.data()) { /* drain */ }
        }
        expect(openInTree(), `${name}, stopped at ${stopAt}`).toBe(0);
        expect(openFds().length, `${name}, stopped at ${stopAt}`).toBe(before);
      }
    }
    // Through the agent, as the engine uses it, and abandoned with a file half read.
    const run = await agent.backup(backupRequest(dir));
    let n = 0;
    for await (const file of run.files) {
      if (++n < 50) continue;
      for await (const _ of file.streams[0]!.data()) break;
      break;
    }
    expect(openInTree()).toBe(0);
    expect(openFds().length).toBe(before);
    // Left unfinished without return(): the run's close() stops the walk.
    const dropped = await agent.backup(backupRequest(dir));
    const iterator = dropped.files[Symbol.asyncIterator]();
    for (let i = 0; i < 30; i++) expect((await iterator.next()).done).toBe(false);
    await dropped.close();
    expect((await iterator.next()).done).toBe(true);
    expect(openInTree()).toBe(0);
    expect(openFds().length).toBe(before);
  });
});
