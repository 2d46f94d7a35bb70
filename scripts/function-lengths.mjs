#!/usr/bin/env node
/**
 * How long the functions of src/ are: `node scripts/function-lengths.mjs [LINES]` prints every
 * function, method or arrow function of LINES lines or more (default 80), longest first. The
 * architecture test holds the job functions (JOB_FUNCTIONS) under 80 lines: each reads as a list
 * of stages, and a stage that grows gets its own module and tests.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The job functions, by file and name, that must read as a list of stages (under 80 lines). */
export const JOB_FUNCTIONS = [
  ['src/jobs/backup.ts', 'runBackup'],
  ['src/jobs/restore.ts', 'runRestore'],
  ['src/jobs/scan.ts', 'runScan'],
  ['src/jobs/verify.ts', 'runVerify'],
  ['src/bacula-fd/transfer/backup.ts', 'sendBackup'],
  ['src/bacula-fd/transfer/restore.ts', 'receiveRestore'],
  ['src/bacula-fd/director/director.ts', 'dispatch'],
  ['src/bacula-fd/director/director.ts', 'backup'],
  ['src/bacula-fd/director/director.ts', 'restore'],
  ['src/bacula-fd/transfer/verify.ts', 'runVerify'],
  ['src/bacula-fd/director/director.ts', 'verify'],
];

/** Every function with a body under `dir`: its file ('/'-separated, from the current directory), name, first line and length in lines. */
export function functionLengths(dir) {
  const out = [];
  const visitFile = (file) => {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      const isFunction = ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isArrowFunction(node) || ts.isFunctionExpression(node);
      if (isFunction && node.body) {
        const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
        const last = source.getLineAndCharacterOfPosition(node.end).line;
        out.push({ file: file.split(path.sep).join('/'), name: nameOf(node), line: first + 1, lines: last - first + 1 });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  };
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) visitFile(p);
    }
  };
  walk(dir);
  return out.sort((a, b) => b.lines - a.lines);
}

/** A function's name, or the name it is bound to (a variable, a property), or '<anonymous>'. */
function nameOf(node) {
  if (node.name) return node.name.getText();
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))) return parent.name.getText();
  return '<anonymous>';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const limit = Number(process.argv[2] ?? 80);
  const long = functionLengths('src').filter((f) => f.lines >= limit);
  for (const f of long) console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}`);
  console.log(`${long.length} functions of ${limit} lines or more`);
}
