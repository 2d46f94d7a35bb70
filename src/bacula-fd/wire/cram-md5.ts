/**
 * Bacula's CRAM-MD5 (lib/cram-md5.c). Each side challenges the other with a text challenge and
 * expects base64(HMAC-MD5(secret, challenge)) back, written in Bacula's own base64.
 *
 * The secret differs per link: Director<->FD uses the hex MD5 of the configured password (Bacula
 * hashes every `Password =` when it reads its config, so the hash is the actual key), while FD<->SD
 * uses the per-job session key from `Authorization=` as is.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { baculaBase64FromBytes } from './base64.js';

/** The DIR<->FD secret: lowercase hex MD5 of the password as written in the configuration. */
export function directorKey(password: string): string {
  return createHash('md5').update(password, 'utf8').digest('hex');
}

function hmac(challenge: string, secret: string): Buffer {
  return createHmac('md5', Buffer.from(secret, 'utf8')).update(challenge, 'utf8').digest();
}

/** The response a 9.6 daemon sends to `auth cram-md5 <challenge> ...` (the non-compatible encoding). */
export function cramResponse(challenge: string, secret: string): string {
  return baculaBase64FromBytes(hmac(challenge, secret), false);
}

/** Compares without an early exit, so timing does not reveal how much of a guess was right. */
function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  // A valid response is always 22 characters, so its length is no secret worth hiding.
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * Whether `response` answers our `challenge`. Like Bacula's challenger it accepts both the
 * compatible and the non-compatible encodings, since a peer may have been built either way. A
 * trailing NUL (the responder sends one) is ignored, as C's strcmp would.
 */
export function cramAccepts(challenge: string, secret: string, response: string): boolean {
  const got = response.replace(/\0+$/, '');
  const digest = hmac(challenge, secret);
  // Evaluate both comparisons so the time spent does not say which encoding came close.
  const compatible = sameText(got, baculaBase64FromBytes(digest, true));
  const classic = sameText(got, baculaBase64FromBytes(digest, false));
  return compatible || classic;
}

/**
 * A fresh challenge "<random.unixtime@host>". The random part must be unpredictable (a replayed
 * challenge would let a recorded response be reused), hence crypto rather than Math.random.
 */
export function makeChallenge(hostName: string): string {
  // The peer parses the challenge with sscanf("%s") into a 254-byte buffer: whitespace would cut it
  // short and a long name would be refused as "Msg too long", so catch both here with a clear message.
  if (hostName.length === 0 || /[\s<>]/.test(hostName)) {
    throw new RangeError(`cannot use ${JSON.stringify(hostName)} in a CRAM-MD5 challenge: it must be non-empty with no spaces or angle brackets`);
  }
  if (Buffer.byteLength(hostName, 'utf8') > 200) {
    throw new RangeError(`cannot use a ${Buffer.byteLength(hostName, 'utf8')}-byte name in a CRAM-MD5 challenge (at most 200)`);
  }
  const random = randomBytes(4).readUInt32BE(0);
  const now = Math.floor(Date.now() / 1000) >>> 0; // C prints (uint32_t)time(NULL)
  return `<${random}.${now}@${hostName}>`;
}
