/**
 * agentfd's one binding of kernel32 (Windows), through koffi: the calls Node does not offer.
 * File attributes that have no POSIX twin (hidden, system, archive), and the handle calls that
 * confined restores need (a directory opened so that nobody can rename or delete it while it is
 * open, and whether an entry is a reparse point: a symbolic link or a junction).
 *
 * Declared on first use, never on other systems (there is no kernel32 there: callers check
 * IS_WINDOWS first). GetLastError is read right after the failed call: koffi keeps the thread's
 * last error across its own work.
 */
import path from 'node:path';
import koffi from 'koffi';

export const FILE_ATTRIBUTE_READONLY = 0x1;
export const FILE_ATTRIBUTE_HIDDEN = 0x2;
export const FILE_ATTRIBUTE_SYSTEM = 0x4;
export const FILE_ATTRIBUTE_DIRECTORY = 0x10;
export const FILE_ATTRIBUTE_ARCHIVE = 0x20;
export const FILE_ATTRIBUTE_NORMAL = 0x80;
export const FILE_ATTRIBUTE_REPARSE_POINT = 0x400;
export const FILE_ATTRIBUTE_NOT_CONTENT_INDEXED = 0x2000;
export const INVALID_FILE_ATTRIBUTES = 0xffffffff;

export const GENERIC_WRITE = 0x40000000;
export const FILE_LIST_DIRECTORY = 0x1;
export const FILE_READ_ATTRIBUTES = 0x80;
export const SYNCHRONIZE = 0x100000;
export const FILE_SHARE_READ = 0x1;
export const FILE_SHARE_WRITE = 0x2;
export const CREATE_NEW = 1;
export const OPEN_EXISTING = 3;
export const OPEN_ALWAYS = 4;
export const FILE_FLAG_BACKUP_SEMANTICS = 0x02000000;
export const FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000;
const FILE_ATTRIBUTE_TAG_INFO_CLASS = 9; // FileAttributeTagInfo
const INVALID_HANDLE = 0xffffffffffffffffn;

/** A kernel32 HANDLE as koffi gives it (an opaque pointer object). */
export type Handle = unknown;

interface Kernel32 {
  GetFileAttributesW: (osPath: string) => number;
  SetFileAttributesW: (osPath: string, bits: number) => number;
  CreateFileW: (osPath: string, access: number, share: number, security: null, disposition: number, flags: number, template: null) => Handle;
  GetFileInformationByHandleEx: (handle: Handle, infoClass: number, out: { FileAttributes?: number; ReparseTag?: number }, size: number) => number;
  SetEndOfFile: (handle: Handle) => number;
  CloseHandle: (handle: Handle) => number;
  GetLastError: () => number;
}

let bound: Kernel32 | null = null;

function bind(): Kernel32 {
  if (bound === null) {
    const lib = koffi.load('kernel32.dll');
    const tagInfo = koffi.struct('AFD_FILE_ATTRIBUTE_TAG_INFO', { FileAttributes: 'uint32_t', ReparseTag: 'uint32_t' });
    bound = {
      GetFileAttributesW: lib.func('uint32_t __stdcall GetFileAttributesW(str16 name)') as Kernel32['GetFileAttributesW'],
      SetFileAttributesW: lib.func('int __stdcall SetFileAttributesW(str16 name, uint32_t attributes)') as Kernel32['SetFileAttributesW'],
      CreateFileW: lib.func('__stdcall', 'CreateFileW', 'void *', ['str16', 'uint32_t', 'uint32_t', 'void *', 'uint32_t', 'uint32_t', 'void *']) as Kernel32['CreateFileW'],
      GetFileInformationByHandleEx: lib.func('__stdcall', 'GetFileInformationByHandleEx', 'int', [
        'void *',
        'int',
        koffi.out(koffi.pointer(tagInfo)),
        'uint32_t',
      ]) as Kernel32['GetFileInformationByHandleEx'],
      SetEndOfFile: lib.func('int __stdcall SetEndOfFile(void *handle)') as Kernel32['SetEndOfFile'],
      CloseHandle: lib.func('int __stdcall CloseHandle(void *handle)') as Kernel32['CloseHandle'],
      GetLastError: lib.func('uint32_t __stdcall GetLastError()') as Kernel32['GetLastError'],
    };
  }
  return bound;
}

