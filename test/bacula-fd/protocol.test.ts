/**
 * The Bacula wire pieces agentfd's File Daemon is built on: Bacula base64, CRAM-MD5, LStat and
 * attribute records, and the bsock framing. The vectors come from decoded captures of a real 9.6.7
 * Director, SD and FD talking on loopback (shared research, bacula-transcripts/*.txt), so passing
 * here means producing the very bytes those daemons produced and accept.
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { baculaBase64FromBytes, baculaBase64FromInt, baculaBase64ToInt } from '../../src/bacula-fd/wire/base64.js';
import {
  BNET,
  BNET_COMPRESSED,
  BNET_FLAGS,
  BNET_HDR_EXTEND,
  Bsock,
  BsockError,
  BsockSignalError,
  MAX_RECEIVE,
  MAX_SEND,
  SlabReceiver,
  bashSpaces,
  signalName,
  unbashSpaces,
} from '../../src/bacula-fd/wire/bsock.js';
import { cramAccepts, cramResponse, directorKey, makeChallenge } from '../../src/bacula-fd/wire/cram-md5.js';
import { FT, STREAM, STREAM_MASK, decodeAttributes, decodeLStat, encodeAttributes, encodeLStat, statFromNode } from '../../src/bacula-fd/attributes/lstat.js';

const md5hex = (text: string): string => createHash('md5').update(text).digest('hex');

describe('Bacula base64 integers (LStat fields)', () => {
  it('writes the values seen in real LStat strings', () => {
    expect(baculaBase64FromInt(0)).toBe('A');
    expect(baculaBase64FromInt(13)).toBe('N');
    expect(baculaBase64FromInt(63)).toBe('/');
    expect(baculaBase64FromInt(64)).toBe('BA');
    expect(baculaBase64FromInt(4096n)).toBe('BAA');
    expect(baculaBase64FromInt(0o100644)).toBe('IGk');
    expect(baculaBase64FromInt(0o120777)).toBe('KH/');
    expect(baculaBase64FromInt(0o40755)).toBe('EHt');
    expect(baculaBase64FromInt(-1)).toBe('-B');
    expect(baculaBase64FromInt(-(2n ** 63n))).toBe('-IAAAAAAAAAA');
  });

  it('round-trips any 64-bit integer, and larger ones', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), (value) => {
        const text = baculaBase64FromInt(value);
        expect(text).toMatch(/^-?[A-Za-z0-9+/]+$/);
        expect(baculaBase64ToInt(text)).toBe(value);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.maxSafeInteger(), (value) => {
        expect(baculaBase64ToInt(baculaBase64FromInt(value))).toBe(BigInt(value));
      }),
    );
  });

  it('uses the fewest digits (no leading A) so the text is canonical', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 64n }), (value) => {
        expect(baculaBase64FromInt(value).startsWith('A')).toBe(false);
      }),
    );
  });

  it('refuses text and numbers that are not Bacula base64 integers', () => {
    for (const bad of ['', '-', 'A A', 'AB=', 'é', '--B']) {
      expect(() => baculaBase64ToInt(bad), bad).toThrow(/Bacula base64/);
    }
    expect(() => baculaBase64FromInt(1.5)).toThrow(RangeError);
    expect(() => baculaBase64FromInt(Number.MAX_SAFE_INTEGER + 2)).toThrow(RangeError);
  });
});

describe('Bacula base64 bytes (CRAM-MD5)', () => {
  it('sign-extends bytes and leaves the last sextet unshifted unless compatible', () => {
    expect(baculaBase64FromBytes(Uint8Array.of(0xff))).toBe('/D');
    expect(baculaBase64FromBytes(Uint8Array.of(0xff), true)).toBe('/w');
    // 0x80 sign-extended sets the two bits still waiting from the 0x00: '4' where standard base64 has 'I'.
    expect(baculaBase64FromBytes(Uint8Array.of(0x00, 0x80))).toBe('A4A');
    expect(baculaBase64FromBytes(Uint8Array.of(0x00, 0x80), true)).toBe('AIA');
    // A whole last sextet is emitted by the tail code, identical in both modes.
    expect(baculaBase64FromBytes(Uint8Array.of(0x80, 0x00, 0x01))).toBe('gAAB');
    expect(baculaBase64FromBytes(new Uint8Array(0))).toBe('');
  });

  it('in compatible mode is standard base64 without padding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(baculaBase64FromBytes(bytes, true)).toBe(Buffer.from(bytes).toString('base64').replace(/=+$/, ''));
      }),
    );
  });

  it('agrees with compatible mode for whole groups of bytes below 0x80, where the quirks cannot show', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0x7f }), { maxLength: 20 }), (values) => {
        const bytes = Uint8Array.from(values.slice(0, values.length - (values.length % 3)));
        expect(baculaBase64FromBytes(bytes)).toBe(baculaBase64FromBytes(bytes, true));
      }),
    );
  });
});

/**
 * Every challenge/response pair in the captures. Secrets: DIR<->FD md5hex("test-fd-pass"),
 * console<->DIR md5hex("test-console-pass"), DIR<->SD md5hex("test-sd-pass"), and FD<->SD the
 * job's session key from Authorization= (not hashed). All 40 reproduce.
 */
