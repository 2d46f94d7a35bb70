#!/usr/bin/env node
/**
 * The import graph of src/ and its circles: `node scripts/check-imports.mjs [dir]` prints every
 * group of modules that import one another in a circle (with one circle of each) and exits 1 if
 * there is one. `--runtime` leaves out `import type` edges, which vanish from the compiled code.
 *
 * Imports are read with the TypeScript compiler's parser (already a dependency), so multi-line
 * imports, `export ... from` and `import()` count; only relative specifiers are followed (packages
 * and node: modules are not part of the graph). importGraph() is exported for other checks (layers).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Every .ts file under `dir`, as paths relative to `base`. */
function tsFiles(dir, base) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(full, base);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path.relative(base, full)] : [];
  });
}

/** The .ts file a relative specifier names (NodeNext: written with .js), or null if none. */
function resolve(fromFile, specifier, base) {
  const target = path.resolve(base, path.dirname(fromFile), specifier);
  const candidates = [target.replace(/\.js$/, '.ts'), `${target}.ts`, path.join(target, 'index.ts')];
  const found = candidates.find((file) => file.endsWith('.ts') && existsSync(file));
  return found === undefined ? null : path.relative(base, found);
}

/** The relative imports of one source text: specifier, and whether only types are imported. */
function importsOf(file, text) {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found = [];
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = ts.isImportDeclaration(node) ? node.importClause : undefined;
      const named = clause?.namedBindings && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings.elements : null;
      const typeOnly = ts.isImportDeclaration(node)
        ? Boolean(clause && (clause.isTypeOnly || (!clause.name && named !== null && named.length > 0 && named.every((e) => e.isTypeOnly))))
        : node.isTypeOnly;
      found.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      found.push({ specifier: node.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.filter((i) => i.specifier.startsWith('.'));
}

/**
 * The import graph of the .ts files under `dir`: file -> [{ to, typeOnly }], paths relative to
 * `base` (the repository by default), e.g. 'src/bacula-fd/wire/bsock.ts'.
 */
export function importGraph(dir = 'src', base = process.cwd()) {
  const graph = new Map();
  for (const file of tsFiles(path.resolve(base, dir), base).sort()) {
    const edges = [];
    for (const { specifier, typeOnly } of importsOf(file, readFileSync(path.join(base, file), 'utf8'))) {
      const to = resolve(file, specifier, base);
      if (to !== null) edges.push({ to, typeOnly });
    }
    graph.set(file, edges);
  }
  return graph;
}

/** The strongly connected groups of more than one module (Tarjan), each with one circle through it. */
export function findCycles(graph, { runtimeOnly = false } = {}) {
  const next = (file) => (graph.get(file) ?? []).filter((e) => !(runtimeOnly && e.typeOnly)).map((e) => e.to);
  const index = new Map(), low = new Map(), stack = [], onStack = new Set(), groups = [];
  let counter = 0;
  const connect = (file) => {
    index.set(file, counter); low.set(file, counter); counter++;
    stack.push(file); onStack.add(file);
    for (const to of next(file)) {
      if (!index.has(to)) { connect(to); low.set(file, Math.min(low.get(file), low.get(to))); }
      else if (onStack.has(to)) low.set(file, Math.min(low.get(file), index.get(to)));
    }
    if (low.get(file) !== index.get(file)) return;
    const group = [];
    let member;
    do { member = stack.pop(); onStack.delete(member); group.push(member); } while (member !== file);
    if (group.length > 1 || next(file).includes(file)) groups.push(group.sort());
  };
  for (const file of graph.keys()) if (!index.has(file)) connect(file);
  return groups.map((members) => ({ members, cycle: shortestCycle(members[0], next, new Set(members)) }));
}

/** The shortest way from `start` back to itself inside `within` (breadth first). */
function shortestCycle(start, next, within) {
  const from = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift();
    for (const to of next(file)) {
      if (to === start) {
        const cycle = [start];
        for (let at = file; at !== start; at = from.get(at)) cycle.splice(1, 0, at);
        return [...cycle, start];
      }
      if (within.has(to) && !from.has(to)) { from.set(to, file); queue.push(to); }
    }
  }
  return [start, start];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const runtimeOnly = args.includes('--runtime');
  const dir = args.find((a) => !a.startsWith('--')) ?? 'src';
  const graph = importGraph(dir);
  const cycles = findCycles(graph, { runtimeOnly });
  for (const { members, cycle } of cycles) {
    console.log(`circle among ${members.length} modules: ${members.join(', ')}\n  e.g. ${cycle.join(' -> ')}`);
  }
  const edges = [...graph.values()].reduce((n, e) => n + e.length, 0);
  console.log(`${graph.size} modules, ${edges} imports${runtimeOnly ? ' (type-only left out)' : ''}: ${cycles.length === 0 ? 'no circle' : `${cycles.length} circle group(s)`}`);
  process.exitCode = cycles.length === 0 ? 0 : 1;
}
