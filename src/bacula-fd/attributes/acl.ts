/**
 * POSIX ACLs as bacula-fd 9.6 saves them on Linux (filed/bacl.c, bacl_linux.c): the text libacl's
 * acl_to_text makes, with its terminating NUL, in STREAM_XACL_LINUX_ACCESS (1008) for the access
 * ACL and STREAM_XACL_LINUX_DEFAULT (1007) for a directory's default ACL. An access ACL of only
 * user::, group:: and other:: entries says no more than the mode and is not sent; a default ACL is
 * sent whenever it has entries. Restore reads the text back as acl_from_text does, checks it as
 * acl_valid does and sets it (acl_set_file). The deprecated streams 15 and 16 restore the same way.
 *
 * Node has no libacl, and agentfd does not load it: the kernel keeps an ACL as the binary value of
 * the system.posix_acl_access / system.posix_acl_default xattr (linux/posix_acl_xattr.h: a
 * little-endian uint32 version 2, then per entry uint16 tag, uint16 perm, uint32 id), which is read
 * and written with the xattr calls of xattr.ts and converted to and from libacl's text here. So
 * agentfd needs no library that a machine may lack, and the text is testable byte for byte; user
 * and group names are looked up through libc (getpwuid_r and friends, src/platform/libc.ts), as libacl
 * does. test/bacula-fd/xattr-acl.test.ts checks this text against libacl's own where libacl is
 * installed.
 */
import { getXattr, isUnsupported, setXattr } from './xattr.js';
import { groupIdOf, groupNameOf, userIdOf, userNameOf } from '../../platform/libc.js';

/** streams.h: the Linux ACL streams, and the deprecated generic ones bacula-fd still restores. */
export const ACL_STREAM = { LINUX_DEFAULT: 1007, LINUX_ACCESS: 1008, UNIX_ACCESS: 15, UNIX_DEFAULT: 16 } as const;

/** acl/libacl.h tags, as the kernel stores them. */
export const ACL_TAG = { USER_OBJ: 0x01, USER: 0x02, GROUP_OBJ: 0x04, GROUP: 0x08, MASK: 0x10, OTHER: 0x20 } as const;
/** The id of entries that have none (all but ACL_USER and ACL_GROUP). */
export const ACL_UNDEFINED_ID = 0xffffffff;
const ACL_EA_VERSION = 2;
const READ = 4;
const WRITE = 2;
const EXECUTE = 1;

export type AclKind = 'access' | 'default';
const XATTR_NAME: Record<AclKind, string> = { access: 'system.posix_acl_access', default: 'system.posix_acl_default' };

export interface AclEntry {
  tag: number;
  /** READ 4 | WRITE 2 | EXECUTE 1. */
  perm: number;
  /** The uid or gid of ACL_USER and ACL_GROUP entries; ACL_UNDEFINED_ID for the others. */
  id: number;
}

function hasQualifier(tag: number): boolean {
  return tag === ACL_TAG.USER || tag === ACL_TAG.GROUP;
}

/** libacl keeps entries sorted by tag, then id (__acl_reorder_obj_p); stable, as its insertions are. */
function sorted(entries: readonly AclEntry[]): AclEntry[] {
  return entries.map((e, i) => ({ e, i })).sort((a, b) => a.e.tag - b.e.tag || a.e.id - b.e.id || a.i - b.i).map(({ e }) => e);
}

// ---- the kernel's binary form -----------------------------------------------------------------

/** The xattr value as libacl's __acl_from_xattr reads it (entries sorted); throws on a malformed value. */
export function decodePosixAcl(value: Buffer): AclEntry[] {
  if (value.length < 4 || value.readUInt32LE(0) !== ACL_EA_VERSION || (value.length - 4) % 8 !== 0) {
    throw new Error(`not a POSIX ACL xattr value (${value.length} bytes, version ${value.length >= 4 ? value.readUInt32LE(0) : 'missing'}; want version ${ACL_EA_VERSION} and 8 bytes per entry)`);
  }
  const entries: AclEntry[] = [];
  for (let at = 4; at < value.length; at += 8) {
    const tag = value.readUInt16LE(at);
    if (!Object.values(ACL_TAG).includes(tag as never)) throw new Error(`POSIX ACL entry with unknown tag 0x${tag.toString(16)}`);
    entries.push({ tag, perm: value.readUInt16LE(at + 2), id: hasQualifier(tag) ? value.readUInt32LE(at + 4) : ACL_UNDEFINED_ID });
  }
  return sorted(entries);
}

