/**
 * ACL and extended attribute streams as bacula-fd 9.6 writes and reads them on Linux (filed/bacl.c,
 * bacl_linux.c, bxattr.c, bxattr_linux.c; src/bacula-fd/attributes/: acl.ts, xattr.ts, xacl.ts):
 *  - the formats, against records the real bacula-fd 9.6.7 wrote to a volume (an access ACL, a
 *    directory's access and default ACLs, an xattr stream with an empty and a binary value), and
 *    against libacl's own acl_to_text / acl_from_text where libacl.so.1 is installed;
 *  - backup and restore of a real tree (under the system's temporary directory: ext4 or tmpfs, both
 *    with user.* xattrs and ACLs): the streams' order (data, 1008, 1007, 1998, digest), and the
 *    restored files with the same ACLs (the kernel's binary values) and xattrs;
 *  - a filesystem without xattrs or ACLs (procfs) is a warning and a count, never a failure.
 * The same with a real Director, SD and bacula-fd is test/bacula-lab/xattr-acl.test.ts.
 */
import { chmodSync, lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACL_TAG, ACL_UNDEFINED_ID, aclFromText, aclProblem, aclToText, decodePosixAcl, encodePosixAcl, isSimpleAcl, systemIdNames, type AclEntry, type IdNames } from '../../src/bacula-fd/attributes/acl.js';
import { sendBackup, type StreamSink } from '../../src/bacula-fd/transfer/backup.js';
import { parseFileSet } from '../../src/bacula-fd/fileset/fileset.js';
import { FT, STREAM, decodeAttributes } from '../../src/bacula-fd/attributes/lstat.js';
import { receiveRestore } from '../../src/bacula-fd/transfer/restore.js';
import type { SdRecord } from '../../src/bacula-fd/transfer/storage-daemon.js';
import { XaclRestore } from '../../src/bacula-fd/attributes/xacl.js';
import { decodeXattrStream, encodeXattrStream, getXattr, listXattrs, setXattr } from '../../src/bacula-fd/attributes/xattr.js';
import { ensureDebianPackage, skipNote } from '../helpers/debian.js';
import { tempDir } from '../helpers/native.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/**
 * What bacula-fd 9.6.7 (Debian 12) wrote for /tmp/.../dir/a.txt (setfacl -m u:1234:rwx,g:daemon:r-x,u:root:r;
 * setfattr user.comment="a comment", user.empty, user.bin=0x00ff10) and dir/sub (setfacl -m
 * u:daemon:rwx, d:u:1234:rwx; user.dirattr=yes), read back from its volume: record payloads.
 */
const REAL_FD = {
  fileAccess: hex(`757365723a3a72772d0a757365723a726f6f743a722d2d0a757365723a313233343a7277780a67726f75703a3a722d2d0a
    67726f75703a6461656d6f6e3a722d780a6d61736b3a3a7277780a6f746865723a3a722d2d0a00`),
  fileXattrs: hex(`005c58840000000c757365722e636f6d6d656e74000000096120636f6d6d656e74005c58840000000a757365722e656d7074
    7900000000005c588400000008757365722e62696e0000000300ff10`),
  dirAccess: hex('757365723a3a7277780a757365723a6461656d6f6e3a7277780a67726f75703a3a722d780a6d61736b3a3a7277780a6f746865723a3a722d780a00'),
  dirDefault: hex('757365723a3a7277780a757365723a313233343a7277780a67726f75703a3a722d780a6d61736b3a3a7277780a6f746865723a3a722d780a00'),
  dirXattrs: hex('005c58840000000c757365722e6469726174747200000003796573'),
};
/** The kernel's system.posix_acl_access values of those two (getfattr -e base64). */
const KERNEL = {
  fileAccess: Buffer.from('AgAAAAEABgD/////AgAEAAAAAAACAAcA0gQAAAQABAD/////CAAFAAEAAAAQAAcA/////yAABAD/////', 'base64'),
  dirAccess: Buffer.from('AgAAAAEABwD/////AgAHAAEAAAAEAAUA/////xAABwD/////IAAFAP////8=', 'base64'),
  dirDefault: Buffer.from('AgAAAAEABwD/////AgAHANIEAAAEAAUA/////xAABwD/////IAAFAP////8=', 'base64'),
};