const FD = md5hex('test-fd-pass');
const CONSOLE = md5hex('test-console-pass');
const SD = md5hex('test-sd-pass');
const CRAM_PAIRS: [link: string, challenge: string, secret: string, response: string][] = [
  // realfd-backup-restore.txt
  ['console->DIR', '<1320925344.1795693018@test-dir>', CONSOLE, 'z4UTfzxyliY0KiVET7cosD'],
  ['DIR->console', '<1315007164.1795693018@bconsole>', CONSOLE, 'lj/wh79C7CgZ655MK3+cdB'],
  ['DIR->FD', '<1581415975.1795693018@test-fd>', FD, 'cE4gG3IrW8+X2h/X5mdpeC'],
  ['FD->DIR', '<264854266.1795693018@test-dir>', FD, '58+1Y+1EY8A+x7/s4n/5BB'],
  ['DIR->SD', '<1713101657.1795693020@test-sd>', SD, 'MGEYN5RUk4wuh8/Kr8IKLD'],
  ['SD->DIR', '<469100198.1795693020@test-dir>', SD, 'j98dv4oWR8/78U98n///EA'],
  ['DIR->FD', '<812439477.1795693020@test-fd>', FD, 'n/J1JW+R55/pS6d9Wn/ZND'],
  ['FD->DIR', '<67790345.1795693020@test-dir>', FD, 'E9+r7D+/A9EEww+1Nxce8B'],
  ['FD->SD', '<1770186182.1795693020@test-sd>', 'HKGM-AKMD-NAPI-MMFP-CCNM-GGKK-FAKG-IICH', 'J5++f7AEi8/Hlz+rl8wSMA'],
  ['SD->FD', '<2056052491.1795693020@test-fd>', 'HKGM-AKMD-NAPI-MMFP-CCNM-GGKK-FAKG-IICH', '5+EMYkVgmTF2n4/iG6+QoC'],
  ['console->DIR', '<1154749316.1795693038@test-dir>', CONSOLE, 'v+RbY/9koB/VM9E+e78ATA'],
  ['DIR->console', '<1554236808.1795693038@bconsole>', CONSOLE, 'ZE+lt4/Ro4gEQm/OvF0wvC'],
  ['DIR->SD', '<2114399995.1795693040@test-sd>', SD, 't7+hN7tcjz/Mh1/Eg49f3A'],
  ['SD->DIR', '<1307316493.1795693040@test-dir>', SD, 'cFFZm+8Ri9/V08/Gx8/KUC'],
  ['DIR->FD', '<1574404187.1795693040@test-fd>', FD, '/6wov6/bx64UxDhc54xoFD'],
  ['FD->DIR', '<585185955.1795693040@test-dir>', FD, 's//RqU/wRj+md+5YrG8mbD'],
  ['FD->SD', '<1745178912.1795693040@test-sd>', 'IGMK-CKOF-DLLD-OFPI-CGAJ-JPAM-JMJJ-GJGH', 't88k49/cYW/cp3/1w4QckC'],
  ['SD->FD', '<2023742947.1795693040@test-fd>', 'IGMK-CKOF-DLLD-OFPI-CGAJ-JPAM-JMJJ-GJGH', 'C55EX6lJSlsce5/Ot/+fIC'],
  ['DIR->SD', '<1753776140.1795693040@test-sd>', SD, '+3/68l1KUyRtP0/U55EVBD'],
  ['SD->DIR', '<508924100.1795693040@test-dir>', SD, 'FU+T840aASI1anA1Z51GiA'],
  // pocfd-backup.txt (the Node proof of concept answering the real daemons)
  ['DIR->FD', '<1884412450.1795693684@test-fd>', FD, '8C+81GNJK7EhE8+a+//DPD'],
  ['FD->DIR', '<2090461105.1795693684@test-dir>', FD, 'D7ULn6lvA5/DP4/mL/+yAD'],
  ['DIR->SD', '<516197257.1795693686@test-sd>', SD, 'tj4vW1+CDlAem6hyWG/T5A'],
  ['SD->DIR', '<2075133840.1795693686@test-dir>', SD, '7X+c79Bab8Aral/qQG++zD'],
  ['DIR->FD', '<443839868.1795693686@test-fd>', FD, 'o+MaGV+vv/dldl+iy5A6EA'],
  ['FD->DIR', '<573438055.1795693686@test-dir>', FD, 'B7/mr2RCn8/BF9/ZG6toZD'],
  ['FD->SD', '<1892410709.1795693686@test-sd>', 'EBCC-JDDL-GMPA-ODEF-ODOF-FDMO-EDNA-HGGM', 'Z15si8oHl6dEwn+OdB/RjB'],
  ['SD->FD', '<225028944.1795693686@test-fd>', 'EBCC-JDDL-GMPA-ODEF-ODOF-FDMO-EDNA-HGGM', 't7+pIA+dW3+Gt5/s59/8kA'],
  ['DIR->SD', '<1826548528.1795693693@test-sd>', SD, '8+/SA0+VvAtR56A3F6x8eC'],
  ['SD->DIR', '<762865969.1795693693@test-dir>', SD, 'iUg3yithF6p2ii99jBNtRA'],
  ['DIR->FD', '<783645784.1795693693@test-fd>', FD, 's4+C8B+Bd/BJe7+21/+HoB'],
  ['FD->DIR', '<1829605351.1795693693@test-dir>', FD, 'lw9lW5sXo+/n66J+Y1/jIC'],
  ['FD->SD', '<1529444274.1795693693@test-sd>', 'AEHP-JFOP-DMNG-FHOA-EOOE-FJHJ-NJBO-ODEE', 'Gh/eb7c1T45PQ//Y4jdB2D'],
  ['SD->FD', '<18079127.1795693693@test-fd>', 'AEHP-JFOP-DMNG-FHOA-EOOE-FJHJ-NJBO-ODEE', 'D/+tfEdhZG/FM6/lg/+jXA'],
  // pocfd-restore.txt
  ['DIR->SD', '<136597772.1795693712@test-sd>', SD, '5+/mlW+QY5Jjg/+dGT5j0D'],
  ['SD->DIR', '<358188662.1795693712@test-dir>', SD, 'm/VQO//gg6EfBS+SB4/XHB'],
  ['DIR->FD', '<1584267496.1795693712@test-fd>', FD, 'R645HE/H5H/Ub4hcT0+FhC'],
  ['FD->DIR', '<1314030642.1795693712@test-dir>', FD, 'TG/ZL5/jCDEAL9/wjGh/NB'],
  ['FD->SD', '<950342499.1795693712@test-sd>', 'KHJF-MJOB-FFCA-IFJJ-DPMA-MHAK-PJDM-MOJD', '3l+Sd5/3B++Zk/+SEC/dRB'],
  ['SD->FD', '<23346297.1795693712@test-fd>', 'KHJF-MJOB-FFCA-IFJJ-DPMA-MHAK-PJDM-MOJD', 'uF+Yehgex+/F+Tc7Wy+1TD'],
];

