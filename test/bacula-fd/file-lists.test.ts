/**
 * FileSet entries the client expands (`F |command`, `F <file`), on real processes and files: each
 * output or list line is a name, %-codes are the FD's, and a failing program or a missing list
 * fails with bacula-fd's words.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandFileLists } from '../../src/bacula-fd/director/file-lists.js';
import { parseFileSet } from '../../src/bacula-fd/fileset/fileset.js';
import { tempDir } from '../helpers/native.js';

const context = { codes: { i: '42', c: 'agentfd-fd' }, isCancelled: () => false };

describe('client-side FileSet lists', () => {
  it('replaces a |command entry by the lines it prints and a <file entry by the lines of the file, includes and excludes alike', async () => {
    const dir = tempDir('file-lists');
    const list = path.join(dir, 'list.txt');
    writeFileSync(list, '/srv/from-list-1  \n\n/srv/from-list-2\n');
    const excludeList = path.join(dir, 'exclude.txt');
    writeFileSync(excludeList, '/srv/skip-*\n');
    const fileset = parseFileSet([
      'I', 'O M', 'N',
      'F /srv/plain',
      `F |/bin/sh -c "echo /srv/job-%i; echo '/srv/with space'"`,
      `F <${list}`,
      'N', 'N',
      'E', `F <${excludeList}`, 'N', 'N',
    ]);
    await expandFileLists(fileset, context);
    expect(fileset.includes[0]!.files).toEqual(['/srv/plain', '/srv/job-42', '/srv/with space', '/srv/from-list-1', '/srv/from-list-2']);
    expect(fileset.excludeBlocks?.[0]?.files ?? fileset.excludes).toEqual(['/srv/skip-*']);
  });

  it("fails with the program's status when it fails, and names a list file that cannot be read", async () => {
    const failing = parseFileSet(['I', 'O M', 'N', `F |/bin/sh -c "echo partial; exit 4"`, 'N', 'N']);
    await expect(expandFileLists(failing, context)).rejects.toThrow(/^Error running program \/bin\/sh -c "echo partial; exit 4": ERR=Child exited with code 4 \(its output: partial\)/);
    const missing = parseFileSet(['I', 'O M', 'N', 'F </nonexistent/list.txt', 'N', 'N']);
    await expect(expandFileLists(missing, context)).rejects.toThrow(/^Cannot open FileSet input file: \/nonexistent\/list\.txt\. ERR=.*ENOENT/);
  });
});
