/**
 * Reading C strings an agent hands out, without trusting them. koffi's own string decoding
 * replaces invalid UTF-8 with U+FFFD silently; a backup tool must instead refuse a name it cannot
 * represent exactly, so invalid bytes are detected and reported.
 */
import koffi from 'koffi';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export type CStringResult =
  | { ok: true; value: string; bytes: number }
  | { ok: false; reason: 'null' | 'invalid-utf8' | 'too-long'; bytes?: Uint8Array };

/**
 * Decode the NUL-terminated string at `pointer`, at most `maxBytes` long. The fast path lets koffi
 * decode it; only when the result holds U+FFFD (a replacement, or a real U+FFFD) are the bytes read
 * one by one, up to the NUL, and checked strictly.
 */
export function readCString(pointer: unknown, maxBytes: number): CStringResult {
  if (pointer === null || pointer === undefined || pointer === 0n || pointer === 0) {
    return { ok: false, reason: 'null' };
  }
  const decoded = koffi.decode(pointer, 'char', -1) as string;
  if (!decoded.includes('\uFFFD')) {
    const bytes = Buffer.byteLength(decoded, 'utf8');
    if (bytes > maxBytes) return { ok: false, reason: 'too-long' };
    return { ok: true, value: decoded, bytes };
  }
  const bytes = rawBytes(pointer, maxBytes + 1);
  if (bytes.length > maxBytes) return { ok: false, reason: 'too-long' };
  try {
    return { ok: true, value: strictUtf8.decode(bytes), bytes: bytes.length };
  } catch {
    return { ok: false, reason: 'invalid-utf8', bytes };
  }
}

/** The bytes at `pointer` up to its NUL, one by one (koffi would replace invalid UTF-8), at most `limit`. */
function rawBytes(pointer: unknown, limit: number): Uint8Array {
  const raw: number[] = [];
  for (let i = 0; i < limit; i++) {
    const byte = koffi.decode(pointer, i, 'uint8_t') as number;
    if (byte === 0) break;
    raw.push(byte);
  }
  return Uint8Array.from(raw);
}

/** Show bytes that are not valid UTF-8 as a person can read them: printable ASCII, else \xNN. */
export function escapeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The length of a valid UTF-8 sequence starting at bytes[i], or 0 when none starts there. */
function utf8SequenceAt(bytes: Uint8Array, i: number): number {
  const b = bytes[i]!;
  if (b < 0x80) return 1;
  const length = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
  if (length === 0 || i + length > bytes.length) return 0;
  try {
    strictUtf8.decode(bytes.subarray(i, i + length));
    return length;
  } catch {
    return 0; // an overlong form, a surrogate, or a continuation byte missing
  }
}

/** Text for a person from bytes that may not be UTF-8: valid sequences as they are, other bytes as \xNN. */
export function escapeInvalidUtf8(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const length = utf8SequenceAt(bytes, i);
    if (length === 0) {
      out += `\\x${bytes[i]!.toString(16).padStart(2, '0')}`;
      i++;
    } else {
      out += strictUtf8.decode(bytes.subarray(i, i + length));
      i += length;
    }
  }
  return out;
}

/** `bytes` cut to at most `max` bytes without splitting a UTF-8 sequence at the end. */
function cutAtCharacter(bytes: Uint8Array, max: number): Uint8Array {
  if (bytes.length <= max) return bytes;
  let end = max;
  // Back up over continuation bytes to the lead byte of the last sequence; drop it if it does not fit.
  let lead = end - 1;
  while (lead > 0 && lead > end - 4 && (bytes[lead]! & 0xc0) === 0x80) lead--;
  const first = bytes[lead]!;
  const want = first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
  if (lead + want > end) end = lead;
  return bytes.subarray(0, end);
}

/** At most this many bytes past the limit are counted for a truncation marker. */
const COUNT_LIMIT = 16 * 1024 * 1024;

/**
 * A C string an agent wants shown to a person (a log line): never refused. Bytes that are not
 * UTF-8 are shown as \xNN, and text beyond `maxBytes` is cut (at a character boundary) and counted
 * in `droppedBytes`. Null for a NULL pointer.
 */
export function readCStringLenient(pointer: unknown, maxBytes: number): { text: string; droppedBytes: number } | null {
  if (pointer === null || pointer === undefined || pointer === 0n || pointer === 0) return null;
  const decoded = koffi.decode(pointer, 'char', -1) as string;
  // Not UTF-8 (or a real U+FFFD): the bytes as they are, up to the NUL.
  const all = decoded.includes('\uFFFD') ? rawBytes(pointer, maxBytes + COUNT_LIMIT) : Buffer.from(decoded, 'utf8');
  const kept = cutAtCharacter(all, maxBytes);
  return { text: escapeInvalidUtf8(kept), droppedBytes: all.length - kept.length };
}