describe('CRAM-MD5', () => {
  it('derives the DIR<->FD key as the lowercase hex MD5 of the password', () => {
    expect(directorKey('test-fd-pass')).toBe(FD);
    expect(directorKey('test-fd-pass')).toMatch(/^[0-9a-f]{32}$/);
  });

  it('reproduces the research example', () => {
    expect(cramResponse('<264854266.1795693018@test-dir>', directorKey('test-fd-pass'))).toBe('58+1Y+1EY8A+x7/s4n/5BB');
  });

  it.each(CRAM_PAIRS)('%s: %s -> the captured response', (_link, challenge, secret, response) => {
    expect(cramResponse(challenge, secret)).toBe(response);
    expect(cramAccepts(challenge, secret, response)).toBe(true);
    // The responder's frame ends in a NUL; a caller passing it through must not be refused.
    expect(cramAccepts(challenge, secret, `${response}\0`)).toBe(true);
  });

  it('accepts the compatible encoding too, and refuses a wrong secret, challenge or response', () => {
    const [, challenge, secret, response] = CRAM_PAIRS[3]!;
    // A plain MD5 of the challenge: well-formed, but not the HMAC.
    const wrong = baculaBase64FromBytes(createHash('md5').update(challenge).digest());
    const compatible = baculaBase64FromBytes(createHmac('md5', secret).update(challenge).digest(), true);
    expect(compatible).not.toBe(response);
    expect(cramAccepts(challenge, secret, compatible)).toBe(true);
    expect(cramAccepts(challenge, secret, wrong)).toBe(false);
    expect(cramAccepts(challenge, directorKey('other-pass'), response)).toBe(false);
    expect(cramAccepts('<1.2@test-dir>', secret, response)).toBe(false);
    expect(cramAccepts(challenge, secret, '')).toBe(false);
    expect(cramAccepts(challenge, secret, response.slice(0, 21))).toBe(false);
  });

  it('makes fresh challenges in Bacula form that its own check accepts', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const challenge = makeChallenge('test-fd');
      const match = /^<(\d+)\.(\d+)@test-fd>$/.exec(challenge);
      expect(match, challenge).not.toBeNull();
      expect(Number(match![1])).toBeLessThanOrEqual(0xffffffff);
      expect(Math.abs(Number(match![2]) - Date.now() / 1000)).toBeLessThan(5);
      seen.add(challenge);
      expect(cramAccepts(challenge, FD, cramResponse(challenge, FD))).toBe(true);
    }
    expect(seen.size).toBeGreaterThan(45);
    expect(() => makeChallenge('has space')).toThrow(/no spaces/);
    expect(() => makeChallenge('')).toThrow(RangeError);
    expect(() => makeChallenge('x'.repeat(201))).toThrow(/at most 200/);
  });
});

/** The LStat of hello.txt as the real FD sent it (research §6). */
const HELLO_LSTAT = 'P4A IObE IGk B A A A N BAA I BrCBnR BrCBnR BrCBnR A A C';

