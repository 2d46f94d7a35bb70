/**
 * The header is the law: every code agentfd refuses a library with (what `agentfd plugins list`
 * prints) is listed with its condition in binding/include/agentfd_agent.h, "Why a library is
 * refused", and the header lists no code agentfd cannot give. Both sides are read as text: the
 * header's list, and every 'E_...' literal in the sources that make refusals (the files that use
 * AgentLoadError, RefusalCode or RefusedLibrary), less the codes of other errors (AgentfdError).
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/native.js';

const HEADER = path.join(ROOT, 'binding', 'include', 'agentfd_agent.h');

/** The codes of the header's "Why a library is refused" section, in its order. */
function headerCodes(): string[] {
  const text = readFileSync(HEADER, 'utf8');
  const start = text.indexOf(' * Why a library is refused');
  expect(start, 'the header has a "Why a library is refused" section').toBeGreaterThan(0);
  // The section ends at the next rule line after its own heading rule.
  const body = text.slice(start).split(/^ \* -{20,}$/m)[1]!;
  return [...body.matchAll(/^ \* {3}(E_[A-Z_]+) /gm)].map((m) => m[1]!);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Every refusal code the sources can give, with the files that name it. */
function sourceCodes(): Map<string, string[]> {
  const codes = new Map<string, string[]>();
  for (const file of sourceFiles(path.join(ROOT, 'src'))) {
    // Comments say many things (errors.ts mentions RefusalCode in one): only code counts.
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    if (!/new AgentLoadError\(|instanceof AgentLoadError|\bRefusalCode\b|\bRefusedLibrary\b/.test(code)) continue;
    // Other errors of these files (an unknown agent, a missing plugin directory) are AgentfdErrors.
    const others = new Set([...code.matchAll(/new AgentfdError\(\s*'(E_[A-Z_]+)'/g)].map((m) => m[1]!));
    for (const [, name] of code.matchAll(/'(E_[A-Z_]+)'/g)) {
      if (others.has(name!)) continue;
      codes.set(name!, [...(codes.get(name!) ?? []), path.relative(ROOT, file)]);
    }
  }
  return codes;
}

describe('the refusal codes of agentfd_agent.h', () => {
  it('every refusal code in src/ is explained in agentfd_agent.h', () => {
    const header = new Set(headerCodes());
    const missing = [...sourceCodes()].filter(([name]) => !header.has(name)).map(([name, files]) => `${name} (${[...new Set(files)].join(', ')})`);
    expect(missing, 'add each to "Why a library is refused" in agentfd_agent.h, with the condition that gives it').toEqual([]);
  });

  it('every refusal code agentfd_agent.h lists is one agentfd gives, listed once', () => {
    const listed = headerCodes();
    const source = sourceCodes();
    expect(listed.length).toBeGreaterThanOrEqual(10);
    expect(listed.filter((name) => !source.has(name)), 'codes the sources never give').toEqual([]);
    expect(listed.filter((name, i) => listed.indexOf(name) !== i), 'codes listed twice').toEqual([]);
  });
});