/** The xattr value libacl's __acl_to_xattr writes: version 2, the entries in libacl's order. */
export function encodePosixAcl(entries: readonly AclEntry[]): Buffer {
  const value = Buffer.alloc(4 + 8 * entries.length);
  value.writeUInt32LE(ACL_EA_VERSION, 0);
  sorted(entries).forEach((e, i) => {
    value.writeUInt16LE(e.tag, 4 + i * 8);
    value.writeUInt16LE(e.perm, 6 + i * 8);
    value.writeUInt32LE(hasQualifier(e.tag) ? e.id >>> 0 : ACL_UNDEFINED_ID, 8 + i * 8);
  });
  return value;
}

/** bacl_linux.c acl_issimple: only user::, group:: and other:: entries, which the mode already holds. */
export function isSimpleAcl(entries: readonly AclEntry[]): boolean {
  return entries.every((e) => e.tag === ACL_TAG.USER_OBJ || e.tag === ACL_TAG.GROUP_OBJ || e.tag === ACL_TAG.OTHER);
}

/** libacl's acl_check (acl_valid): why the ACL is not valid, or null when it is. Entries in libacl's order. */
export function aclProblem(entries: readonly AclEntry[]): string | null {
  let state: number = ACL_TAG.USER_OBJ;
  let next = 0; // the least id the next named entry may have
  let needsMask = false;
  for (const e of sorted(entries)) {
    switch (e.tag) {
      case ACL_TAG.USER_OBJ:
        if (state !== ACL_TAG.USER_OBJ) return 'more than one user:: entry';
        state = ACL_TAG.USER;
        next = 0;
        break;
      case ACL_TAG.GROUP_OBJ:
        if (state !== ACL_TAG.USER) return state === ACL_TAG.USER_OBJ ? 'no user:: entry' : 'more than one group:: entry';
        state = ACL_TAG.GROUP;
        next = 0;
        break;
      case ACL_TAG.USER:
      case ACL_TAG.GROUP: {
        const expected = e.tag === ACL_TAG.USER ? ACL_TAG.USER : ACL_TAG.GROUP;
        if (state !== expected) return `a ${e.tag === ACL_TAG.USER ? 'user' : 'group'} entry without the entries it needs`;
        if (e.id < next || e.id === ACL_UNDEFINED_ID) return `the ${e.tag === ACL_TAG.USER ? 'user' : 'group'} ${e.id} twice`;
        next = e.id + 1;
        needsMask = true;
        break;
      }
      case ACL_TAG.MASK:
        if (state !== ACL_TAG.GROUP) return state === ACL_TAG.OTHER || state === 0 ? 'more than one mask:: entry' : 'a mask:: entry without group::';
        state = ACL_TAG.OTHER;
        break;
      case ACL_TAG.OTHER:
        if (state === ACL_TAG.OTHER || (state === ACL_TAG.GROUP && !needsMask)) {
          state = 0;
          break;
        }
        return state === ACL_TAG.GROUP ? 'named entries but no mask:: entry' : 'an other:: entry without the entries before it';
      default:
        return `an entry with unknown tag 0x${e.tag.toString(16)}`;
    }
  }
  return state === 0 ? null : 'entries missing (user::, group:: and other:: are required)';
}

// ---- names ------------------------------------------------------------------------------------

/** How ids and names are looked up: the system's (libc's NSS) by default; tests pass their own. */
export interface IdNames {
  userName(uid: number): string | null;
  groupName(gid: number): string | null;
  userId(name: string): number | null;
  groupId(name: string): number | null;
}

/** The system's names, through libc: the same NSS sources (files, LDAP, ...) libacl consults. */
export const systemIdNames: IdNames = { userName: userNameOf, groupName: groupNameOf, userId: userIdOf, groupId: groupIdOf };

// ---- libacl's text ----------------------------------------------------------------------------

const PERM_BITS: Record<string, number> = { r: READ, w: WRITE, x: EXECUTE, '-': 0 };
const TAG_TEXT: Record<number, string> = {
  [ACL_TAG.USER_OBJ]: 'user::', [ACL_TAG.USER]: 'user:', [ACL_TAG.GROUP_OBJ]: 'group::', [ACL_TAG.GROUP]: 'group:', [ACL_TAG.MASK]: 'mask::', [ACL_TAG.OTHER]: 'other::',
};

function permText(perm: number): string {
  return `${perm & READ ? 'r' : '-'}${perm & WRITE ? 'w' : '-'}${perm & EXECUTE ? 'x' : '-'}`;
}

/** libacl's __acl_quote: the separators and white space of a name as \ooo, a backslash doubled. */
function quoteName(name: string): string {
  return name.replace(/[:, \t\n\r\\]/g, (c) => (c === '\\' ? '\\\\' : `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`));
}

