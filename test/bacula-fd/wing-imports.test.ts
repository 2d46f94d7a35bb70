/**
 * The File Daemon's wing (src/bacula-fd/) keeps its shape: no import circle touches it, its folders
 * only import downwards (director -> transfer -> fileset, attributes -> wire), and nothing outside
 * it but the serve command imports it (configuration and the agents sit below it). Read from the
 * real sources with scripts/check-imports.mjs, the check anyone can run by hand.
 */
import { describe, expect, it } from 'vitest';
import { findCycles, importGraph } from '../../scripts/check-imports.mjs';

const WING = 'src/bacula-fd/';
/** A folder may import only folders of a lower rank (fileset and attributes know nothing of each other). */
const RANK: Record<string, number> = { wire: 0, fileset: 1, attributes: 1, transfer: 2, director: 3 };
const folderOf = (file: string) => file.slice(WING.length).split('/')[0]!;

describe('the bacula-fd wing', () => {
  const graph = importGraph('src');
  const wing = [...graph.keys()].filter((file) => file.startsWith(WING));

  it('is in its five folders', () => {
    expect(wing.length).toBeGreaterThan(20);
    expect(new Set(wing.map(folderOf))).toEqual(new Set(Object.keys(RANK)));
  });

  it('has no module in an import circle', () => {
    const circles = findCycles(graph).filter((c) => c.members.some((m) => m.startsWith(WING)));
    expect(circles.map((c) => c.cycle.join(' -> '))).toEqual([]);
  });

  it('imports only downwards between its folders', () => {
    const upward = wing.flatMap((file) => (graph.get(file) ?? [])
      .filter((e) => e.to.startsWith(WING) && folderOf(e.to) !== folderOf(file) && RANK[folderOf(e.to)]! >= RANK[folderOf(file)]!)
      .map((e) => `${file} -> ${e.to}`));
    expect(upward).toEqual([]);
  });

  it('is imported from outside only by the serve command', () => {
    const inbound = [...graph].flatMap(([file, edges]) => file.startsWith(WING) ? [] : edges.filter((e) => e.to.startsWith(WING)).map(() => file));
    expect(new Set(inbound)).toEqual(new Set(['src/cli/commands/serve.ts']));
  });
});