/** Debian's first ids, so the tests do not depend on the machine's passwd and group files. */
const NAMES: IdNames = {
  userName: (uid) => ({ 0: 'root', 1: 'daemon' })[uid] ?? null,
  groupName: (gid) => ({ 0: 'root', 1: 'daemon' })[gid] ?? null,
  userId: (name) => ({ root: 0, daemon: 1 })[name] ?? null,
  groupId: (name) => ({ root: 0, daemon: 1 })[name] ?? null,
};

const text = (payload: Buffer) => payload.toString('utf8');
const U = ACL_UNDEFINED_ID;

describe('ACL text (acl_to_text / acl_from_text), byte for byte as bacula-fd 9.6 saves it', () => {
  it('turns the kernel values into what the real FD saved (its NUL aside), and back', () => {
    for (const name of ['fileAccess', 'dirAccess', 'dirDefault'] as const) {
      const saved = REAL_FD[name];
      expect(saved.at(-1)).toBe(0);
      expect(aclToText(decodePosixAcl(KERNEL[name]), NAMES), name).toBe(text(saved.subarray(0, -1)));
      expect(encodePosixAcl(aclFromText(text(saved), NAMES)), name).toEqual(KERNEL[name]);
    }
  });

  it('marks what the mask takes away with "\\t#effective:", for named entries and group:: only', () => {
    const entries: AclEntry[] = [
      { tag: ACL_TAG.USER_OBJ, perm: 7, id: U },
      { tag: ACL_TAG.USER, perm: 7, id: 1234 },
      { tag: ACL_TAG.GROUP_OBJ, perm: 6, id: U },
      { tag: ACL_TAG.GROUP, perm: 1, id: 1 },
      { tag: ACL_TAG.MASK, perm: 5, id: U },
      { tag: ACL_TAG.OTHER, perm: 7, id: U },
    ];
    expect(aclToText(entries, NAMES)).toBe('user::rwx\nuser:1234:rwx\t#effective:r-x\ngroup::rw-\t#effective:r--\ngroup:daemon:--x\nmask::r-x\nother::rwx\n');
    // and reads it back, comments and all
    expect(aclFromText(aclToText(entries, NAMES), NAMES)).toEqual(entries);
  });

  it('sorts entries as libacl does (tag, then id), whatever order the value has', () => {
    const shuffled = Buffer.concat([hex('02000000'), hex('2000 0400 ffffffff'), hex('0200 0700 d2040000'), hex('0100 0600 ffffffff'), hex('0200 0400 00000000'), hex('0400 0400 ffffffff'), hex('1000 0700 ffffffff')]);
    expect(aclToText(decodePosixAcl(shuffled), NAMES)).toBe('user::rw-\nuser:root:r--\nuser:1234:rwx\ngroup::r--\nmask::rwx\nother::r--\n');
  });

  it('quotes separators in names as libacl (\\ooo, a backslash doubled), and reads them back', () => {
    const odd: IdNames = { ...NAMES, userName: () => 'a b:c,d\\e\tf', userId: (n) => (n === 'a b:c,d\\e\tf' ? 77 : null) };
    const entries: AclEntry[] = [
      { tag: ACL_TAG.USER_OBJ, perm: 6, id: U }, { tag: ACL_TAG.USER, perm: 4, id: 77 }, { tag: ACL_TAG.GROUP_OBJ, perm: 4, id: U },
      { tag: ACL_TAG.MASK, perm: 4, id: U }, { tag: ACL_TAG.OTHER, perm: 0, id: U },
    ];
    const written = aclToText(entries, odd);
    expect(written).toBe('user::rw-\nuser:a\\040b\\072c\\054d\\\\e\\011f:r--\ngroup::r--\nmask::r--\nother::---\n');
    expect(aclFromText(written, odd)).toEqual(entries);
  });

  it('reads what acl_from_text accepts: short tags, commas, comments, numbers in C notation, Solaris mask:rwx', () => {
    const entries = aclFromText('u::rw-,u:0x10:r, g::r-x ,g:010:w\n  # a comment\nm:rwx\no::-\0ignored after the NUL', NAMES);
    expect(entries).toEqual([
      { tag: ACL_TAG.USER_OBJ, perm: 6, id: U }, { tag: ACL_TAG.USER, perm: 4, id: 16 }, { tag: ACL_TAG.GROUP_OBJ, perm: 5, id: U },
      { tag: ACL_TAG.GROUP, perm: 2, id: 8 }, { tag: ACL_TAG.MASK, perm: 7, id: U }, { tag: ACL_TAG.OTHER, perm: 0, id: U },
    ]);
    expect(aclFromText('user:-2:r--', NAMES)[0]!.id).toBe(65534); // negative ids are 16-bit, as libacl's get_id
  });

  it('refuses what acl_from_text refuses, saying what', () => {
    expect(() => aclFromText('user:nosuchuser:rwx', NAMES)).toThrow(/unknown user "nosuchuser"/);
    expect(() => aclFromText('user::rwr', NAMES)).toThrow(/permission "r" twice/);
    expect(() => aclFromText('default:user::rwx', NAMES)).toThrow(/entry type/);
    expect(() => aclFromText('user::', NAMES)).toThrow(/permissions expected/);
  });

  it('judges validity as acl_valid, and simplicity as bacula-fd (only user::, group::, other::)', () => {
    const base: AclEntry[] = [{ tag: ACL_TAG.USER_OBJ, perm: 6, id: U }, { tag: ACL_TAG.GROUP_OBJ, perm: 4, id: U }, { tag: ACL_TAG.OTHER, perm: 4, id: U }];
    expect(aclProblem(base)).toBeNull();
    expect(isSimpleAcl(base)).toBe(true);
    const named = [...base, { tag: ACL_TAG.USER, perm: 7, id: 5 }];
    expect(aclProblem(named)).toMatch(/no mask/);
    expect(isSimpleAcl(named)).toBe(false);
    const masked = [...named, { tag: ACL_TAG.MASK, perm: 7, id: U }];
    expect(aclProblem(masked)).toBeNull();
    expect(aclProblem([...masked, { tag: ACL_TAG.USER, perm: 1, id: 5 }])).toMatch(/user 5 twice/);
    expect(aclProblem(base.slice(1))).toMatch(/no user::/);
    expect(aclProblem([])).toMatch(/missing/);
    expect(isSimpleAcl([...base, { tag: ACL_TAG.MASK, perm: 7, id: U }])).toBe(false); // a mask alone is sent too
  });

  it('refuses a value that is not a version-2 POSIX ACL', () => {
    expect(() => decodePosixAcl(hex('01000000'))).toThrow(/version 1/);
    expect(() => decodePosixAcl(hex('02000000 0100'))).toThrow(/8 bytes per entry/);
    expect(() => decodePosixAcl(hex('02000000 4000 0700 ffffffff'))).toThrow(/unknown tag 0x40/);
  });
});