describe('LStat', () => {
  it('decodes the research example: a 13-byte 0644 file with plain data', () => {
    const stat = decodeLStat(HELLO_LSTAT);
    expect(stat.mode).toBe(0o100644);
    expect(stat.size).toBe(13n);
    expect(stat.dataStream).toBe(STREAM.FILE_DATA);
    expect(stat).toMatchObject({ dev: 0xfe00n, nlink: 1n, uid: 0, gid: 0, rdev: 0n, blksize: 4096n, blocks: 8n, linkFI: 0, flags: 0 });
    expect(stat.mtime).toBe(1795693009n);
    expect(stat.atime).toBe(stat.mtime);
    expect(encodeLStat(stat)).toBe(HELLO_LSTAT);
  });

  it('round-trips every LStat in the captures exactly', () => {
    const captured = [
      HELLO_LSTAT,
      'P4A IObE IGk B A A A N BAA I BrCBnc BrCBnR BrCBnR A A C',
      'P4A IObG KH/ B A A A J BAA A BrCBnR BrCBnR BrCBnR A A C',
      'P4A IObF IGk B A A A CK9 BAA Y BrCBnR BrCBnR BrCBnR A A C',
      'P4A IObH IGk B A A A RFw BAA CQ BrCBnR BrCBnR BrCBnR A A C',
      'P4A IObD EHt C A A A BAA BAA I BrCBnR BrCBnR BrCBnR A A C',
      'P4A IObC EHt D A A A BAA BAA I BrCBnR BrCBnR BrCBnR A A C',
    ];
    for (const text of captured) expect(encodeLStat(decodeLStat(text))).toBe(text);
    expect(decodeLStat(captured[2]!)).toMatchObject({ mode: 0o120777, size: 9n });
    expect(decodeLStat(captured[4]!)).toMatchObject({ mode: 0o100644, size: 70000n });
    expect(decodeLStat(captured[5]!)).toMatchObject({ mode: 0o40755, nlink: 2n });
  });

  it('round-trips arbitrary stats', () => {
    const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(
      fc.property(
        fc.record({
          dev: int64, ino: int64, mode: u32, nlink: int64, uid: u32, gid: u32, rdev: int64, size: int64,
          blksize: int64, blocks: int64, atime: int64, mtime: int64, ctime: int64,
          linkFI: fc.integer({ min: 0, max: 2 ** 31 - 1 }), flags: u32, dataStream: fc.integer({ min: 0, max: 0x7ff }),
        }),
        (stat) => {
          const text = encodeLStat(stat);
          expect(text.split(' ')).toHaveLength(16);
          expect(decodeLStat(text)).toEqual(stat);
        },
      ),
    );
  });

  it('writes unsigned values at or above 2^63 as C does after its int64_t cast', () => {
    const stat = { ...decodeLStat(HELLO_LSTAT), dev: 2n ** 64n - 1n };
    expect(encodeLStat(stat).split(' ')[0]).toBe('-B');
  });

  it('accepts old 13-field records and extra trailing fields, refuses fewer and garbage', () => {
    const old = HELLO_LSTAT.split(' ').slice(0, 13).join(' ');
    expect(decodeLStat(old)).toMatchObject({ size: 13n, linkFI: 0, flags: 0, dataStream: 0 });
    expect(decodeLStat(`${HELLO_LSTAT} B C D`)).toEqual(decodeLStat(HELLO_LSTAT));
    expect(() => decodeLStat(HELLO_LSTAT.split(' ').slice(0, 12).join(' '))).toThrow(/12 fields, expected at least 13/);
    expect(() => decodeLStat('')).toThrow(/0 fields/);
    expect(() => decodeLStat(HELLO_LSTAT.replace('IGk', 'I=k'))).toThrow(/field mode/);
  });

  it('builds the same fields from node:fs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentfd-lstat-'));
    try {
      const file = join(dir, 'hello.txt');
      writeFileSync(file, 'hello bacula\n', { mode: 0o644 });
      const s = statSync(file, { bigint: true });
      const stat = statFromNode(s, STREAM.FILE_DATA);
      expect(stat.size).toBe(13n);
      expect(stat.mode & 0o170000).toBe(0o100000);
      expect(stat.ino).toBe(s.ino);
      expect(stat.mtime).toBe(s.mtimeNs / 1_000_000_000n);
      expect(stat).toMatchObject({ linkFI: 0, flags: 0, dataStream: 2 });
      const fields = encodeLStat(statFromNode(s, STREAM.GZIP_DATA, 7)).split(' ');
      expect(fields[13]).toBe('H');
      expect(fields[15]).toBe('E');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rounds times before 1970 down to whole seconds, as tv_sec is', () => {
    const fake = {
      dev: 1n, ino: 2n, mode: 0o100600n, nlink: 1n, uid: 1000n, gid: 1000n, rdev: 0n, size: 0n, blksize: 4096n, blocks: 0n,
      atimeNs: -1_500_000_000n, mtimeNs: 1_999_999_999n, ctimeNs: -2_000_000_000n,
    } as unknown as BigIntStats;
    expect(statFromNode(fake, 0)).toMatchObject({ atime: -2n, mtime: 1n, ctime: -2n, uid: 1000, mode: 0o100600 });
  });
});

/**
 * Attribute records as captured (realfd-backup-restore.txt, lz4-decoded). The dump replaced the lab
 * directory with the text "$LAB"; the name is opaque to the format, so the records are otherwise
 * the exact bytes.
 */
const REAL_RECORDS: { text: string; expect: Partial<ReturnType<typeof decodeAttributes>> }[] = [
  {
    text: `1 3 $LAB/data/small/hello.txt\0${HELLO_LSTAT}\0\0\x000\0`,
    expect: { fileIndex: 1, type: FT.REG, fname: '$LAB/data/small/hello.txt', lstat: HELLO_LSTAT, link: '', attribsEx: '', deltaSeq: 0 },
  },
  { text: '2 3 $LAB/data/small/sub/rand70k.bin\0P4A IObH IGk B A A A RFw BAA CQ BrCBnR BrCBnR BrCBnR A A C\0\0\x000\0', expect: { fileIndex: 2, type: FT.REG } },
  { text: '3 3 $LAB/data/small/sub/numbers.txt\0P4A IObF IGk B A A A CK9 BAA Y BrCBnR BrCBnR BrCBnR A A C\0\0\x000\0', expect: { fileIndex: 3 } },
  {
    text: '4 5 $LAB/data/small/sub/\0P4A IObD EHt C A A A BAA BAA I BrCBnR BrCBnR BrCBnR A A C\0\0\x000\0',
    expect: { fileIndex: 4, type: FT.DIREND, fname: '$LAB/data/small/sub/', link: '' },
  },
  {
    text: '5 4 $LAB/data/small/link-to-hello\0P4A IObG KH/ B A A A J BAA A BrCBnR BrCBnR BrCBnR A A C\0hello.txt\0\x000\0',
    expect: { fileIndex: 5, type: FT.LNK, fname: '$LAB/data/small/link-to-hello', link: 'hello.txt', attribsEx: '', deltaSeq: 0 },
  },
  { text: '6 5 $LAB/data/small/\0P4A IObC EHt D A A A BAA BAA I BrCBnR BrCBnR BrCBnR A A C\0\0\x000\0', expect: { fileIndex: 6, type: FT.DIREND } },
  // pocfd-backup.txt: the PoC's record for the same file, with the atime its read changed
  { text: '1 3 $LAB/data/small/hello.txt\0P4A IObE IGk B A A A N BAA I BrCBnc BrCBnR BrCBnR A A C\0\0\x000\0', expect: { fileIndex: 1 } },
];