/** The qualifier of a named entry: its name when it has one, else its number. */
function qualifierText(e: AclEntry, names: IdNames): string {
  const name = e.tag === ACL_TAG.USER ? names.userName(e.id) : names.groupName(e.id);
  return name === null ? String(e.id) : quoteName(name);
}

/**
 * acl_to_text: one line per entry in libacl's order, "user::rw-", "user:alice:rwx", "group::r-x",
 * "mask::r-x", "other::r--", each line ending in a newline; a named entry or group:: that the mask
 * restricts gets "\t#effective:" and what it is left with.
 */
export function aclToText(entries: readonly AclEntry[], names: IdNames = systemIdNames): string {
  const ordered = sorted(entries);
  const mask = ordered.find((e) => e.tag === ACL_TAG.MASK);
  let text = '';
  for (const e of ordered) {
    const head = TAG_TEXT[e.tag];
    if (head === undefined) {
      text += '\n'; // an unknown tag prints nothing but its separator, as in libacl (decode refuses them)
      continue;
    }
    text += hasQualifier(e.tag) ? `${head}${qualifierText(e, names)}:` : head;
    text += permText(e.perm);
    const masked = mask && (e.tag === ACL_TAG.USER || e.tag === ACL_TAG.GROUP_OBJ || e.tag === ACL_TAG.GROUP);
    if (masked && (e.perm & mask.perm & 7) !== (e.perm & 7)) text += `\t#effective:${permText(e.perm & mask.perm)}`;
    text += '\n';
  }
  return text;
}

/** Why a text is not an ACL: acl_from_text's EINVAL, with what it met. */
export class AclTextError extends Error {
  readonly code = 'EINVAL';
}

/** A reader of libacl's ACL text, step by step as its acl_from_text goes (and as lenient). */
class AclTextReader {
  private at = 0;

  constructor(private readonly text: string, private readonly names: IdNames) {}

  private get c(): string {
    return this.text[this.at] ?? '';
  }

  private fail(what: string): never {
    throw new AclTextError(`${what} at offset ${this.at} of the ACL text ${JSON.stringify(this.text)}`);
  }

  /** SKIP_WS: white space, then one comment up to (not past) its newline. */
  private skipSpace(from = this.at): number {
    let at = from;
    while (' \t\n\r'.includes(this.text[at] ?? 'x')) at++;
    if (this.text[at] === '#') while (at < this.text.length && this.text[at] !== '\n') at++;
    return at;
  }

  /** skip_tag_name: the tag word in full or its first letter, then an optional colon. */
  private tagName(word: string): void {
    this.at = this.skipSpace();
    if (this.text.startsWith(word, this.at)) this.at += word.length;
    else if (this.c === word[0]) this.at++;
    else this.fail(`"${word}" expected`);
    this.at = this.skipSpace();
    if (this.c === ':') this.at++;
  }

  /** get_token: the qualifier up to the next colon, comma or line end (null when empty); the colon is passed. */
  private token(): string | null {
    const start = this.at;
    let end = this.skipSpace(start);
    while (end < this.text.length && !'\r\n:,'.includes(this.text[end]!)) end++;
    this.at = end < this.text.length && this.text[end] === ':' ? end + 1 : end;
    return end === start ? null : this.text.slice(start, end);
  }

  /** An optional empty qualifier field (mask and other: "mask::rwx" or Solaris's "mask:rwx"). */
  private emptyQualifier(): void {
    this.at = this.skipSpace();
    if (this.c === ':') this.at++;
  }

  private qualifier(token: string, kind: 'user' | 'group'): number {
    const name = unquoteName(token);
    const id = numericId(name) ?? (kind === 'user' ? this.names.userId(name) : this.names.groupId(name));
    if (id === null) this.fail(`unknown ${kind} ${JSON.stringify(name)} (not a number, and this system has no ${kind} of that name)`);
    return id;
  }

  /** parse_acl_entry: a tag, its qualifier, then up to three of r, w, x and -. */
  private entry(): AclEntry {
    this.at = this.skipSpace();
    let tag: number;
    let id = ACL_UNDEFINED_ID;
    const letter = this.c;
    if (letter === 'u' || letter === 'g') {
      const kind = letter === 'u' ? 'user' : 'group';
      this.tagName(kind);
      const token = this.token();
      if (token === null) tag = kind === 'user' ? ACL_TAG.USER_OBJ : ACL_TAG.GROUP_OBJ;
      else {
        tag = kind === 'user' ? ACL_TAG.USER : ACL_TAG.GROUP;
        id = this.qualifier(token, kind);
      }
    } else if (letter === 'm' || letter === 'o') {
      this.tagName(letter === 'm' ? 'mask' : 'other');
      this.emptyQualifier();
      tag = letter === 'm' ? ACL_TAG.MASK : ACL_TAG.OTHER;
    } else {
      this.fail('an entry type (user, group, mask or other) expected');
    }
    let perm = 0;
    for (let count = 0; count < 3; count++, this.at++) {
      const bit = PERM_BITS[this.c];
      if (bit === undefined) {
        if (count === 0) this.fail('permissions expected');
        break;
      }
      if (perm & bit) this.fail(`permission "${this.c}" twice`);
      perm |= bit;
    }
    return { tag, perm, id };
  }

