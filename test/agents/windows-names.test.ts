/**
 * What a restore does with names and attributes across systems: the Windows name mapping (a Linux
 * backup restored on Windows) and that it can be undone, case clashes refused on Windows, and the
 * Windows attribute bits kept for a restore. These run on every system: the Windows rules are pure
 * functions with a `windows` switch, and the restore takes a `windows` option for the same reason.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { RestoreRun } from '../../src/agents/agent.js';
import {
  WindowsNameClaims,
  foldWindowsName,
  planRestorePath,
  restoreComponents,
  unmapWindowsName,
  windowsName,
} from '../../src/agents/filesystem/agent-path.js';
import { startFilesystemRestore } from '../../src/agents/filesystem/restore.js';
import {
  FILE_ATTRIBUTE_ARCHIVE,
  FILE_ATTRIBUTE_HIDDEN,
  FILE_ATTRIBUTE_NOT_CONTENT_INDEXED,
  FILE_ATTRIBUTE_READONLY,
  FILE_ATTRIBUTE_SYSTEM,
  readWinAttributes,
  restorableWinAttributes,
  writeWinAttributes,
} from '../../src/agents/filesystem/win-attributes.js';
import type { AgentFileInfo } from '../../src/agents/types.js';
import { AgentfdError } from '../../src/errors.js';
import { restoreRequest, type Logged } from '../helpers/requests.js';

const IS_WINDOWS = process.platform === 'win32';
const cleanup: string[] = [];

afterAll(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentfd-winnames-'));
  cleanup.push(dir);
  return dir;
}

describe('the Windows name mapping', () => {
  const table: [original: string, written: string][] = [
    ['a:b', 'a%3Ab'],
    ['what?', 'what%3F'],
    ['x<y>z', 'x%3Cy%3Ez'],
    ['pipe|', 'pipe%7C'],
    ['quote"', 'quote%22'],
    ['star*', 'star%2A'],
    ['back\\slash', 'back%5Cslash'],
    ['\\', '%5C'],
    ['bell\u0007', 'bell%07'],
    ['tab\there', 'tab%09here'],
    ['\u001f', '%1F'],
    ['trailing.', 'trailing%2E'],
    ['trailing ', 'trailing%20'],
    ['x..', 'x.%2E'],
    ['...', '..%2E'],
    [' ', '%20'],
    ['CON', '%43ON'],
    ['con.txt', '%63on.txt'],
    ['Aux.tar.gz', '%41ux.tar.gz'],
    ['COM1', '%43OM1'],
    ['LPT9.log', '%4CPT9.log'],
    ['nul', '%6Eul'],
    // The trailing dot is escaped first, and "prn%2E" is no device name.
    ['prn.', 'prn%2E'],
    ['con .txt', '%63on .txt'],
    ['COM\u00b9', '%43OM\u00b9'],
    ['CONSOLE', 'CONSOLE'],
    ['COM10', 'COM10'],
    ['LPT', 'LPT'],
    ['my.con', 'my.con'],
    // A name that needs nothing else keeps its '%' (a Windows file restored to Windows)...
    ['%41', '%41'],
    ['My%20File.pdf', 'My%20File.pdf'],
    // ...and one that is mapped gets it escaped, so that it reads back exactly.
    ['a:%41', 'a%3A%2541'],
    ['%4a%4A?', '%254a%254A%3F'],
    ['50%', '50%'],
    ['%zz', '%zz'],
    ['100%.', '100%%2E'],
    ['%:', '%%3A'],
    ['a:b?.', 'a%3Ab%3F%2E'],
    ['plain.txt', 'plain.txt'],
    ['été 📦.txt', 'été 📦.txt'],
  ];

  it.each(table)('writes %j as %j on Windows, and reads it back', (original, written) => {
    expect(windowsName(original).written).toBe(written);
    if (written !== original) expect(unmapWindowsName(written)).toBe(original);
  });

  it('says why a name was mapped', () => {
    expect(windowsName('a:b').why).toEqual(["Windows cannot hold ':' in a name"]);
    expect(windowsName('x<y>:').why).toEqual(["Windows cannot hold '<', '>', ':' in a name"]);
    expect(windowsName('bell\u0007').why).toEqual(['Windows cannot hold U+0007 in a name']);
    expect(windowsName('a\\b').why).toEqual(["Windows cannot hold '\\' in a name"]);
    expect(windowsName('trailing.').why).toEqual(["Windows would drop a trailing '.'"]);
    expect(windowsName('trailing ').why).toEqual(['Windows would drop a trailing space']);
    expect(windowsName('aux.log').why).toEqual(['"aux" is a device name on Windows']);
    expect(windowsName('%41').why).toEqual([]);
    expect(windowsName('%41:').why).toEqual(["a '%' before two hex digits is written %25 so that the name can be read back", "Windows cannot hold ':' in a name"]);
    expect(windowsName('plain.txt').why).toEqual([]);
  });

  it('maps every component but the drive, and lists what it mapped', () => {
    expect(planRestorePath('/C:/data/a:b/CON/ok.txt', true)).toEqual({
      components: ['C', 'data', 'a%3Ab', '%43ON', 'ok.txt'],
      mapped: [
        { agentPath: '/C:/data/a:b', original: 'a:b', written: 'a%3Ab', why: "Windows cannot hold ':' in a name" },
        { agentPath: '/C:/data/a:b/CON', original: 'CON', written: '%43ON', why: '"CON" is a device name on Windows' },
      ],
    });
    // A Linux backup: no drive, so the first component is an ordinary name.
    expect(restoreComponents('/home/ann/what?', true)).toEqual(['home', 'ann', 'what%3F']);
    expect(restoreComponents('/UNC/server/share/a|b', true)).toEqual(['UNC', 'server', 'share', 'a%7Cb']);
    // "C:" deeper down is a name with a colon, not a drive.
    expect(restoreComponents('/data/C:', true)).toEqual(['data', 'C%3A']);
  });

  it('maps nothing on POSIX', () => {
    for (const [original] of table) {
      const agentPath = `/d/${original}`;
      expect(planRestorePath(agentPath, false)).toEqual({ components: ['d', original], mapped: [] });
    }
    expect(restoreComponents('/C:/Users/ann', false)).toEqual(['C:', 'Users', 'ann']);
  });

  it('still refuses what no system can hold', () => {
    for (const windows of [true, false]) {
      for (const bad of ['/a/../b', '/a/./b', '/a//b', 'relative', '/a\0b']) {
        expect(() => planRestorePath(bad, windows), `${bad} windows=${windows}`).toThrow(AgentfdError);
      }
    }
  });

  it('round-trips any name, and writes only names Windows holds as they are', () => {
    // Names built from the characters the rules care about, so that the rules meet each other.
    const piece = fc.constantFrom('%', '4', '1', 'a', 'F', 'z', '.', ' ', ':', '?', '*', '\\', '\u0001', 'CON', 'aux', 'lpt1', 'é', '📦', 'ß');
    const name = fc.array(piece, { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''));
    fc.assert(
      fc.property(name, (original) => {
        const { written } = windowsName(original);
        // A name is written as it is, or mapped so that it reads back exactly.
        if (written !== original) expect(unmapWindowsName(written)).toBe(original);
        expect(written).not.toMatch(/[<>:"|?*\\\u0000-\u001f]/);
        expect(written).not.toMatch(/[. ]$/);
        const dot = written.indexOf('.');
        const base = (dot === -1 ? written : written.slice(0, dot)).replace(/ +$/, '');
        expect(base).not.toMatch(/^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])$/i);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('case-insensitive names on Windows', () => {
  it('folds as NTFS compares: one-to-one upper case, no normalisation', () => {
    expect(foldWindowsName('Readme.md')).toBe(foldWindowsName('README.MD'));
    expect(foldWindowsName('Été')).toBe(foldWindowsName('éTÉ'));
    expect(foldWindowsName('straße')).not.toBe(foldWindowsName('STRASSE'));
    expect(foldWindowsName('\u00e9')).not.toBe(foldWindowsName('e\u0301'));
    expect(foldWindowsName('📦')).toBe('📦');
  });

  it('refuses a second path that lands on the same file, naming both', () => {
    const claims = new WindowsNameClaims();
    const claim = (agentPath: string) => claims.claim(agentPath, restoreComponents(agentPath, true));
    claim('/d');
    claim('/d/README');
    claim('/d/README'); // the same path again is the same file, not a clash
    expect(() => claim('/d/Readme')).toThrow(/"\/d\/Readme" refused: Windows does not tell "Readme" from "README".*would overwrite "\/d\/README"/);
    // A directory that clashes takes its contents with it, even names that are new.
    claim('/d/Sub/one');
    expect(() => claim('/d/sub/two')).toThrow(/"\/d\/sub\/two" refused: .*"sub" from "Sub".*would overwrite "\/d\/Sub"/);
    // The refusal recorded nothing: "two" is still free under "/d/Sub".
    claim('/d/Sub/two');
    // The drive colon is dropped, so "/C:" and a Linux "/C" are one directory on Windows.
    claim('/C:/x');
    expect(() => claim('/C/x')).toThrow(/on Windows both it and "\/C:" are written as "C"/);
    // The escape keeps the case of the letter it replaces: "%43ON" and "%63on" are two names on
    // Windows too, while "%43on" is "%43ON" there.
    claim('/d/CON');
    claim('/d/con');
    expect(restoreComponents('/d/con', true)).toEqual(['d', '%63on']);
    expect(() => claim('/d/Con')).toThrow(/Windows does not tell "%43on" from "%43ON"/);
    let thrown: unknown = null;
    try {
      claim('/d/readme');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AgentfdError);
    expect((thrown as AgentfdError).code).toBe('E_RESTORE_PATH');
  });
});

function info(agentPath: string, kind: 'regular' | 'directory', extra: Partial<AgentFileInfo> = {}): AgentFileInfo {
  return {
    path: agentPath,
    kind,
    linkTarget: null,
    mode: kind === 'directory' ? 0o755 : 0o644,
    seen: false,
    mtimeNs: 1_600_000_000_000_000_000n,
    size: null,
    winAttributes: 0,
    streams: kind === 'regular' ? [{ index: 0, type: 'data', name: 'data', sizeHint: null, rawRestorable: false }] : [],
    ...extra,
  };
}

async function restoreFile(run: RestoreRun, file: AgentFileInfo, content?: string): Promise<void> {
  await run.startFile(file);
  if (content !== undefined) await run.write(0, Buffer.from(content));
  await run.endFile(true);
}

describe('a restore as on Windows', () => {
  it('writes mapped names, says so once per name, and refuses a case clash without writing it', async () => {
    const target = tempDir();
    const logs: Logged[] = [];
    const run = await startFilesystemRestore(restoreRequest(target, logs), { windows: true });
    await restoreFile(run, info('/data', 'directory'));
    await restoreFile(run, info('/data/a:b', 'directory'));
    await restoreFile(run, info('/data/a:b/one.txt', 'regular'), 'one');
    await restoreFile(run, info('/data/a:b/two?', 'regular'), 'two');
    await restoreFile(run, info('/data/README', 'regular'), 'upper');
    const refused = await run.startFile(info('/data/Readme', 'regular')).then(
      () => null,
      (error: unknown) => error as AgentfdError,
    );
    await run.finish();
    await run.close();

    expect(refused?.code).toBe('E_RESTORE_PATH');
    expect(refused?.message).toMatch(/"\/data\/Readme" refused: .*ignore case.*would overwrite "\/data\/README".*nothing was written for it/);
    expect(readdirSync(path.join(target, 'data')).sort()).toEqual(['README', 'a%3Ab']);
    expect(readdirSync(path.join(target, 'data', 'a%3Ab')).sort()).toEqual(['one.txt', 'two%3F']);
    expect(readFileSync(path.join(target, 'data', 'README'), 'utf8')).toBe('upper');
    expect(readFileSync(path.join(target, 'data', 'a%3Ab', 'two%3F'), 'utf8')).toBe('two');
    expect(logs).toEqual([
      { level: 'warning', message: "/data/a:b restored as a%3Ab (Windows cannot hold ':' in a name)" },
      { level: 'warning', message: "/data/a:b/two? restored as two%3F (Windows cannot hold '?' in a name)" },
    ]);
  });

  it('keeps the clashes of one run only: a new run starts afresh', async () => {
    const target = tempDir();
    const first = await startFilesystemRestore(restoreRequest(target, []), { windows: true });
    await restoreFile(first, info('/x/Notes', 'regular'), 'first');
    await first.finish();
    await first.close();
    const second = await startFilesystemRestore(restoreRequest(target, []), { windows: true });
    await restoreFile(second, info('/x/Notes', 'regular'), 'again');
    await second.finish();
    await second.close();
    expect(readFileSync(path.join(target, 'x', 'Notes'), 'utf8')).toBe('again');
  });
});

describe('a restore as on POSIX', () => {
  // Only where names are POSIX names: on Windows "a:b.txt" would name a data stream of "a".
  it.skipIf(IS_WINDOWS)('writes names as they are, and never turns READONLY into a mode', async () => {
    const target = tempDir();
    const logs: Logged[] = [];
    const run = await startFilesystemRestore(restoreRequest(target, logs), { windows: false });
    const bits = FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN;
    await restoreFile(run, info('/C:/data/a:b.txt', 'regular', { winAttributes: bits }), 'colon');
    await restoreFile(run, info('/C:/data/README', 'regular'), 'upper');
    await restoreFile(run, info('/C:/data/Readme', 'regular'), 'mixed');
    await run.finish();
    await run.close();
    const dir = path.join(target, 'C:', 'data');
    expect(readdirSync(dir).sort()).toEqual(['README', 'Readme', 'a:b.txt']);
    expect(statSync(path.join(dir, 'a:b.txt')).mode & 0o777).toBe(0o644);
    expect(logs).toEqual([]);
  });
});

describe('Windows attributes', () => {
  it('keeps only the bits a restore can set again', () => {
    expect(FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED).toBe(0x2027);
    expect(restorableWinAttributes(0)).toBe(0);
    expect(restorableWinAttributes(0x2027)).toBe(0x2027);
    // DIRECTORY 0x10, NORMAL 0x80, TEMPORARY 0x100, SPARSE 0x200, REPARSE_POINT 0x400,
    // COMPRESSED 0x800, OFFLINE 0x1000, ENCRYPTED 0x4000, RECALL_ON_DATA_ACCESS 0x400000.
    expect(restorableWinAttributes(0x10 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x1000 | 0x4000 | 0x400000)).toBe(0);
    expect(restorableWinAttributes(0x10 | FILE_ATTRIBUTE_HIDDEN | 0x400 | FILE_ATTRIBUTE_READONLY)).toBe(0x3);
    expect(restorableWinAttributes(0xffffffff)).toBe(0x2027);
  });

  it.runIf(IS_WINDOWS)('reads and sets them through kernel32 on Windows, and a Windows restore sets them last', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'plain.txt');
    writeFileSync(file, 'x');
    writeWinAttributes(file, FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE | 0x10);
    expect(readWinAttributes(file)).toBe(FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE);
    writeWinAttributes(file, 0);
    // Wine (the Windows lane) reports ARCHIVE on every file, whatever was set; Windows gives 0.
    expect(readWinAttributes(file) & ~FILE_ATTRIBUTE_ARCHIVE).toBe(0);
    expect(() => readWinAttributes(path.join(dir, 'missing'))).toThrow(/GetFileAttributesW failed for .*: ERROR_FILE_NOT_FOUND/);

    const target = path.join(dir, 'restore');
    const logs: Logged[] = [];
    const run = await startFilesystemRestore(restoreRequest(target, logs));
    const bits = FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE;
    await restoreFile(run, info('/d', 'directory', { winAttributes: FILE_ATTRIBUTE_SYSTEM | 0x10 }));
    await restoreFile(run, info('/d/a:b.txt', 'regular', { winAttributes: bits }), 'read-only and hidden');
    await run.finish();
    await run.close();
    expect(readWinAttributes(path.join(target, 'd', 'a%3Ab.txt'))).toBe(bits);
    expect(readFileSync(path.join(target, 'd', 'a%3Ab.txt'), 'utf8')).toBe('read-only and hidden');
    expect(readWinAttributes(path.join(target, 'd'))).toBe(FILE_ATTRIBUTE_SYSTEM);
    expect(logs.filter((l) => l.level === 'warning').map((l) => l.message)).toEqual([
      "/d/a:b.txt restored as a%3Ab.txt (Windows cannot hold ':' in a name)",
    ]);
  });

  it.skipIf(IS_WINDOWS)('reads as 0 and writes nothing off Windows', () => {
    const dir = tempDir();
    expect(readWinAttributes(dir)).toBe(0);
    expect(() => writeWinAttributes(dir, FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_READONLY)).not.toThrow();
    expect(statSync(dir).mode & 0o200).toBe(0o200);
  });
});