describe('attribute records', () => {
  it.each(REAL_RECORDS.map((r) => [r.text.split('\0')[0]!, r] as const))('%s decodes and re-encodes byte for byte', (_name, record) => {
    const bytes = Buffer.from(record.text, 'utf8');
    const decoded = decodeAttributes(bytes);
    expect(decoded).toMatchObject(record.expect);
    expect(encodeAttributes(decoded).equals(bytes)).toBe(true);
  });

  it('the symlink and directory records carry what a restore needs', () => {
    const link = decodeAttributes(Buffer.from(REAL_RECORDS[4]!.text));
    expect(decodeLStat(link.lstat).mode & 0o170000).toBe(0o120000);
    expect(Number(decodeLStat(link.lstat).size)).toBe(link.link.length);
    const dir = decodeAttributes(Buffer.from(REAL_RECORDS[3]!.text));
    expect(dir.fname.endsWith('/')).toBe(true);
    expect(decodeLStat(dir.lstat).mode).toBe(0o40755);
  });

  it('tolerates a missing trailing NUL, delta_seq or attribsEx', () => {
    const full = REAL_RECORDS[4]!.text;
    const expected = decodeAttributes(Buffer.from(full));
    expect(decodeAttributes(Buffer.from(full.slice(0, -1)))).toEqual(expected);
    expect(decodeAttributes(Buffer.from(full.slice(0, -2)))).toEqual(expected); // "...\0\0" with no delta_seq
    expect(decodeAttributes(Buffer.from(`5 4 name\0${HELLO_LSTAT}\0target`))).toMatchObject({ link: 'target', attribsEx: '', deltaSeq: 0 });
    expect(decodeAttributes(Buffer.from(`5 3 name\0${HELLO_LSTAT}\0\0\x007\0`))).toMatchObject({ deltaSeq: 7 });
  });

  it('keeps names with spaces and UTF-8 byte for byte', () => {
    const record = { fileIndex: 42, type: FT.REG, fname: '/srv/my files/résumé 履歴.txt', lstat: HELLO_LSTAT, link: '', attribsEx: '', deltaSeq: 3 };
    const bytes = encodeAttributes(record);
    expect(bytes.includes(Buffer.from('résumé 履歴', 'utf8'))).toBe(true);
    expect(decodeAttributes(bytes)).toEqual(record);
    expect(bytes.toString('latin1').endsWith('\x003\0')).toBe(true);
  });

  it('round-trips arbitrary records', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => s.replaceAll('\0', ''));
    fc.assert(
      fc.property(
        fc.record({
          fileIndex: fc.integer({ min: 0, max: 2 ** 31 - 1 }), type: fc.integer({ min: 1, max: 28 }), fname: text,
          lstat: fc.constant(HELLO_LSTAT), link: text, attribsEx: text, deltaSeq: fc.integer({ min: 0, max: 0xffffffff }),
        }),
        (record) => {
          expect(decodeAttributes(encodeAttributes(record))).toEqual(record);
        },
      ),
    );
  });

  it('refuses malformed records and fields that would break the format', () => {
    expect(() => decodeAttributes(Buffer.from('1 3 /etc/passwd'))).toThrow(/no LStat/);
    expect(() => decodeAttributes(Buffer.from(`x 3 /a\0${HELLO_LSTAT}\0\0\x000\0`))).toThrow(/does not start with/);
    expect(() => decodeAttributes(Buffer.from(`13/a\0${HELLO_LSTAT}\0\0\x000\0`))).toThrow(/does not start with/);
    expect(() => decodeAttributes(Buffer.from(`1 3 /a\0${HELLO_LSTAT}\0\0\0zz\0`))).toThrow(/delta_seq/);
    expect(() => decodeAttributes(Buffer.alloc(0))).toThrow(/no LStat/);
    const ok = { fileIndex: 1, type: FT.REG, fname: '/a', lstat: HELLO_LSTAT, link: '', attribsEx: '', deltaSeq: 0 };
    expect(() => encodeAttributes({ ...ok, fname: '/a\0b' })).toThrow(/fname contains a NUL/);
    expect(() => encodeAttributes({ ...ok, deltaSeq: -1 })).toThrow(/delta_seq/);
    expect(() => encodeAttributes({ ...ok, fileIndex: 1.5 })).toThrow(/integers/);
  });

  it('exposes the stream and type numbers the wire uses', () => {
    expect(STREAM).toMatchObject({ UNIX_ATTRIBUTES: 1, FILE_DATA: 2, MD5_DIGEST: 3, GZIP_DATA: 4, SHA512_DIGEST: 18, PLUGIN_NAME: 26 });
    expect((STREAM.GZIP_DATA | (1 << 27)) & STREAM_MASK).toBe(STREAM.GZIP_DATA);
    expect(FT).toMatchObject({ LNKSAVED: 1, REGE: 2, REG: 3, LNK: 4, DIREND: 5, DELETED: 23, PLUGIN_CONFIG_FILLED: 28 });
  });
});

