/**
 * Names are bytes (platform/byte-names.ts): every byte sequence survives the way to a string and
 * back unchanged; valid UTF-8 is the string it always was; a byte that is not UTF-8 is held as a
 * lone surrogate, reaches the system as bytes and is shown to people as \xNN.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cPath, decodeName, encodeName, fsPath, hasRawBytes, shownName } from '../../src/platform/byte-names.js';

describe('names as bytes (platform/byte-names)', () => {
  it('round-trips every byte sequence exactly: random ones, and each lone byte 0x01-0xFF', () => {
    for (let i = 0; i < 5000; i++) {
      const bytes = randomBytes(1 + (i % 40));
      expect(encodeName(decodeName(bytes)).equals(bytes)).toBe(true);
    }
    for (let b = 1; b < 256; b++) expect([...encodeName(decodeName(Buffer.of(0x61, b, 0x62)))]).toEqual([0x61, b, 0x62]);
  });

  it('round-trips the sequences UTF-8 forbids: overlong forms, encoded surrogates, past U+10FFFF, cut-off sequences', () => {
    const forbidden = [[0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98]];
    for (const seq of forbidden) {
      const bytes = Buffer.from([0x78, ...seq, 0x79]);
      const name = decodeName(bytes);
      expect(hasRawBytes(name), bytes.toString('hex')).toBe(true);
      expect(encodeName(name).equals(bytes)).toBe(true);
    }
  });

  it('leaves valid UTF-8 as it was, emoji and U+FFFD included, and sends it to the system as a string', () => {
    for (const name of ['plain.txt', 'café', '日本語/ファイル', 'smile-😀', 'replacement-\uFFFD', 'back\\slash']) {
      expect(decodeName(Buffer.from(name, 'utf8'))).toBe(name);
      expect(encodeName(name).equals(Buffer.from(name, 'utf8'))).toBe(true);
      expect(fsPath(name)).toBe(name);
      expect(cPath(name)).toBe(name);
      expect(shownName(name)).toBe(name);
    }
  });

  it('holds a Latin-1 byte as a lone surrogate, hands it to the system as bytes and shows it as \\xNN', () => {
    const latin1 = Buffer.from('latin1-\xe9.txt', 'latin1');
    const name = decodeName(latin1);
    expect(name).toBe('latin1-\uDCE9.txt');
    expect(fsPath(name)).toEqual(latin1);
    expect(cPath(name)).toEqual(Buffer.concat([latin1, Buffer.of(0)]));
    expect(shownName(name)).toBe('latin1-\\xE9.txt');
  });
});