describe('xattr stream (bxattr.c serialize / unserialize), byte for byte as bacula-fd 9.6 saves it', () => {
  const fileXattrs = [
    { name: Buffer.from('user.comment'), value: Buffer.from('a comment') },
    { name: Buffer.from('user.empty'), value: Buffer.alloc(0) },
    { name: Buffer.from('user.bin'), value: hex('00ff10') },
  ];

  it('writes and reads the real FD\'s records: big-endian magic 0x5C5884, name length, name, value length, value', () => {
    expect(encodeXattrStream(fileXattrs)).toEqual(REAL_FD.fileXattrs);
    expect(decodeXattrStream(REAL_FD.fileXattrs)).toEqual({ xattrs: fileXattrs, error: null });
    expect(decodeXattrStream(REAL_FD.dirXattrs).xattrs).toEqual([{ name: Buffer.from('user.dirattr'), value: Buffer.from('yes') }]);
  });

  it('keeps the attributes before a fault and says what the fault is', () => {
    const broken = Buffer.concat([REAL_FD.dirXattrs, hex('00000000 00000001')]);
    const { xattrs, error } = decodeXattrStream(broken);
    expect(xattrs).toHaveLength(1);
    expect(error).toMatch(/no XATTR_MAGIC at byte 27/);
    expect(decodeXattrStream(REAL_FD.dirXattrs.subarray(0, 20)).error).toMatch(/name running past the end/);
    expect(() => encodeXattrStream([{ name: Buffer.alloc(0), value: Buffer.alloc(0) }])).toThrow(/empty xattr attribute name/);
  });
});

