/**
 * The repository stands alone: no file names a path of the machine it was written on, and no
 * comment sends the reader to a document that is not in the repository (a research note, a design
 * brief): what a reader needs is written where it is needed.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/native.js';

/** Build output, installed packages and benchmark results are not the repository's text. */
const SKIP = new Set(['node_modules', 'dist', 'build', '.git', 'results']);
const TEXT = /\.(ts|mjs|js|c|cc|h|gyp|gypi|sh|md|toml|json)$|^run$/;

function textFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (SKIP.has(entry.name)) return [];
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return textFiles(file);
    return entry.isFile() && TEXT.test(entry.name) && entry.name !== 'package-lock.json' ? [file] : [];
  });
}

/** (Written so that this file's own text does not match them.) */
const FORBIDDEN: [what: string, pattern: RegExp][] = [
  ['a path of the machine agentfd was developed on', new RegExp(`/${'work'}/(shared|main|wt)\\b`)],
  ['a research note outside the repository', new RegExp(String.raw`\bresearch/[\w-]+\.md\b`)],
  ['the design brief outside the repository', new RegExp(String.raw`\bDESIGN` + String.raw`\.md\b`)],
];

describe('the repository stands alone', () => {
  it('names no path of the development machine and no document outside the repository', () => {
    const found: string[] = [];
    for (const file of textFiles(ROOT)) {
      readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        for (const [what, pattern] of FORBIDDEN) if (pattern.test(line)) found.push(`${path.relative(ROOT, file)}:${i + 1}: ${what}: ${line.trim()}`);
      });
    }
    expect(found).toEqual([]);
  });
});
