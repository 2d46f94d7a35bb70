/**
 * File names in the catalog, byte for byte. A name that is not UTF-8 is held in JavaScript with
 * each such byte as a lone surrogate (platform/byte-names.ts). better-sqlite3 stores a string as
 * the UTF-8 form of its UTF-16 code units, a lone surrogate as the three bytes ED B2..B3 xx
 * (generalised UTF-8, "WTF-8"): distinct for every string, so equality, ORDER BY and indexes hold;
 * but reading it back decodes those bytes as invalid UTF-8, to U+FFFD. So a name read back with a
 * U+FFFD in it is read again as bytes (CAST AS BLOB) and decoded here, surrogates and all.
 */

/** The string better-sqlite3 stored as `bytes` (WTF-8: UTF-8, surrogates as ED A0..BF xx). */
export function decodeStoredText(bytes: Buffer): string {
  let out = '';
  let from = 0;
  for (let at = 0; at + 2 < bytes.length; at++) {
    const second = bytes[at + 1]!;
    // ED is always a lead byte; ED A0..BF xx is a surrogate, which valid UTF-8 never has.
    if (bytes[at] !== 0xed || second < 0xa0 || second > 0xbf) continue;
    out += bytes.toString('utf8', from, at) + String.fromCharCode(0xd000 | ((second & 0x3f) << 6) | (bytes[at + 2]! & 0x3f));
    at += 2;
    from = at + 1;
  }
  return out + bytes.toString('utf8', from);
}

/** Whether a name read back may have lost bytes (it holds U+FFFD), and must be read as bytes. */
export function mayHaveLostBytes(text: string | null): boolean {
  return text !== null && text.includes('\uFFFD');
}