/** libacl itself, where it is installed (Debian's coreutils depends on it): the reference for the text. */
function loadLibacl() {
  try {
    const lib = koffi.load('libacl.so.1');
    return {
      getFile: lib.func('void *acl_get_file(const char *path, int type)') as (p: string, type: number) => unknown,
      toText: lib.func('void *acl_to_text(void *acl, void *len)') as (acl: unknown, len: null) => unknown,
      fromText: lib.func('void *acl_from_text(const char *text)') as (t: string) => unknown,
      setFile: lib.func('int acl_set_file(const char *path, int type, void *acl)') as (p: string, type: number, acl: unknown) => number,
      free: lib.func('int acl_free(void *obj)') as (obj: unknown) => number,
    };
  } catch {
    return null;
  }
}
let libacl = loadLibacl();
/** Null when libacl.so.1 is there (libacl1 installed now if need be), else why its tests skip. */
const NO_LIBACL =
  process.platform !== 'linux'
    ? 'libacl.so.1 is Linux only'
    : ensureDebianPackage({ pkg: 'libacl1', what: 'libacl.so.1', present: () => (libacl ??= loadLibacl()) !== null });
const ACL_TYPE_ACCESS = 0x8000;

/**
 * Valid access ACLs the kernel keeps: base entries, named users and groups among ids with names (0,
 * 1) and without, and the mask (without one an ACL is valid only when it says no more than the mode,
 * and then the kernel drops it).
 */
const validAcl = fc
  .record({
    user: fc.integer({ min: 0, max: 7 }), group: fc.integer({ min: 0, max: 7 }), other: fc.integer({ min: 0, max: 7 }), mask: fc.integer({ min: 0, max: 7 }),
    users: fc.uniqueArray(fc.record({ id: fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 2, max: 4_000_000_000 })), perm: fc.integer({ min: 0, max: 7 }) }), { selector: (e) => e.id, maxLength: 4 }),
    groups: fc.uniqueArray(fc.record({ id: fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 2, max: 4_000_000_000 })), perm: fc.integer({ min: 0, max: 7 }) }), { selector: (e) => e.id, maxLength: 4 }),
  })
  .map((a): AclEntry[] => [
    { tag: ACL_TAG.USER_OBJ, perm: a.user, id: U },
    ...a.users.map((u) => ({ tag: ACL_TAG.USER, perm: u.perm, id: u.id })),
    { tag: ACL_TAG.GROUP_OBJ, perm: a.group, id: U },
    ...a.groups.map((g) => ({ tag: ACL_TAG.GROUP, perm: g.perm, id: g.id })),
    { tag: ACL_TAG.MASK, perm: a.mask, id: U },
    { tag: ACL_TAG.OTHER, perm: a.other, id: U },
  ]);

