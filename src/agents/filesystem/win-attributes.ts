/**
 * Windows file attributes (FILE_ATTRIBUTE_*) that have no POSIX twin: hidden, system, archive,
 * not-content-indexed, and read-only (which Node only half maps, through chmod's write bit).
 * Read by the backup walk (AgentFileInfo.winAttributes) and set again by a Windows restore, through
 * kernel32's GetFileAttributesW/SetFileAttributesW, called with koffi.
 *
 * Only RESTORABLE_WIN_ATTRIBUTES are saved and set: the others either describe what the file is
 * (DIRECTORY, REPARSE_POINT, SPARSE_FILE, COMPRESSED, ENCRYPTED: made by other calls, or not at
 * all, and refused or ignored by SetFileAttributesW) or are transient (OFFLINE, RECALL_*, PINNED).
 *
 * Off Windows, readWinAttributes() gives 0 and writeWinAttributes() does nothing: a POSIX restore
 * of a Windows backup keeps the bits in the catalog but has nowhere to put them. In particular
 * READONLY is NOT turned into removing write bits there: the POSIX mode saved with the file is
 * restored as it was, and it already says whether the file was writable.
 */
import path from 'node:path';
import koffi from 'koffi';

import { IS_WINDOWS } from '../../platform/os.js';

export const FILE_ATTRIBUTE_READONLY = 0x1;
export const FILE_ATTRIBUTE_HIDDEN = 0x2;
export const FILE_ATTRIBUTE_SYSTEM = 0x4;
export const FILE_ATTRIBUTE_ARCHIVE = 0x20;
export const FILE_ATTRIBUTE_NOT_CONTENT_INDEXED = 0x2000;
// SetFileAttributesW's way of saying "none": 0 is not documented as valid there.
const FILE_ATTRIBUTE_NORMAL = 0x80;
const INVALID_FILE_ATTRIBUTES = 0xffffffff;

export const RESTORABLE_WIN_ATTRIBUTES =
  FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED;

/** The bits of `bits` that a restore sets again (the others are dropped; see the module comment). */
export function restorableWinAttributes(bits: number): number {
  return (bits & RESTORABLE_WIN_ATTRIBUTES) >>> 0;
}

interface Kernel32 {
  getFileAttributes: (osPath: string) => number;
  setFileAttributes: (osPath: string, bits: number) => number;
  getLastError: () => number;
}

let kernel32: Kernel32 | null = null;

/** kernel32's functions, declared on first use: never on other systems, where there is no kernel32. */
function bind(): Kernel32 {
  if (kernel32 === null) {
    const lib = koffi.load('kernel32.dll');
    kernel32 = {
      getFileAttributes: lib.func('uint32_t __stdcall GetFileAttributesW(str16 lpFileName)') as Kernel32['getFileAttributes'],
      setFileAttributes: lib.func('int __stdcall SetFileAttributesW(str16 lpFileName, uint32_t dwFileAttributes)') as Kernel32['setFileAttributes'],
      getLastError: lib.func('uint32_t __stdcall GetLastError()') as Kernel32['getLastError'],
    };
  }
  return kernel32;
}

// The codes a file system walk or restore meets; others are shown as numbers.
const WIN32_ERRORS: Record<number, string> = {
  2: 'ERROR_FILE_NOT_FOUND',
  3: 'ERROR_PATH_NOT_FOUND',
  5: 'ERROR_ACCESS_DENIED',
  32: 'ERROR_SHARING_VIOLATION',
  87: 'ERROR_INVALID_PARAMETER',
  123: 'ERROR_INVALID_NAME',
};

/** Why the last kernel32 call failed. Best effort: the runtime may reset the code after the call. */
function lastError(api: Kernel32): string {
  const code = api.getLastError();
  if (code === 0) return 'Windows gave no error code';
  return WIN32_ERRORS[code] ?? `Windows error ${code}`;
}

/**
 * The path as kernel32 should get it: Node's own file calls use the \\?\ form, which lifts the
 * MAX_PATH limit and stops Windows from trimming trailing dots and spaces, so these calls reach
 * exactly the file that lstat, open and rename reached.
 */
function win32Path(osPath: string): string {
  return path.win32.toNamespacedPath(osPath);
}

/**
 * The restorable Windows attributes of `osPath` (the entry itself, not a symlink's target), 0 off
 * Windows. Throws an Error saying why when Windows cannot read them: the caller warns and goes on.
 */
export function readWinAttributes(osPath: string): number {
  if (!IS_WINDOWS) return 0;
  const api = bind();
  const bits = api.getFileAttributes(win32Path(osPath));
  if (bits === INVALID_FILE_ATTRIBUTES) throw new Error(`GetFileAttributesW failed: ${lastError(api)}`);
  return restorableWinAttributes(bits);
}

/**
 * Set the restorable bits of `bits` on `osPath` (others dropped) and clear the other restorable
 * ones; nothing off Windows. Throws an Error saying why when Windows refuses.
 */
export function writeWinAttributes(osPath: string, bits: number): void {
  if (!IS_WINDOWS) return;
  const api = bind();
  const kept = restorableWinAttributes(bits);
  if (api.setFileAttributes(win32Path(osPath), kept === 0 ? FILE_ATTRIBUTE_NORMAL : kept) === 0) {
    throw new Error(`SetFileAttributesW failed: ${lastError(api)}`);
  }
}