  /** acl_from_text's loop: entries separated by white space, comments or commas. */
  read(): AclEntry[] {
    const entries: AclEntry[] = [];
    while (this.at < this.text.length) {
      entries.push(this.entry());
      this.at = this.skipSpace();
      if (this.c === ',') this.at = this.skipSpace(this.at + 1);
    }
    return sorted(entries);
  }
}

/** libacl's __acl_unquote: \ooo and \\ back to what they stand for. */
function unquoteName(token: string): string {
  return token.replace(/\\([0-7]{3}|\\)/g, (_, q: string) => (q === '\\' ? '\\' : String.fromCharCode(parseInt(q, 8) & 0xff)));
}

const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);

/**
 * libacl's get_id: the whole qualifier as a C number (strtol, base 0: decimal, 0x hex, 0 octal);
 * a negative one is taken as 16 bits (-2 is 65534, nobody), and the result as a 32-bit id.
 */
function numericId(token: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(token);
  if (!m) return null;
  const digits = m[2]!;
  let value = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits.startsWith('0') ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  if (m[1] === '-') value = -value;
  if (value > LONG_MAX) value = LONG_MAX;
  if (value < LONG_MIN) value = LONG_MIN;
  if (value < 0n) value &= 0xffffn;
  return Number(BigInt.asUintN(32, value));
}

/**
 * acl_from_text: the entries of libacl's text (up to a NUL, as C reads it), in libacl's order.
 * Throws AclTextError for what libacl refuses (EINVAL); validity is aclProblem's to judge.
 */
export function aclFromText(text: string, names: IdNames = systemIdNames): AclEntry[] {
  const end = text.indexOf('\0');
  return new AclTextReader(end < 0 ? text : text.slice(0, end), names).read();
}

// ---- one file, as bacula-fd reads and writes them ---------------------------------------------

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
}

/**
 * os_get_acl: the text to save for one ACL of `path` (with its NUL), or null when there is none to
 * save: no such ACL (ENODATA: libacl then derives a simple one from the mode), no entries, an
 * access ACL the mode says all of, a file gone (ENOENT) or a filesystem without ACLs. Other
 * failures throw, worded as bacula-fd's messages.
 */
export function readAclText(path: string, kind: AclKind, names: IdNames = systemIdNames): Buffer | null {
  let value: Buffer;
  try {
    value = getXattr(path, XATTR_NAME[kind]);
  } catch (error) {
    const code = codeOf(error);
    if (code === 'ENODATA' || code === 'ENOENT' || isUnsupported(error)) return null;
    throw new Error(`acl_get_file error on file "${path}": ERR=${code}`);
  }
  let entries: AclEntry[];
  try {
    entries = decodePosixAcl(value);
  } catch (error) {
    throw new Error(`acl_get_file error on file "${path}": ERR=EINVAL (${(error as Error).message})`);
  }
  if (entries.length === 0 || (kind === 'access' && isSimpleAcl(entries))) return null;
  return Buffer.from(`${aclToText(entries, names)}\0`, 'utf8');
}

/**
 * os_set_acl: set one ACL of `path` from its saved text. 'unsupported' when the filesystem has no
 * ACLs; a file gone meanwhile is not an error; text libacl would refuse, or a failed set, throws
 * with bacula-fd's wording, naming the file `shownAs` (when `path` is a /proc/self/fd path to it).
 */
export function writeAclText(path: string, kind: AclKind, data: Buffer, names: IdNames = systemIdNames, shownAs = path): 'ok' | 'unsupported' {
  let entries: AclEntry[];
  try {
    entries = aclFromText(data.toString('utf8'), names);
  } catch (error) {
    throw new Error(`acl_from_text error on file "${shownAs}": ERR=EINVAL (${(error as Error).message})`);
  }
  const problem = aclProblem(entries);
  if (problem !== null) throw new Error(`acl_valid error on file "${shownAs}": ERR=EINVAL (${problem})`);
  try {
    setXattr(path, XATTR_NAME[kind], encodePosixAcl(entries));
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return 'ok';
    if (isUnsupported(error)) return 'unsupported';
    throw new Error(`acl_set_file error on file "${shownAs}": ERR=${codeOf(error)}`);
  }
  return 'ok';
}
