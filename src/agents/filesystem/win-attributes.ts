/**
 * Windows file attributes (FILE_ATTRIBUTE_*) that have no POSIX twin: hidden, system, archive,
 * not-content-indexed, and read-only (which Node only half maps, through chmod's write bit).
 * Read by the backup walk (AgentFileInfo.winAttributes) and set again by a Windows restore, through
 * kernel32's GetFileAttributesW/SetFileAttributesW (src/platform/kernel32.ts).
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
import { IS_WINDOWS } from '../../platform/os.js';
import {
  FILE_ATTRIBUTE_ARCHIVE,
  FILE_ATTRIBUTE_HIDDEN,
  FILE_ATTRIBUTE_NOT_CONTENT_INDEXED,
  FILE_ATTRIBUTE_READONLY,
  FILE_ATTRIBUTE_SYSTEM,
  INVALID_FILE_ATTRIBUTES,
  getFileAttributes,
  lastWindowsError,
  setFileAttributes,
} from '../../platform/kernel32.js';

export { FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_NOT_CONTENT_INDEXED, FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_SYSTEM };

export const RESTORABLE_WIN_ATTRIBUTES =
  FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED;

/** The bits of `bits` that a restore sets again (the others are dropped; see the module comment). */
export function restorableWinAttributes(bits: number): number {
  return (bits & RESTORABLE_WIN_ATTRIBUTES) >>> 0;
}

/**
 * The restorable Windows attributes of `osPath` (the entry itself, not a symlink's target), 0 off
 * Windows. Throws an Error saying why when Windows cannot read them: the caller warns and goes on.
 */
export function readWinAttributes(osPath: string): number {
  if (!IS_WINDOWS) return 0;
  const bits = getFileAttributes(osPath);
  if (bits === INVALID_FILE_ATTRIBUTES) throw lastWindowsError('GetFileAttributesW', osPath);
  return restorableWinAttributes(bits);
}

/**
 * Set the restorable bits of `bits` on `osPath` (others dropped) and clear the other restorable
 * ones; nothing off Windows. Throws an Error saying why when Windows refuses.
 */
export function writeWinAttributes(osPath: string, bits: number): void {
  if (!IS_WINDOWS) return;
  setFileAttributes(osPath, restorableWinAttributes(bits));
}
