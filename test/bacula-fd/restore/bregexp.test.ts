/**
 * bregexp.ts: a RegexWhere read and applied as bacula-fd 9.6 reads and applies it (lib/breg.c).
 * The expected names with a quirk (an escaped separator, a reference to a group the search does
 * not have) are what the real bacula-fd restored in the lab for the same RegexWhere.
 */
import { describe, expect, it } from 'vitest';
import { applyRegexWhere, parseRegexWhere } from '../../../src/bacula-fd/transfer/restore/bregexp.js';

const rename = (regexWhere: string, name: string) => applyRegexWhere(parseRegexWhere(regexWhere), name);

describe('RegexWhere (restore/bregexp.ts)', () => {
  it('replaces the first match of the search, and leaves a name it does not match as it is', () => {
    expect(rename('!/data!/r/rx!', '/lab/data/top/f.txt')).toBe('/lab/r/rx/top/f.txt');
    expect(rename('!/data!/r/rx!', '/lab/data/data/')).toBe('/lab/r/rx/data/');
    expect(rename('!/data!/r/rx!', '/lab/other/f.txt')).toBe('/lab/other/f.txt');
    expect(rename('!a!b!g', '/aaa')).toBe('/baa'); // g is read, and changes nothing (as in bacula-fd)
  });

  it('applies the list the Director makes of strip_prefix, add_suffix and add_prefix, in that order', () => {
    const list = '!/lab/data!!i,!([^/])$!$1.old!,!^!/lab/sp!';
    expect(rename(list, '/lab/data/deep/a/f.txt')).toBe('/lab/sp/deep/a/f.txt.old');
    expect(rename(list, '/lab/data/deep/')).toBe('/lab/sp/deep/'); // a directory's name ends in '/': no suffix
    expect(rename(list, '/lab/data/')).toBe('/lab/sp/');
    expect(rename(list, '/LAB/Data/x')).toBe('/lab/sp/x.old'); // i: the strip ignores case
    expect(rename(list, 'plain.txt')).toBe('/lab/spplain.txt.old'); // a relative symlink target under prelinks
  });

  it('fills $N and \\N with group N (empty when it matched nothing), and keeps every other character', () => {
    expect(rename('#^/(\\w+)/(.*)$#/r/$2/\\1#', '/home/a/b')).toBe('/r/a/b/home');
    expect(rename('!/data/top/(D)ata (U)pp!/qq/$21-$3-$!i', '/lab/data/top/Data Upper.TXT')).toBe('/lab/qq/U1--$er.TXT');
    expect(rename('!(x)?y!<$1>!', '/ay')).toBe('/a<>');
    expect(rename('!a!$x\\y&$0!', '/a')).toBe('/$x\\y&a');
  });

  it('reads an escaped separator as bacula-fd does: the separator goes in, and also ends the part', () => {
    expect(rename('!/data!/q2/x\\!y!', '/lab/data/top/f')).toBe('/lab/q2/x!/top/f');
    expect(parseRegexWhere('!/data!/q2/x\\!y!')).toHaveLength(1); // "y!" is read as its flags' end and a list that stops
  });

  it('takes any of bacula-fd\'s separators, and ignores what follows the last expression that reads', () => {
    for (const sep of '!:;|,&%=~/<#') expect(rename(`${sep}a${sep}b${sep}`, '/a')).toBe('/b');
    expect(rename('!a!b!,!b!c!,zz', '/a')).toBe('/c');
  });

  it('is newline-sensitive as REG_NEWLINE: . and [^...] stop at a newline, ^ and $ match beside one', () => {
    expect(rename('!a.*!X!', '/a1\nb2')).toBe('/X\nb2');
    expect(rename('!a[^/]*!X!', '/a1\nb2')).toBe('/X\nb2');
    expect(rename('!^b!X!', '/a\nb')).toBe('/a\nX');
    expect(rename('!1$!X!', '/a1\nb1')).toBe('/aX\nb1');
  });

  it('refuses a list whose first expression does not read, saying what a RegexWhere is', () => {
    for (const bad of ['', '/', 'x!a!b!', '!a!b', '!a!', '!(a!b!', '!a{2,1}!b!']) {
      expect(() => parseRegexWhere(bad)).toThrow(/^Bad where regexp\. where=.*<sep>search<sep>replace<sep>/);
    }
  });
});
