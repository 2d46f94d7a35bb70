/** The fileset answers agents' fileset_check from the job's include and exclude globs. */
import { describe, expect, it } from 'vitest';
import { buildFileset } from '../../src/agents/fileset.js';

describe('fileset', () => {
  it('includes everything without rules', () => {
    const check = buildFileset();
    expect(check('/@exchange/SG1/DB1.edb')).toBe(true);
    expect(check('/')).toBe(true);
  });

  it('includes what an include glob matches, and the directories on the way to it', () => {
    const check = buildFileset(['/srv/www/**/*.html']);
    expect(check('/srv/www/a/index.html')).toBe(true);
    expect(check('/srv/www/a/style.css')).toBe(false);
    expect(check('/srv')).toBe(true);
    expect(check('/srv/www')).toBe(true);
    expect(check('/etc')).toBe(false);
    expect(check('/etc/passwd')).toBe(false);
  });

  it('lets an exclude win over an include', () => {
    const check = buildFileset(['/@exchange/**'], ['/@exchange/SG2/**', '**/*.stm']);
    expect(check('/@exchange/SG1/DB1.edb')).toBe(true);
    expect(check('/@exchange/SG1/DB1.stm')).toBe(false);
    expect(check('/@exchange/SG2/DB1.edb')).toBe(false);
    expect(check('/@mssql/x.bak')).toBe(false);
  });

  it('matches dot files', () => {
    expect(buildFileset([], ['**/.cache/**'])('/home/a/.cache/x')).toBe(false);
    expect(buildFileset(['/home/**'])('/home/a/.profile')).toBe(true);
  });
});
