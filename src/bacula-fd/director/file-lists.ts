/**
 * FileSet entries the client expands itself (filed/job.c, add_file_to_fileset): `File =
 * "\\|command"` reaches the FD as `F |command`, run without a shell (Bacula's word splitting, the
 * FD's %-codes) with each line it prints being a file name; `File = "\\<file"` reaches it as
 * `F <file`, a file on the client read one name per line. Include and Exclude entries alike.
 * A program that fails or a list that cannot be read fails the job, as in bacula-fd.
 */
import { readFile } from 'node:fs/promises';
import { AgentfdError, messageOf } from '../../errors.js';
import type { FileSet } from '../fileset/fileset.js';
import { expandCodes, runCommand } from './run-scripts.js';

export interface ListContext {
  /** The FD's %-codes for the job (run-scripts.ts jobCodes). */
  codes: Readonly<Record<string, string>>;
  isCancelled: () => boolean;
}

/** Names, one per line, without trailing white space (strip_trailing_junk). An empty line names
 * nothing: bacula-fd would try to stat "" and warn; agentfd leaves it out. */
function names(lines: string[]): string[] {
  return lines.map((line) => line.replace(/\s+$/, '')).filter((line) => line !== '');
}

/** One entry: itself, or the names its program prints or its list file holds. */
async function expandEntry(entry: string, context: ListContext): Promise<string[]> {
  if (entry.startsWith('|')) {
    const command = expandCodes(entry.slice(1), context.codes);
    const lines: string[] = [];
    const result = await runCommand(command, (line) => void lines.push(line), context.isCancelled);
    if (result.status !== 0) {
      throw new AgentfdError('E_BACULA_FILESET', `Error running program ${command}: ERR=${result.text} (its output: ${lines.slice(0, 3).join(' | ') || 'none'})`);
    }
    return names(lines);
  }
  if (entry.startsWith('<')) {
    const file = entry.slice(1);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new AgentfdError('E_BACULA_FILESET', `Cannot open FileSet input file: ${file}. ERR=${messageOf(error)}`);
    }
    return names(text.split('\n'));
  }
  return [entry];
}

async function expandAll(entries: string[], context: ListContext): Promise<string[]> {
  const out: string[] = [];
  for (const entry of entries) out.push(...(await expandEntry(entry, context)));
  return out;
}

/** Replaces every `|command` and `<file` entry of the FileSet by the names it gives, in place. */
export async function expandFileLists(fileset: FileSet, context: ListContext): Promise<void> {
  const needs = (list: string[]) => list.some((e) => e.startsWith('|') || e.startsWith('<'));
  for (const block of fileset.includes) if (needs(block.files)) block.files = await expandAll(block.files, context);
  for (const block of fileset.excludeBlocks ?? []) if (needs(block.files)) block.files = await expandAll(block.files, context);
  if (needs(fileset.excludes)) fileset.excludes = await expandAll(fileset.excludes, context);
}