describe.skipIf(NO_LIBACL !== null)(`against libacl.so.1 (what bacula-fd calls)${skipNote(NO_LIBACL)}`, () => {
  const dir = tempDir('acl-libacl');
  const file = path.join(dir, 'f');
  writeFileSync(file, '');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const lib = libacl!;

  /** libacl's acl_to_text of the ACL the kernel holds for `file`. */
  const libaclText = (): string => {
    const acl = lib.getFile(file, ACL_TYPE_ACCESS);
    const t = lib.toText(acl, null);
    const out = koffi.decode(t, 'char', -1) as string;
    lib.free(t);
    lib.free(acl);
    return out;
  };

  it('writes the same text as acl_to_text for any valid ACL (names looked up on this system)', () => {
    fc.assert(
      fc.property(validAcl, (entries) => {
        setXattr(file, 'system.posix_acl_access', encodePosixAcl(entries));
        const kernel = decodePosixAcl(getXattr(file, 'system.posix_acl_access'));
        expect(aclToText(kernel)).toBe(libaclText());
      }),
      { numRuns: 150 },
    );
  });

  it('reads text to the same ACL as acl_from_text + acl_set_file', () => {
    fc.assert(
      fc.property(validAcl, (entries) => {
        const written = aclToText(entries);
        const acl = lib.fromText(written);
        expect(acl).not.toBeNull();
        expect(lib.setFile(file, ACL_TYPE_ACCESS, acl)).toBe(0);
        lib.free(acl);
        expect(encodePosixAcl(aclFromText(written))).toEqual(getXattr(file, 'system.posix_acl_access'));
      }),
      { numRuns: 150 },
    );
  });
});

// ---- backup and restore of a real tree ------------------------------------------------------------

interface Sent {
  fileIndex: number;
  stream: number;
  frames: Buffer[];
}

async function backup(files: string[], letters: string) {
  const sent: Sent[] = [];
  const logs: string[] = [];
  const sd: StreamSink = {
    async sendStream(fileIndex, stream, _length, frames) {
      const got: Buffer[] = [];
      for await (const frame of frames) got.push(Buffer.from(frame));
      sent.push({ fileIndex, stream, frames: got });
      return got.reduce((n, f) => n + f.length, 0);
    },
  };
  const fileset = parseFileSet(['I', `O ${letters}`, 'N', ...files.map((f) => `F ${f}`), 'N']);
  const totals = await sendBackup({ sd, fileset, since: null, isCancelled: () => false, log: (level, m) => logs.push(`${level}: ${m}`) });
  const indexOf = (fname: string) => {
    const found = sent.find((s) => s.stream === STREAM.UNIX_ATTRIBUTES && decodeAttributes(s.frames[0]!).fname === fname);
    if (!found) throw new Error(`${fname} was not sent`);
    return found.fileIndex;
  };
  const streamsOf = (fname: string) => sent.filter((s) => s.fileIndex === indexOf(fname) && s.stream !== STREAM.UNIX_ATTRIBUTES);
  return { sent, logs, totals, streamsOf };
}

async function restore(sent: Sent[], where: string) {
  const logs: string[] = [];
  const records: SdRecord[] = sent.flatMap((s) => s.frames.map((data) => ({ fileIndex: s.fileIndex, stream: s.stream, data })));
  const totals = await receiveRestore({
    records: (async function* () {
      yield* records;
    })(),
    where,
    log: (level, m) => logs.push(`${level}: ${m}`),
  });
  return { totals, logs };
}

/** What must survive: mode, both ACLs as the kernel holds them, and every xattr. */
function metadataOf(p: string): Record<string, string> {
  const out: Record<string, string> = { mode: (lstatSync(p).mode & 0o7777).toString(8) };
  for (const name of listXattrs(p)) out[name.toString()] = getXattr(p, name).toString('hex');
  return out;
}

/** Whether `dir`'s filesystem takes user.* xattrs and ACLs (ext4 and tmpfs do). */
function supportsXattrs(dir: string): boolean {
  const probe = path.join(dir, '.probe');
  writeFileSync(probe, '');
  try {
    setXattr(probe, 'user.probe', Buffer.from('1'));
    setXattr(probe, 'system.posix_acl_access', encodePosixAcl(aclFromText('u::rw-,u:1:r--,g::r--,m::r--,o::---')));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe);
  }
}

