/**
 * Extended attributes as bacula-fd 9.6 saves them on Linux (filed/bxattr.c, bxattr_linux.c): one
 * STREAM_XACL_LINUX_XATTR record (1998) per file holding every attribute llistxattr lists, in that
 * order, each serialized big-endian as
 *
 *   uint32 XATTR_MAGIC (0x5C5884) | uint32 name length | name (no NUL) | uint32 value length | value
 *
 * With aclsupport the two ACL attributes (system.posix_acl_access, system.posix_acl_default) are
 * left out, as their own streams carry them (acl.ts); without it they go here like any other. No
 * other name is skipped: security.selinux and (as root) trusted.* are saved too. Symlinks get their
 * own attributes (llistxattr, lgetxattr and lsetxattr never follow them).
 *
 * The libc calls go through koffi, through src/platform/libc.ts: Node has no xattr API. Names are kept as bytes
 * (Buffers), since a name need not be UTF-8; values are bytes.
 */
import { callError, libcBinding } from '../../platform/libc.js';
import { cPath } from '../../platform/byte-names.js';

/** The Linux xattr stream (streams.h STREAM_XACL_LINUX_XATTR). */
export const STREAM_LINUX_XATTR = 1998;
/** The first word of each serialized attribute (bxattr.h XATTR_MAGIC). */
export const XATTR_MAGIC = 0x5c5884;
/** The attributes that are the ACL streams' with aclsupport (bxattr_linux.c's acl skip list). */
export const ACL_XATTR_NAMES = ['system.posix_acl_access', 'system.posix_acl_default'] as const;

export interface Xattr {
  name: Buffer;
  value: Buffer;
}

/** An attribute name as bytes: a string is taken as UTF-8. */
export type XattrName = Buffer | string;

// ---- the libc calls ---------------------------------------------------------------------------

interface XattrCalls {
  llistxattr: (path: string, list: Buffer | null, size: number) => number;
  lgetxattr: (path: string, name: Buffer, value: Buffer | null, size: number) => number;
  lsetxattr: (path: string, name: Buffer, value: Buffer, size: number, flags: number) => number;
}

/** libc's xattr calls (the l- variants: a symlink's own attributes); a path goes to C as its bytes (cPath). */
const bind = libcBinding<XattrCalls>((self) => {
  const llistxattr = self.func('intptr_t llistxattr(const char *path, void *list, size_t size)');
  const lgetxattr = self.func('intptr_t lgetxattr(const char *path, const void *name, void *value, size_t size)');
  const lsetxattr = self.func('int lsetxattr(const char *path, const void *name, const void *value, size_t size, int flags)');
  return {
    llistxattr: (path, list, size) => Number(llistxattr(cPath(path), list, size)),
    lgetxattr: (path, name, value, size) => Number(lgetxattr(cPath(path), name, value, size)),
    lsetxattr: (path, name, value, size, flags) => lsetxattr(cPath(path), name, value, size, flags) as number,
  };
});

/** The name as the C string libc takes. */
function cName(name: XattrName): Buffer {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  return Buffer.concat([bytes, Buffer.from([0])]);
}

/** How often a list or value that grew between the size query and the read is asked for again. */
const RANGE_RETRIES = 5;

/** A call that fills a buffer: asked for its size first, then read; again if it grew meanwhile (ERANGE). */
function readSized(call: string, path: string, fill: (buffer: Buffer | null, size: number) => number): Buffer {
  for (let attempt = 0; ; attempt++) {
    const size = fill(null, 0);
    if (size < 0) throw callError(call, path);
    if (size === 0) return Buffer.alloc(0);
    const buffer = Buffer.alloc(size);
    const got = fill(buffer, size);
    if (got >= 0) return buffer.subarray(0, got);
    const error = callError(call, path);
    if (error.code !== 'ERANGE' || attempt >= RANGE_RETRIES) throw error;
  }
}

/** llistxattr: the names of `path`'s attributes, in the kernel's order. Throws with the errno's code. */
export function listXattrs(path: string): Buffer[] {
  const api = bind('llistxattr');
  const list = readSized('llistxattr', path, (buffer, size) => api.llistxattr(path, buffer, size));
  const names: Buffer[] = [];
  for (let start = 0; start < list.length; ) {
    let end = list.indexOf(0, start);
    if (end < 0) end = list.length;
    names.push(list.subarray(start, end));
    start = end + 1;
  }
  return names;
}

/** lgetxattr: the value of one attribute (ENODATA when it has none). */
export function getXattr(path: string, name: XattrName): Buffer {
  const api = bind('lgetxattr');
  const c = cName(name);
  return readSized('lgetxattr', path, (buffer, size) => api.lgetxattr(path, c, buffer, size));
}

