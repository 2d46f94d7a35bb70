/**
 * ACLs and extended attributes with a real Bacula 9.6 Director and Storage Daemon, and the real
 * bacula-fd to compare with: a FileSet with aclsupport = yes and xattrsupport = yes over files with
 * user.* xattrs (one empty, one binary), access ACLs (one whose mask restricts named entries) and a
 * directory with an access and a default ACL. agentfd serve backs them up (Backup OK) and restores
 * them (Restore OK) with the same ACLs and xattrs, as getfacl and getfattr see them; the real
 * bacula-fd writes the very same ACL and xattr records to the volume (compared byte for byte),
 * restores agentfd's backup identically, and agentfd restores the real FD's.
 * Needs setfacl/getfacl and setfattr/getfattr (Debian's acl and attr: installed on first use) and a
 * temporary directory on a filesystem with ACLs and user xattrs (ext4, xfs, tmpfs).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaculaLab, restoredPath } from '../helpers/bacula-lab.js';
import { commandNeed, ensureDebianPackage } from '../helpers/debian.js';

const bacula = new BaculaLab('bacula-xattr-acl', {
  ports: { dir: 9161, fd: 9162, sd: 9163 },
  extraDirectorConf: (lab) =>
    [
      'FileSet {', '  Name = "XaclSet"', '  Include {', '    Options { aclsupport = yes; xattrsupport = yes; signature = MD5 }', `    File = "${lab}/xdata"`, '  }', '}',
      'Job { Name = "XaclBackup"; JobDefs = "LabJobDefs"; FileSet = "XaclSet" }',
    ].join('\n'),
});
const data = path.join(bacula.dir, 'xdata');

/** A tool of Debian's acl or attr package (installed on first use where the tests may); fails with what to install. */
function tool(command: string, ...args: string[]): string {
  const missing = ensureDebianPackage(commandNeed(command, command.endsWith('facl') ? 'acl' : 'attr'));
  if (missing) throw new Error(`${command} is needed by this test: ${missing}`);
  const out = spawnSync(command, args, { encoding: 'utf8' });
  if (out.error) throw new Error(`${command} ${args.join(' ')} could not run: ${out.error.message}`);
  if (out.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${out.status}): ${out.stderr}`);
  return out.stdout;
}

/**
 * Every entry under `root`, by relative name: its mode, its ACLs as getfacl prints them (numeric
 * ids, default ACL included) and all its xattrs as getfattr dumps them (hex, system.posix_acl_*
 * included: the kernel's own values).
 */
function xaclTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    const acl = tool('getfacl', '--omit-header', '--numeric', '--absolute-names', '--', full);
    const xattrs = tool('getfattr', '--absolute-names', '--no-dereference', '--dump', '--match=-', '--encoding=hex', '--', full).split('\n').slice(1).filter(Boolean).sort();
    out[rel] = [`mode ${(st.mode & 0o7777).toString(8)}`, acl.trim(), ...xattrs].join('\n');
    if (st.isDirectory()) for (const name of readdirSync(full).sort()) walk(path.join(rel, name));
  };
  walk('.');
  return out;
}

// ---- the volume, read back: what each FD sent -------------------------------------------------

interface VolumeRecord {
  fileIndex: number;
  stream: number;
  data: Buffer;
}

/**
 * The records of one job (its VolSessionId and VolSessionTime) in the lab's file volume: BB02 blocks
 * (a 24-byte header naming the session), each record a 12-byte header (FileIndex, Stream, length)
 * and its data; a record cut at a block's end goes on in the next block with its stream negated.
 */
function volumeRecords(sessionId: number, sessionTime: number): VolumeRecord[] {
  const records: VolumeRecord[] = [];
  const storage = path.join(bacula.dir, 'storage');
  for (const volume of readdirSync(storage).filter((n) => n.startsWith('LabVol-')).sort()) {
    const bytes = readFileSync(path.join(storage, volume));
    for (let block = 0; block + 24 <= bytes.length; ) {
      const size = bytes.readUInt32BE(block + 4);
      if (bytes.toString('latin1', block + 12, block + 16) !== 'BB02' || size < 24) break;
      const mine = bytes.readUInt32BE(block + 16) === sessionId && bytes.readUInt32BE(block + 20) === sessionTime;
      for (let at = block + 24; mine && at + 12 <= block + size; ) {
        const fileIndex = bytes.readInt32BE(at);
        const stream = bytes.readInt32BE(at + 4);
        const piece = bytes.subarray(at + 12, Math.min(at + 12 + bytes.readUInt32BE(at + 8), block + size));
        const previous = records.at(-1);
        if (stream < 0 && previous && previous.fileIndex === fileIndex && previous.stream === -stream) previous.data = Buffer.concat([previous.data, piece]);
        else records.push({ fileIndex, stream, data: Buffer.from(piece) });
        at += 12 + piece.length;
      }
      block += size;
    }
  }
  return records.filter((r) => r.fileIndex > 0); // not the session labels
}

/** Per file name: its streams after the attributes record (stream, payload in hex), as the volume holds them. */
function streamsByFile(report: string): Record<string, string[]> {
  const sessionId = Number(/Volume Session Id:\s+(\d+)/.exec(report)![1]);
  const sessionTime = Number(/Volume Session Time:\s+(\d+)/.exec(report)![1]);
  const names = new Map<number, string>();
  const out: Record<string, string[]> = {};
  for (const r of volumeRecords(sessionId, sessionTime)) {
    if (r.stream === 1) {
      const fname = r.data.toString('utf8').split('\0')[0]!.split(' ').slice(2).join(' ');
      names.set(r.fileIndex, fname);
      out[fname] = [];
    } else out[names.get(r.fileIndex)!]!.push(`${r.stream} ${r.data.toString('hex')}`);
  }
  return out;
}

/** A job that ended OK without "with warnings", "with errors" or a file count mismatch. */
function expectClean(report: string): void {
  expect(report).toMatch(/Termination:\s+(Backup|Restore) OK\s*$/m);
  expect(report).not.toMatch(/Termination:.*(warning|error|mismatch)/i);
}

const fdBytes = (report: string) => Number(/FD Bytes Written:\s+([\d,]+)/.exec(report)![1]!.replace(/,/g, ''));

beforeAll(async () => {
  mkdirSync(path.join(data, 'shared'), { recursive: true });
  mkdirSync(path.join(data, 'defaults-only'));
  const doc = path.join(data, 'doc.txt');
  writeFileSync(doc, 'a document with ACLs and xattrs\n');
  chmodSync(doc, 0o640);
  tool('setfacl', '-m', 'u:1234:rwx,g:daemon:r-x,u:root:r', doc);
  tool('setfattr', '-n', 'user.comment', '-v', 'a comment', doc);
  tool('setfattr', '-n', 'user.empty', doc);
  tool('setfattr', '-n', 'user.binary', '-v', '0x00ff10', doc);
  const masked = path.join(data, 'masked.txt');
  writeFileSync(masked, 'the mask takes rights away\n');
  tool('setfacl', '-m', 'u:1234:rwx,g:4321:rw-,m::r--', masked); // acl_to_text adds "#effective:" comments
  const shared = path.join(data, 'shared');
  tool('setfacl', '-m', 'u:daemon:rwx', shared);
  tool('setfacl', '-d', '-m', 'u:1234:rwx,g::r-x,o::---', shared);
  tool('setfattr', '-n', 'user.dirattr', '-v', 'yes', shared);
  const inner = path.join(shared, 'inner.txt');
  writeFileSync(inner, 'inherits its ACL from the default ACL of shared/\n');
  tool('setfattr', '-n', 'user.note', '-v', 'inner', inner);
  tool('setfacl', '-d', '-m', 'g:daemon:rwx', path.join(data, 'defaults-only'));
  writeFileSync(path.join(data, 'plain.txt'), 'nothing extra\n');
  // What the FDs must keep is really there.
  const before = xaclTree(data);
  expect(before['doc.txt']).toContain('user:1234:rwx');
  expect(before['doc.txt']).toContain('user.binary=0x00ff10');
  expect(before['masked.txt']).toContain('#effective:r--');
  expect(before.shared).toContain('default:user:1234:rwx');
  expect(before['defaults-only']).toContain('default:group:1:rwx');
  bacula.start();
  await bacula.startServe();
}, 300_000);

afterAll(() => bacula.destroy());

describe('ACLs and xattrs with a real Bacula 9.6 Director, Storage Daemon and bacula-fd', () => {
  let ours: { jobId: number; report: string };
  let theirs: { jobId: number; report: string };

  it('backs up files and a directory with xattrs, access and default ACLs (Backup OK) and restores them identical (Restore OK)', () => {
    ours = bacula.runJob('XaclBackup');
    expectClean(ours.report);
    const streams = streamsByFile(ours.report);
    const names = (rel: string) => streams[path.join(data, rel)]!.map((s) => Number(s.split(' ')[0]));
    expect(names('doc.txt')).toEqual([2, 1008, 1998, 3]);
    expect(names('shared/')).toEqual([1008, 1007, 1998]);
    expect(names('defaults-only/')).toEqual([1007]);
    expect(names('shared/inner.txt')).toEqual([2, 1008, 1998, 3]); // its access ACL came from shared/'s default ACL
    expect(names('plain.txt')).toEqual([2, 3]);
    const where = path.join(bacula.dir, 'restore-ours');
    expectClean(bacula.restore(ours.jobId, where));
    expect(xaclTree(restoredPath(where, data))).toEqual(xaclTree(data));
  });

  it('matches the real bacula-fd: the same ACL and xattr records on the volume, the same FD bytes; each restores the other\'s backup identical', async () => {
    await bacula.stopServe();
    bacula.sh(['start-real-fd']);
    try {
      theirs = bacula.runJob('XaclBackup');
      expectClean(theirs.report);
      // Every record but the attributes (whose LStat holds the atime): data, ACLs, xattrs, digests.
      expect(streamsByFile(ours.report)).toEqual(streamsByFile(theirs.report));
      expect(fdBytes(ours.report)).toBe(fdBytes(theirs.report));
      const where = path.join(bacula.dir, 'restore-by-real-fd');
      expectClean(bacula.restore(ours.jobId, where));
      expect(xaclTree(restoredPath(where, data))).toEqual(xaclTree(data));
    } finally {
      bacula.sh(['stop-real-fd'], true);
    }
    await bacula.startServe();
    const where = path.join(bacula.dir, 'restore-of-real-fd');
    expectClean(bacula.restore(theirs.jobId, where));
    expect(xaclTree(restoredPath(where, data))).toEqual(xaclTree(data));
  });
});