describe.skipIf(process.platform !== 'linux')('backup and restore of ACLs and xattrs on a real tree', () => {
  const root = tempDir('xattr-acl');
  const tree = path.join(root, 'tree');
  const supported = supportsXattrs(root);
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const file = path.join(tree, 'doc.txt');
  const dir = path.join(tree, 'shared');
  const plain = path.join(tree, 'plain.txt');
  const link = path.join(tree, 'link');

  beforeAll(() => {
    if (!supported) throw new Error(`${root} takes no user.* xattrs or ACLs: run the tests with TMPDIR on ext4, xfs or tmpfs`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, 'some content\n');
    chmodSync(file, 0o640);
    setXattr(file, 'system.posix_acl_access', encodePosixAcl(aclFromText('user::rw-,user:1:rwx,group::r--,group:4000000:r-x,mask::rwx,other::---')));
    setXattr(file, 'user.comment', Buffer.from('a comment'));
    setXattr(file, 'user.empty', Buffer.alloc(0));
    setXattr(file, 'user.binary', Buffer.from([0, 255, 16, 0]));
    setXattr(dir, 'system.posix_acl_access', encodePosixAcl(aclFromText('user::rwx,user:0:rwx,group::r-x,mask::r-x,other::r-x')));
    setXattr(dir, 'system.posix_acl_default', encodePosixAcl(aclFromText('user::rwx,user:1234:rwx,group::r-x,mask::rwx,other::---')));
    setXattr(dir, 'user.dir', Buffer.from('yes'));
    writeFileSync(plain, 'no acl\n');
    symlinkSync('doc.txt', link);
  });

  it('sends data, then the access ACL (1008), a directory\'s default ACL (1007), then the xattrs (1998), then the digest', async () => {
    const { streamsOf, totals, logs } = await backup([tree], 'AXM');
    expect(logs.filter((l) => !l.startsWith('info'))).toEqual([]);
    expect(streamsOf(file).map((s) => s.stream)).toEqual([STREAM.FILE_DATA, 1008, 1998, STREAM.MD5_DIGEST]);
    expect(text(streamsOf(file)[1]!.frames[0]!)).toBe(`user::rw-\nuser:${systemIdNames.userName(1) ?? '1'}:rwx\ngroup::r--\ngroup:4000000:r-x\nmask::rwx\nother::---\n\0`);
    expect(decodeXattrStream(streamsOf(file)[2]!.frames[0]!).xattrs.map((x) => x.name.toString()).sort()).toEqual(['user.binary', 'user.comment', 'user.empty']);
    expect(streamsOf(`${dir}/`).map((s) => s.stream)).toEqual([1008, 1007, 1998]);
    expect(streamsOf(plain).map((s) => s.stream)).toEqual([STREAM.FILE_DATA, STREAM.MD5_DIGEST]); // a mode-only ACL is not sent
    expect(streamsOf(link).map((s) => s.stream)).toEqual([]); // no ACL for a symlink, and it has no xattrs
    // ACL and xattr bytes count as job bytes, as bacula-fd counts them
    const xaclBytes = [file, `${dir}/`].flatMap((n) => streamsOf(n)).filter((s) => s.stream >= 1000).reduce((n, s) => n + s.frames[0]!.length, 0);
    expect(totals.jobBytes).toBe(xaclBytes + 'some content\n'.length + 'no acl\n'.length);
  });

  it('without aclsupport, the ACLs travel as system.posix_acl_* xattrs; without either, nothing extra', async () => {
    const xattrOnly = await backup([file], 'XM');
    expect(xattrOnly.streamsOf(file).map((s) => s.stream)).toEqual([STREAM.FILE_DATA, 1998, STREAM.MD5_DIGEST]);
    const names = decodeXattrStream(xattrOnly.streamsOf(file)[1]!.frames[0]!).xattrs.map((x) => x.name.toString());
    expect(names).toContain('system.posix_acl_access');
    const neither = await backup([file], 'M');
    expect(neither.streamsOf(file).map((s) => s.stream)).toEqual([STREAM.FILE_DATA, STREAM.MD5_DIGEST]);
  });

  it('restores the same ACLs, default ACL, xattrs and modes', async () => {
    const { sent } = await backup([tree], 'AXM');
    const where = path.join(root, 'restored');
    const { logs } = await restore(sent, where);
    expect(logs.filter((l) => l.startsWith('warning') || l.startsWith('error'))).toEqual([]);
    for (const p of [file, dir, plain]) expect(metadataOf(path.join(where, p)), p).toEqual(metadataOf(p));
  });

  it('restores the xattr-only backup the same way (system.posix_acl_access set as an xattr)', async () => {
    const { sent } = await backup([file], 'X');
    const where = path.join(root, 'restored-xattr-only');
    const { logs } = await restore(sent, where);
    expect(logs.filter((l) => l.startsWith('warning') || l.startsWith('error'))).toEqual([]);
    expect(metadataOf(path.join(where, file))).toEqual(metadataOf(file));
  });

  it('sets nothing on an entry it did not extract (a symlink), as bacula-fd', async () => {
    const records: SdRecord[] = [];
    const { sent } = await backup([link], 'AX');
    records.push(...sent.flatMap((s) => s.frames.map((data) => ({ fileIndex: s.fileIndex, stream: s.stream, data }))));
    // an xattr record after a symlink's attributes: bacula-fd leaves it (it made the link, extracted nothing)
    records.push({ fileIndex: 1, stream: 1998, data: encodeXattrStream([{ name: Buffer.from('user.x'), value: Buffer.from('1') }]) });
    const where = path.join(root, 'restored-link');
    const logs: string[] = [];
    const feed = async function* () {
      yield* records;
    };
    await receiveRestore({ records: feed(), where, log: (level, m) => logs.push(`${level}: ${m}`) });
    expect(lstatSync(path.join(where, link)).isSymbolicLink()).toBe(true);
    expect(logs.filter((l) => l.startsWith('warning') || l.startsWith('error'))).toEqual([]);
  });
});