// The codes file walks and restores meet, with the errno name Node gives each; others are numbers.
const WIN32_ERRORS: Record<number, [string, string]> = {
  2: ['ERROR_FILE_NOT_FOUND', 'ENOENT'],
  3: ['ERROR_PATH_NOT_FOUND', 'ENOENT'],
  5: ['ERROR_ACCESS_DENIED', 'EPERM'],
  32: ['ERROR_SHARING_VIOLATION', 'EBUSY'],
  80: ['ERROR_FILE_EXISTS', 'EEXIST'],
  87: ['ERROR_INVALID_PARAMETER', 'EINVAL'],
  112: ['ERROR_DISK_FULL', 'ENOSPC'],
  123: ['ERROR_INVALID_NAME', 'EINVAL'],
  183: ['ERROR_ALREADY_EXISTS', 'EEXIST'],
  267: ['ERROR_DIRECTORY', 'ENOTDIR'],
};

/** The last kernel32 error as an Error with Node's `code` (ENOENT, EPERM, ...) and the Windows name. */
export function lastWindowsError(call: string, osPath: string): NodeJS.ErrnoException {
  const number = bind().GetLastError();
  const [name, code] = WIN32_ERRORS[number] ?? [number === 0 ? 'no error code' : `Windows error ${number}`, 'EIO'];
  return Object.assign(new Error(`${call} failed for '${osPath}': ${name}`), { code, syscall: call, path: osPath });
}

/**
 * The path as kernel32 should get it: Node's own file calls use the \\?\ form, which lifts the
 * MAX_PATH limit and stops Windows from trimming trailing dots and spaces, so these calls reach
 * exactly the file that lstat, open and rename reach.
 */
export function win32Path(osPath: string): string {
  return path.win32.toNamespacedPath(osPath);
}

/** GetFileAttributesW of the entry itself (a link's own bits); INVALID_FILE_ATTRIBUTES when it fails. */
export function getFileAttributes(osPath: string): number {
  return bind().GetFileAttributesW(win32Path(osPath));
}

/** SetFileAttributesW; throws the Windows error when it is refused. */
export function setFileAttributes(osPath: string, bits: number): void {
  if (bind().SetFileAttributesW(win32Path(osPath), bits === 0 ? FILE_ATTRIBUTE_NORMAL : bits) === 0) {
    throw lastWindowsError('SetFileAttributesW', osPath);
  }
}

/** CreateFileW; throws the Windows error (with Node's code) when it fails. */
export function createFile(osPath: string, access: number, share: number, disposition: number, flags: number): Handle {
  const handle = bind().CreateFileW(win32Path(osPath), access, share, null, disposition, flags, null);
  if (handle === null || koffi.address(handle) === INVALID_HANDLE) throw lastWindowsError('CreateFileW', osPath);
  return handle;
}

/** The attributes of the open entry (FILE_ATTRIBUTE_*), read through its handle, not its name. */
export function handleAttributes(handle: Handle, osPath: string): number {
  const out: { FileAttributes?: number } = {};
  if (bind().GetFileInformationByHandleEx(handle, FILE_ATTRIBUTE_TAG_INFO_CLASS, out, 8) === 0) throw lastWindowsError('GetFileInformationByHandleEx', osPath);
  return out.FileAttributes ?? 0;
}

/** SetEndOfFile at the handle's position (0 for a handle just opened): empties the file. */
export function truncateHandle(handle: Handle, osPath: string): void {
  if (bind().SetEndOfFile(handle) === 0) throw lastWindowsError('SetEndOfFile', osPath);
}

export function closeHandle(handle: Handle): void {
  bind().CloseHandle(handle);
}

/** The handle as the number an agent receives (HANDLE values are small, far below 2^53). */
export function handleValue(handle: Handle): number {
  return Number(koffi.address(handle));
}
