/**
 * Names are bytes: a file name on Linux is any sequence of bytes but '/' and NUL, in no particular
 * encoding (a Latin-1 "é" is the single byte 0xE9). agentfd holds names as JavaScript strings, so
 * it needs a lossless way between the two: valid UTF-8 decodes as usual (so every ordinary name is
 * the string it always was), and each byte that is not part of valid UTF-8 becomes the lone
 * surrogate U+DC80 + (byte - 0x80): Python's "surrogateescape" (PEP 383). Valid UTF-8 never yields
 * a lone surrogate, so the way back is exact: encodeName(decodeName(bytes)) equals bytes, always.
 *
 * Node's own calls encode a string path as UTF-8 and would turn those surrogates into U+FFFD, so a
 * name holding one is handed to them as bytes (fsPath), and to C as NUL-terminated bytes (cPath).
 * For reading by people, shownName writes each such byte as \xNN.
 */
import { isUtf8 } from 'node:buffer';

/** A lone surrogate standing for one raw byte (the 'u' flag: a surrogate pair is one code point, not matched). */
const ESCAPED_BYTE = /[\uDC80-\uDCFF]/u;

/** The string of a name's bytes: UTF-8 where valid, each other byte as U+DC80 + (byte - 0x80). */
export function decodeName(bytes: Uint8Array): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(buffer)) return buffer.toString('utf8');
  let out = '';
  let plainFrom = 0; // start of the valid run not yet copied
  let at = 0;
  while (at < buffer.length) {
    const length = validSequenceAt(buffer, at);
    if (length > 0) {
      at += length;
      continue;
    }
    out += buffer.toString('utf8', plainFrom, at) + String.fromCharCode(0xdc00 + buffer[at]!);
    at += 1;
    plainFrom = at;
  }
  return out + buffer.toString('utf8', plainFrom, at);
}

/** The bytes of a name decodeName made (or any string without lone surrogates: its UTF-8). */
export function encodeName(name: string): Buffer {
  if (!ESCAPED_BYTE.test(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = 0; at < name.length; at++) {
    const unit = name.charCodeAt(at);
    if (unit >= 0xd800 && unit <= 0xdbff && at + 1 < name.length) {
      const next = name.charCodeAt(at + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        at++; // a pair: one code point, encoded with its run
        continue;
      }
    }
    if (unit >= 0xdc80 && unit <= 0xdcff) {
      parts.push(Buffer.from(name.slice(from, at), 'utf8'), Buffer.of(unit - 0xdc00));
      from = at + 1;
    }
  }
  parts.push(Buffer.from(name.slice(from), 'utf8'));
  return Buffer.concat(parts);
}

/** Whether `name` holds a byte that is not UTF-8 (and so must reach the system as bytes). */
export function hasRawBytes(name: string): boolean {
  return ESCAPED_BYTE.test(name);
}

/** A path as Node's fs calls take it: a string, or the bytes of a name that is not UTF-8. */
export type FsPath = string | Buffer;

/** `name` for Node's fs calls: itself, or its bytes when it holds a byte that is not UTF-8. */
export function fsPath(name: string): FsPath {
  return hasRawBytes(name) ? encodeName(name) : name;
}

/** A path Node's calls gave or take, as a name string (bytes that are not UTF-8 as decodeName holds them). */
export function pathText(p: FsPath): string {
  return typeof p === 'string' ? p : decodeName(p);
}

/** `name` for a C `const char *` (koffi): itself, or its bytes and a NUL. */
export function cPath(name: string): string | Buffer {
  return hasRawBytes(name) ? Buffer.concat([encodeName(name), Buffer.of(0)]) : name;
}

/** `name` for people: each byte that is not UTF-8 written as \xNN. */
export function shownName(name: string): string {
  return hasRawBytes(name) ? name.replace(/[\uDC80-\uDCFF]/gu, (c) => `\\x${(c.charCodeAt(0) - 0xdc00).toString(16).toUpperCase()}`) : name;
}

/**
 * The name a person wrote as shownName shows it: each \xNN of a byte 0x80-0xFF is that raw byte
 * again (a pattern typed on a command line, where such a byte cannot be typed as itself).
 */
export function unescapeBytes(text: string): string {
  return text.replace(/\\x([89A-Fa-f][0-9A-Fa-f])/g, (_m, hex: string) => String.fromCharCode(0xdc00 + Number.parseInt(hex, 16)));
}

/** The length of the valid UTF-8 sequence starting at `at` (RFC 3629: no overlong, no surrogate, at most U+10FFFF), or 0. */
function validSequenceAt(b: Buffer, at: number): number {
  const first = b[at]!;
  if (first < 0x80) return 1;
  const cont = (i: number, low = 0x80, high = 0xbf) => at + i < b.length && b[at + i]! >= low && b[at + i]! <= high;
  if (first >= 0xc2 && first <= 0xdf) return cont(1) ? 2 : 0;
  if (first === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((first >= 0xe1 && first <= 0xec) || first === 0xee || first === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (first === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (first === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (first >= 0xf1 && first <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (first === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