/** lsetxattr: create or replace one attribute. */
export function setXattr(path: string, name: XattrName, value: Buffer): void {
  if (bind('lsetxattr').lsetxattr(path, cName(name), value, value.length, 0) !== 0) throw callError('lsetxattr', path);
}

// ---- the stream -------------------------------------------------------------------------------

/** bxattr.c serialize_xattr_stream: every attribute, magic first. An empty name is refused, as there. */
export function encodeXattrStream(xattrs: readonly Xattr[]): Buffer {
  const parts: Buffer[] = [];
  for (const { name, value } of xattrs) {
    if (name.length === 0) throw new Error('Illegal empty xattr attribute name');
    const head = Buffer.alloc(8);
    head.writeUInt32BE(XATTR_MAGIC, 0);
    head.writeUInt32BE(name.length, 4);
    const valueLength = Buffer.alloc(4);
    valueLength.writeUInt32BE(value.length, 0);
    parts.push(head, name, valueLength, value);
  }
  return Buffer.concat(parts);
}

/**
 * bxattr.c unserialize_xattr_stream: the attributes of a stream. A malformed stream gives the
 * attributes before the fault and says what it is (bacula-fd, too, sets those it read).
 */
export function decodeXattrStream(data: Buffer): { xattrs: Xattr[]; error: string | null } {
  const xattrs: Xattr[] = [];
  let at = 0;
  const fail = (what: string) => ({ xattrs, error: `Illegal xattr stream: ${what} at byte ${at} of ${data.length}` });
  while (at < data.length) {
    if (at + 8 > data.length) return fail('a truncated header');
    if (data.readUInt32BE(at) !== XATTR_MAGIC) return fail('no XATTR_MAGIC');
    const nameLength = data.readUInt32BE(at + 4);
    if (nameLength === 0) return fail('an empty xattr name');
    const nameEnd = at + 8 + nameLength;
    if (nameEnd + 4 > data.length) return fail('a name running past the end');
    const valueLength = data.readUInt32BE(nameEnd);
    const valueEnd = nameEnd + 4 + valueLength;
    if (valueEnd > data.length) return fail('a value running past the end');
    xattrs.push({ name: data.subarray(at + 8, nameEnd), value: data.subarray(nameEnd + 4, valueEnd) });
    at = valueEnd;
  }
  return { xattrs, error: null };
}

// ---- one file, as bacula-fd reads and writes them ---------------------------------------------

/** A filesystem without extended attributes answers EOPNOTSUPP (Node names it ENOTSUP: the same errno on Linux). */
export function isUnsupported(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // ENOSYS: not Linux (src/platform/libc.ts refuses there, Windows included): no xattrs or ACLs on this system,
  // handled as a filesystem without them, so it never fails or floods a job with per-file warnings.
  return code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS';
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
}

/**
 * generic_backup_xattr: the attributes of `path` to save, or null when there are none, the file
 * went away (ENOENT) or its filesystem has no xattrs (all silently, as bacula-fd). Other failures
 * throw, worded as bacula-fd's warnings.
 */
export function readXattrs(path: string, skipAclNames: boolean): Xattr[] | null {
  let names: Buffer[];
  try {
    names = listXattrs(path);
  } catch (error) {
    if (codeOf(error) === 'ENOENT' || isUnsupported(error)) return null;
    throw new Error(`llistxattr error on file "${path}": ERR=${codeOf(error)}`);
  }
  const skipped = new Set<string>(skipAclNames ? ACL_XATTR_NAMES : []);
  const xattrs: Xattr[] = [];
  for (const name of names) {
    if (name.length === 0 || skipped.has(name.toString('latin1'))) continue;
    try {
      xattrs.push({ name, value: getXattr(path, name) });
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return null;
      throw new Error(`lgetxattr error on file "${path}": ERR=${codeOf(error)} (attribute ${name.toString('utf8')})`);
    }
  }
  return xattrs.length > 0 ? xattrs : null;
}

/**
 * generic_restore_xattr: set each attribute on `path` in the stream's order. 'unsupported' when
 * the filesystem has no xattrs (the rest are not tried); a file gone meanwhile is not an error;
 * another failure throws and the remaining attributes are not set, as with bacula-fd. Messages name
 * the file `shownAs` (when `path` is a /proc/self/fd path to it).
 */
export function writeXattrs(path: string, xattrs: readonly Xattr[], shownAs = path): 'ok' | 'unsupported' {
  for (const { name, value } of xattrs) {
    try {
      setXattr(path, name, value);
    } catch (error) {
      if (codeOf(error) === 'ENOENT') continue;
      if (isUnsupported(error)) return 'unsupported';
      throw new Error(`setxattr error on file "${shownAs}": ERR=${codeOf(error)} (attribute ${name.toString('utf8')})`);
    }
  }
  return 'ok';
}
