/**
 * Bacula's own base64 (lib/base64.c). It is not RFC 4648: there is no padding, integers are written
 * most significant sextet first with as few digits as needed, and the byte encoder used by
 * CRAM-MD5 has a quirk (sign-extended bytes, an unshifted last sextet) that every Bacula daemon
 * expects, so the encoders here reproduce it bit for bit rather than using Buffer's base64.
 */

const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Digit value by char code, -1 for a character outside the alphabet. */
const DIGIT_VALUE: Int8Array = (() => {
  const map = new Int8Array(128).fill(-1);
  for (let i = 0; i < DIGITS.length; i++) map[DIGITS.charCodeAt(i)] = i;
  return map;
})();

/**
 * An integer as Bacula writes LStat fields (to_base64): '-' then the magnitude for a negative value,
 * and "A" for 0 because the C loop always emits at least one digit.
 */
export function baculaBase64FromInt(value: bigint | number): string {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    // A fractional or imprecise number would silently encode the wrong field.
    throw new RangeError(`Bacula base64 needs an integer, got ${value}`);
  }
  let magnitude = BigInt(value);
  const negative = magnitude < 0n;
  if (negative) magnitude = -magnitude;
  let digits = '';
  do {
    digits = DIGITS[Number(magnitude & 63n)] + digits;
    magnitude >>= 6n;
  } while (magnitude > 0n);
  return negative ? `-${digits}` : digits;
}

/** The inverse of baculaBase64FromInt. Unlike C (which maps stray characters to 0) it refuses them. */
export function baculaBase64ToInt(text: string): bigint {
  const negative = text.startsWith('-');
  const start = negative ? 1 : 0;
  if (text.length === start) throw new SyntaxError(`empty Bacula base64 number: ${JSON.stringify(text)}`);
  let value = 0n;
  for (let i = start; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const digit = code < 128 ? (DIGIT_VALUE[code] ?? -1) : -1;
    if (digit < 0) throw new SyntaxError(`not a Bacula base64 number: ${JSON.stringify(text)}`);
    value = (value << 6n) | BigInt(digit);
  }
  return negative ? -value : value;
}

/**
 * bin_to_base64: bytes through a 32-bit shift register, six bits out at a time.
 *
 * With compatible=false (what `auth cram-md5` means, and what every 9.6 daemon sends) each byte is
 * sign-extended before being OR-ed in, so a byte >= 0x80 floods the register's upper bits with ones
 * and the following digits differ from standard base64; the last partial sextet is emitted
 * unshifted. With compatible=true bytes are unsigned and the tail is left-aligned, as in RFC base64
 * minus the padding. The register is kept as an unsigned 32-bit value (`>>> 0`) like the C uint32_t.
 */
export function baculaBase64FromBytes(bytes: Uint8Array, compatible = false): string {
  let register = 0;
  let bits = 0;
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    if (bits < 6) {
      const byte = bytes[i++] as number;
      const shiftedIn = compatible ? byte : (byte << 24) >> 24; // int8 sign extension
      register = ((register << 8) | shiftedIn) >>> 0;
      bits += 8;
    }
    out += DIGITS[(register >>> (bits - 6)) & 0x3f];
    bits -= 6;
  }
  if (bits > 0) {
    const tail = register & ((1 << bits) - 1);
    out += DIGITS[compatible ? tail << (6 - bits) : tail];
  }
  return out;
}
