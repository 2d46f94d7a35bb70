import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { STREAM } from '../../../src/bacula-fd/attributes/lstat.js';
import { attributesMessage, digestMessage, recordFields } from '../../../src/bacula-fd/transfer/verify/director-records.js';

describe('the records a Verify job sends the Director', () => {
  it('an attributes message is what bacula-fd 9.6 sent for a symlink (seen in the lab): opts, name, LStat, target', () => {
    const lstat = 'P4A IMOA KH/ B A A A F BAA A BrFy/b BrFy/S BrFy/S A A A';
    const message = attributesMessage(2, 'VVpins5', Buffer.from('/tmp/vlab/vdata/link'), lstat, Buffer.from('a.txt'));
    expect(message.toString('latin1')).toBe(`2 1 VVpins5 /tmp/vlab/vdata/link\0${lstat}\0a.txt\0`);
  });

  it('a file without link ends with two NULs, and a name that is not UTF-8 goes as its bytes', () => {
    const name = Buffer.concat([Buffer.from('/d/latin1-'), Buffer.from([0xe9]), Buffer.from('.txt')]);
    const message = attributesMessage(1, 'V', name, 'A A', Buffer.alloc(0));
    expect(message).toEqual(Buffer.concat([Buffer.from('1 1 V '), name, Buffer.from('\0A A\0\0')]));
  });

  it('digests as bacula-fd sends them: base64 without padding, the name and JobFiles between stars', () => {
    const empty = createHash('md5').digest();
    expect(digestMessage(1, STREAM.MD5_DIGEST, empty)).toBe('1 3 1B2M2Y8AsgTpgAmY7PhCfg *MD5-1*');
    expect(digestMessage(4, STREAM.SHA1_DIGEST, createHash('sha1').digest())).toMatch(/^4 10 [A-Za-z0-9+/]{27} \*SHA1-4\*$/);
    expect(digestMessage(5, STREAM.SHA512_DIGEST, createHash('sha512').digest())).toMatch(/^5 18 [A-Za-z0-9+/]{86} \*SHA512-5\*$/);
    expect(() => digestMessage(1, STREAM.FILE_DATA, empty)).toThrow(/not a digest stream/);
  });

  it('reads an SD attributes record without decoding its name', () => {
    const name = Buffer.concat([Buffer.from('/d/x'), Buffer.from([0xff])]);
    const record = Buffer.concat([Buffer.from('6 1 '), name, Buffer.from('\0P4A IMN+\0/d/hard\0\0' + '0\0')]);
    expect(recordFields(record)).toEqual({ fileIndex: 6, type: 1, fname: name, lstat: 'P4A IMN+', link: Buffer.from('/d/hard') });
    expect(() => recordFields(Buffer.from('garbage'))).toThrow(/cannot be read/);
  });
});