describe.skipIf(process.platform !== 'linux')('a filesystem without xattrs or ACLs (procfs)', () => {
  it('is a warning the first time and a count after, never an error; the restore goes on', async () => {
    const warnings: string[] = [];
    const xacl = new XaclRestore((m) => warnings.push(m));
    const target = '/proc/self/comm'; // lstat works, setxattr says EOPNOTSUPP
    xacl.begin(target, FT.REG);
    await xacl.receive(1008, REAL_FD.fileAccess, false);
    await xacl.receive(1998, REAL_FD.fileXattrs, false);
    await xacl.applyDelayed();
    expect(warnings).toEqual([
      `acl_set_file error on file "${target}": filesystem doesn't support ACLs; restore to a filesystem with ACLs (ext4, xfs, tmpfs ...) to keep them`,
      `setxattr error on file "${target}": filesystem doesn't support XATTR; restore to a filesystem with extended attributes to keep them`,
    ]);
    xacl.begin(target, FT.DIREND); // a directory: applied at once, and this device is known by now
    await xacl.receive(1008, REAL_FD.dirAccess, true);
    await xacl.receive(1998, REAL_FD.dirXattrs, true);
    expect(warnings).toHaveLength(2);
    xacl.finish();
    expect(warnings.slice(2)).toEqual(['Encountered 2 acl errors while doing restore', 'Encountered 2 xattr errors while doing restore']);
  });

  it('warns about another system\'s ACL streams and skips a file that is gone', async () => {
    const warnings: string[] = [];
    const xacl = new XaclRestore((m) => warnings.push(m));
    xacl.begin('/nonexistent/agentfd/file', FT.DIREND);
    await xacl.receive(1008, REAL_FD.fileAccess, false);
    expect(warnings).toEqual([]);
    const dir = tempDir('xacl-foreign');
    try {
      xacl.begin(dir, FT.DIREND);
      await xacl.receive(1003, Buffer.from('user::rwx\0'), false); // FreeBSD's access ACL
      expect(warnings).toEqual([`Can't restore ACLs of ${dir} - incompatible acl stream encountered - 1003 (saved on another system; agentfd restores Linux ACLs only)`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
