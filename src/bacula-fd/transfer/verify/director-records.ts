/**
 * What a Verify job sends the Director per file (filed/verify.c, verify_vol.c), on the Director's
 * own connection and in another format than the SD's attribute records:
 *
 *   "<JobFiles> 1 <VerifyOpts> <fname>\0<LStat>\0<link>\0"   (link empty but for links)
 *   "<JobFiles> <digest stream> <digest> *<MD5|SHA1|SHA256|SHA512>-<JobFiles>*"
 *
 * JobFiles is the count of entries so far (0 for a deleted file's record). Names and link targets
 * are passed on as the bytes they are.
 */
import { STREAM } from '../../attributes/lstat.js';
import { baculaBase64FromBytes } from '../../wire/base64.js';

/** The fields of an SD attributes record, the name and link as bytes. */
export interface RecordFields {
  fileIndex: number;
  type: number;
  fname: Buffer;
  lstat: string;
  link: Buffer;
}

/** Splits "<FileIndex> <Type> <fname>\0<LStat>\0<link>\0..." without decoding the name. */
export function recordFields(payload: Buffer): RecordFields {
  const fields: Buffer[] = [];
  for (let start = 0; start <= payload.length && fields.length < 3; ) {
    const nul = payload.indexOf(0, start);
    fields.push(payload.subarray(start, nul < 0 ? payload.length : nul));
    if (nul < 0) break;
    start = nul + 1;
  }
  const [head, lstat, link] = fields;
  const match = head ? /^(-?\d+) (-?\d+) /.exec(head.subarray(0, 40).toString('latin1')) : null;
  if (!head || !match || lstat === undefined) {
    throw new SyntaxError(`an attributes record cannot be read: ${JSON.stringify(payload.subarray(0, 80).toString('latin1'))}`);
  }
  return { fileIndex: Number(match[1]), type: Number(match[2]), fname: head.subarray(match[0].length), lstat: lstat.toString('latin1'), link: link ?? Buffer.alloc(0) };
}

const NUL = Buffer.from([0]);

/** The attributes of one entry, as the Director's verify reads them. */
export function attributesMessage(jobFiles: number, verifyOptions: string, fname: Buffer, lstat: string, link: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${jobFiles} ${STREAM.UNIX_ATTRIBUTES} ${verifyOptions} `), fname, NUL, Buffer.from(lstat, 'latin1'), NUL, link, NUL]);
}

/** Digest streams and the names bacula-fd gives them (crypto_digest_name; stream_to_ascii's "... digest"). */
export const DIGEST_NAMES: ReadonlyMap<number, { name: string; size: number }> = new Map([
  [STREAM.MD5_DIGEST, { name: 'MD5', size: 16 }],
  [STREAM.SHA1_DIGEST, { name: 'SHA1', size: 20 }],
  [STREAM.SHA256_DIGEST, { name: 'SHA256', size: 32 }],
  [STREAM.SHA512_DIGEST, { name: 'SHA512', size: 64 }],
]);

/** A digest as Bacula writes it in text: its base64, unpadded (bin_to_base64, compatible). */
export function digestText(digest: Buffer): string {
  return baculaBase64FromBytes(digest, true);
}

/** One file's digest, after its attributes. */
export function digestMessage(jobFiles: number, stream: number, digest: Buffer): string {
  const known = DIGEST_NAMES.get(stream);
  if (!known) throw new RangeError(`stream ${stream} is not a digest stream`);
  return `${jobFiles} ${stream} ${digestText(digest.subarray(0, known.size))} *${known.name}-${jobFiles}*`;
}
