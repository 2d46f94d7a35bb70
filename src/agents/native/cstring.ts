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
  const raw: number[] = [];
  for (let i = 0; i <= maxBytes; i++) {
    const byte = koffi.decode(pointer, i, 'uint8_t') as number;
    if (byte === 0) break;
    raw.push(byte);
  }
  if (raw.length > maxBytes) return { ok: false, reason: 'too-long' };
  const bytes = Uint8Array.from(raw);
  try {
    return { ok: true, value: strictUtf8.decode(bytes), bytes: bytes.length };
  } catch {
    return { ok: false, reason: 'invalid-utf8', bytes };
  }
}

/** Show bytes that are not valid UTF-8 as a person can read them: printable ASCII, else \xNN. */
export function escapeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}