describe('bashed spaces', () => {
  it('turns spaces into 0x01 and back', () => {
    expect(bashSpaces('/srv/my files/a b')).toBe('/srv/my\x01files/a\x01b');
    expect(unbashSpaces('where=/tmp/re\x01stored')).toBe('where=/tmp/re stored');
    fc.assert(
      fc.property(fc.string(), (s) => {
        const plain = s.replaceAll('\x01', '');
        expect(bashSpaces(plain)).not.toContain(' ');
        expect(unbashSpaces(bashSpaces(plain))).toBe(plain);
      }),
    );
  });
});

// ---- bsock over real loopback sockets ------------------------------------------------------------

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

/** A connected pair of TCP sockets on 127.0.0.1 (the server side as accepted, the client as dialled). */
async function socketPair(): Promise<{ server: net.Socket; client: net.Socket }> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as net.AddressInfo;
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  const server = await accepted;
  listener.close();
  cleanups.push(() => {
    client.destroy();
    server.destroy();
  });
  return { server, client };
}

/** A raw frame header. */
function header(word: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(word | 0, 0);
  return b;
}

/** Everything `socket` receives in the next `ms` milliseconds. */
async function collect(socket: net.Socket, ms: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  const onData = (chunk: Buffer): void => {
    parts.push(chunk);
  };
  socket.on('data', onData);
  await new Promise((resolve) => setTimeout(resolve, ms));
  socket.off('data', onData);
  return Buffer.concat(parts);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('Bsock framing', () => {
  it('writes the exact bsock bytes: length word, payload, signals as negative lengths', async () => {
    const { server, client } = await socketPair();
    const bs = new Bsock(client, 'test-dir');
    const got = collect(server, 150);
    await bs.send('2000 OK Hello 213\n');
    await bs.send(Buffer.alloc(0));
    await bs.sendSignal(BNET.EOD);
    await bs.send('58+1Y+1EY8A+x7/s4n/5BB\0');
    const expected = Buffer.concat([
      header(18), Buffer.from('2000 OK Hello 213\n'), header(0), Buffer.from('ffffffff', 'hex'),
      header(23), Buffer.from('58+1Y+1EY8A+x7/s4n/5BB\0'),
    ]);
    expect((await got).equals(expected)).toBe(true);
  });

  it('carries data, an empty message, large payloads and signals in order, queued before anyone asks', async () => {
    const { server, client } = await socketPair();
    const sender = new Bsock(client, 'test-fd');
    const receiver = new Bsock(server, 'test-dir');
    const big = Buffer.alloc(70_000, 0xab);
    big.write('start', 0);
    await sender.send('Hello Director test-dir calling 103\n');
    await sender.send(Buffer.alloc(0));
    await sender.send(big);
    await sender.send(Buffer.alloc(MAX_RECEIVE, 1));
    await sender.sendSignal(BNET.EOD);
    await sender.send('cE4gG3IrW8+X2h/X5mdpeC\0');
    await sender.sendSignal(BNET.TERMINATE);
    await sleep(50); // everything is queued on the receiving side by now

    expect(await receiver.receiveText()).toBe('Hello Director test-dir calling 103\n');
    expect(await receiver.receive()).toEqual({ kind: 'data', data: Buffer.alloc(0) });
    const third = await receiver.receive();
    expect(third.kind === 'data' && third.data.equals(big)).toBe(true);
    const fourth = await receiver.receive();
    expect(fourth.kind === 'data' && fourth.data.length).toBe(MAX_RECEIVE);
    expect(await receiver.receive()).toEqual({ kind: 'signal', signal: BNET.EOD });
    expect(await receiver.receiveText()).toBe('cE4gG3IrW8+X2h/X5mdpeC'); // one trailing NUL stripped
    const error = await receiver.receiveText().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BsockSignalError);
    expect(error).toMatchObject({ signal: BNET.TERMINATE, message: 'expected a text message from test-dir, got BNET_TERMINATE (-4)' });
  });

  /** A loopback connection whose client side reads into slabs (SlabReceiver), as serve reads its SD. */
  async function slabConnection(): Promise<{ server: net.Socket; receiver: Bsock }> {
    const listener = net.createServer();
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
    const slabs = new SlabReceiver();
    const client = net.connect({ port: (listener.address() as net.AddressInfo).port, host: '127.0.0.1', onread: slabs.onread });
    await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
    const server = await accepted;
    listener.close();
    cleanups.push(() => {
      client.destroy();
      server.destroy();
    });
    return { server, receiver: new Bsock(client, 'test-sd', slabs) };
  }

  it('reads a connection into slabs (SlabReceiver): MiBs of frames across reads and slabs arrive whole and in order', async () => {
    const { server, receiver } = await slabConnection();
    // Record-sized frames (as an SD's restore data) and odd sizes, 5 MiB in all: many cross a
    // read, some cross a 1 MiB slab; each payload's bytes say which frame it is.
    const sizes = Array.from({ length: 80 }, (_, i) => (i % 3 === 0 ? 65_536 : 1 + ((i * 7_919) % 70_000)));
    const payloads = sizes.map((size, i) => Buffer.alloc(size, i));
    for (const payload of payloads) server.write(Buffer.concat([header(payload.length), payload]));
    server.write(header(BNET.EOD));
    for (const payload of payloads) {
      const message = await receiver.receive();
      expect(message.kind === 'data' && message.data.equals(payload)).toBe(true);
    }
    expect(await receiver.receive()).toEqual({ kind: 'signal', signal: BNET.EOD });
  });

  it('reuses a slab once every message in it is released, and a released message never changes under a held one', async () => {
    const { server, receiver } = await slabConnection();
    // 24 MiB of 64 KiB frames, each filled with its number; all released but one, held to the end.
    const count = 384;
    const frame = (i: number) => Buffer.concat([header(65_536), Buffer.alloc(65_536, i % 251)]);
    void (async () => {
      for (let i = 0; i < count; i++) if (!server.write(frame(i))) await new Promise((resolve) => server.once('drain', resolve));
    })();
    const memory = new Set<ArrayBufferLike>();
    let held: Buffer | null = null;
    for (let i = 0; i < count; i++) {
      const message = await receiver.receive();
      if (message.kind !== 'data') throw new Error('a signal where data was sent');
      expect(message.data.equals(Buffer.alloc(65_536, i % 251))).toBe(true);
      // A frame across two slabs is a copy of its own; the others are views of a slab.
      if (message.data.buffer.byteLength > 65_536) memory.add(message.data.buffer);
      if (i === 3) held = message.data;
      else receiver.release(message.data);
    }
    // Without reuse 24 MiB would take 24 slabs of 1 MiB; the held one keeps its own.
    expect(memory.size).toBeLessThan(12);
    expect(held!.equals(Buffer.alloc(65_536, 3))).toBe(true);
  });

  it('answers concurrent receives in call order, including frames split across TCP writes', async () => {
    const { server, client } = await socketPair();
    client.setNoDelay(true);
    const receiver = new Bsock(server, 'test-sd');
    const pending = [receiver.receive(), receiver.receive(), receiver.receive()];
    const frames = Buffer.concat([header(5), Buffer.from('first'), header(BNET.EOD), header(6), Buffer.from('second')]);
    for (const piece of [frames.subarray(0, 2), frames.subarray(2, 7), frames.subarray(7, 13), frames.subarray(13)]) {
      client.write(piece);
      await sleep(15);
    }
    const [a, b, c] = await Promise.all(pending);
    expect(a).toEqual({ kind: 'data', data: Buffer.from('first') });
    expect(b).toEqual({ kind: 'signal', signal: BNET.EOD });
    expect(c).toEqual({ kind: 'data', data: Buffer.from('second') });
  });

  it('skips heartbeats without answering them, unless asked to return them', async () => {
    const { server, client } = await socketPair();
    const receiver = new Bsock(server, 'test-sd');
    const answered = collect(client, 200);
    client.write(Buffer.concat([header(BNET.HEARTBEAT), header(BNET.HB_RESPONSE), header(BNET.HEARTBEAT), header(2), Buffer.from('ok')]));
    expect(await receiver.receive()).toEqual({ kind: 'data', data: Buffer.from('ok') });
    client.write(Buffer.concat([header(BNET.HEARTBEAT), header(2), Buffer.from('hi')]));
    expect(await receiver.receive({ skipHeartbeats: false })).toEqual({ kind: 'signal', signal: BNET.HEARTBEAT });
    expect(await receiver.receiveText()).toBe('hi');
    expect((await answered).length).toBe(0);
  });

  it('parses and ignores an extended header', async () => {
    const { server, client } = await socketPair();
    const receiver = new Bsock(server, 'test-dir');
    client.write(Buffer.concat([header(5 | BNET_HDR_EXTEND), header(BNET_FLAGS.IS_CMD | BNET_FLAGS.NOCOMPRESS), Buffer.from('hello')]));
    client.write(Buffer.concat([header(0 | 3 | BNET_HDR_EXTEND), header(0), Buffer.from('abc'), header(BNET.EOD)]));
    expect(await receiver.receiveText()).toBe('hello');
    expect(await receiver.receiveText()).toBe('abc');
    expect(await receiver.receive()).toEqual({ kind: 'signal', signal: BNET.EOD });
  });

  it('drops a peer that sends a frame over the limit, delivering what came before', async () => {
    const { server, client } = await socketPair();
    const receiver = new Bsock(server, 'broken-sd');
    const clientClosed = new Promise((resolve) => client.once('close', resolve));
    client.on('error', () => {});
    client.write(Buffer.concat([header(2), Buffer.from('ok'), header(MAX_RECEIVE + 1), Buffer.alloc(100)]));
    expect(await receiver.receiveText()).toBe('ok');
    await expect(receiver.receive()).rejects.toThrow(/broken-sd sent a 1000001-byte message, over the 1000000-byte limit/);
    await expect(receiver.receive()).rejects.toBeInstanceOf(BsockError);
    await clientClosed;
    expect(receiver.closed).toBe(true);
  });

  it('refuses an LZ4-compressed frame (we advertise 213, so only a confused peer sends one)', async () => {
    const { server, client } = await socketPair();
    const receiver = new Bsock(server, 'test-sd');
    client.on('error', () => {});
    client.write(Buffer.concat([header(10 | BNET_COMPRESSED), Buffer.alloc(10)]));
    await expect(receiver.receive()).rejects.toThrow(/LZ4-compressed/);
    await expect(receiver.receive()).rejects.toMatchObject({ code: 'E_BACULA_PROTOCOL', peer: 'test-sd' });
  });

  it('refuses to send more than Bacula accepts', async () => {
    const { client } = await socketPair();
    const bs = new Bsock(client, 'test-sd');
    await expect(bs.send(Buffer.alloc(MAX_SEND + 1))).rejects.toThrow(/refusing to send a 4000001-byte message/);
    await expect(bs.sendSignal(0)).rejects.toThrow(RangeError);
  });

  it('rejects pending and later receives once the peer closes, naming the peer', async () => {
    const { server, client } = await socketPair();
    const receiver = new Bsock(server, 'Director test-dir');
    client.write(Buffer.concat([header(4), Buffer.from('last')]));
    client.end();
    expect(await receiver.receiveText()).toBe('last'); // what arrived before the close still counts
    const error = await receiver.receive().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BsockError);
    expect((error as BsockError).message).toBe('Director test-dir closed the connection');
    expect(error).toMatchObject({ peer: 'Director test-dir', code: 'E_BACULA_CLOSED' });
    await expect(receiver.receiveText()).rejects.toThrow(/closed the connection/);
    await sleep(20);
    expect(receiver.closed).toBe(true);
    await expect(receiver.send('too late')).rejects.toThrow(/closed/);
  });

  it('says so when the peer vanishes mid-frame or resets', async () => {
    const { server, client } = await socketPair();
    const receiver = new Bsock(server, 'test-sd');
    const pending = receiver.receive();
    client.write(Buffer.concat([header(100), Buffer.from('partial')]));
    await sleep(20);
    client.resetAndDestroy();
    await expect(pending).rejects.toThrow(/test-sd closed the connection in the middle of a message \(ECONNRESET\)/);
  });

  it('closing locally rejects waiting receives and later sends', async () => {
    const { server, client } = await socketPair();
    const bs = new Bsock(server, 'test-dir');
    const flushed: Buffer[] = [];
    client.on('data', (chunk: Buffer) => flushed.push(chunk));
    const peerEnded = new Promise((resolve) => client.once('end', resolve));
    const pending = bs.receive();
    await bs.send('2800 End Job TermCode=84\n');
    bs.close();
    await expect(pending).rejects.toThrow(/connection to test-dir was closed/);
    await expect(bs.send('more')).rejects.toThrow(/closed/);
    expect(bs.closed).toBe(true);
    await peerEnded; // the frame sent before close() was flushed, then the socket ended
    expect(Buffer.concat(flushed).subarray(4).toString()).toBe('2800 End Job TermCode=84\n');
    const other = new Bsock((await socketPair()).server, 'x');
    other.destroy();
    await expect(other.receive()).rejects.toThrow(/was closed/);
  });

  it('sends corked frames together and in order', async () => {
    const { server, client } = await socketPair();
    const sender = new Bsock(client, 'test-sd');
    const receiver = new Bsock(server, 'test-fd');
    await sender.cork(() => Promise.all([sender.send('1 1 0'), sender.send(Buffer.from(REAL_RECORDS[0]!.text)), sender.sendSignal(BNET.EOD)]));
    expect(await receiver.receiveText()).toBe('1 1 0');
    const record = await receiver.receive();
    expect(record.kind === 'data' && decodeAttributes(record.data).fname).toBe('$LAB/data/small/hello.txt');
    expect(await receiver.receive()).toEqual({ kind: 'signal', signal: BNET.EOD });
    expect(signalName(BNET.EOD)).toBe('BNET_EOD');
    expect(signalName(-99)).toBe('signal -99');
  });

  it('applies backpressure both ways: a stalled reader stalls the sender instead of filling memory', async () => {
    const { server, client } = await socketPair();
    const sender = new Bsock(client, 'test-sd');
    const receiver = new Bsock(server, 'test-fd');
    const frame = 64 * 1024;
    const frames = 400; // 25 MiB: more than the receiver's queue limit plus loopback buffers absorb quickly
    let sent = 0;
    let maxBuffered = 0;
    const sending = (async () => {
      for (let i = 0; i < frames; i++) {
        const data = Buffer.alloc(frame, i & 0xff);
        data.writeUInt32BE(i, 0);
        const written = sender.send(data); // the frame is handed to the socket synchronously
        maxBuffered = Math.max(maxBuffered, client.writableLength);
        await written;
        sent++;
      }
      await sender.sendSignal(BNET.EOD);
    })();

    // Nobody reads meanwhile: wait until the receiver stops reading (300 ms usually; longer on a loaded machine).
    await sleep(300);
    for (const deadline = Date.now() + 10_000; !server.isPaused() && Date.now() < deadline; ) await sleep(20);
    expect(sent).toBeLessThan(frames); // the sender is waiting, not done
    // The receiver stopped reading from the socket once its queue was full...
    expect(server.isPaused()).toBe(true);
    // ...and every send awaited 'drain' rather than piling frames into the socket's buffer.
    expect(maxBuffered).toBeLessThanOrEqual(client.writableHighWaterMark + frame + 4);

    let received = 0;
    for (;;) {
      const message = await receiver.receive();
      if (message.kind === 'signal') {
        expect(message.signal).toBe(BNET.EOD);
        break;
      }
      expect(message.data.length).toBe(frame);
      expect(message.data.readUInt32BE(0)).toBe(received);
      expect(message.data[frame - 1]).toBe(received & 0xff);
      received++;
    }
    await sending;
    expect(received).toBe(frames);
    expect(sent).toBe(frames);
    expect(maxBuffered).toBeLessThanOrEqual(client.writableHighWaterMark + frame + 4);
  });
});
