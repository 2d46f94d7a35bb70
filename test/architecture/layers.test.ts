/**
 * The shape of src/ (ARCHITECTURE.md): no import circle anywhere, every module in a layer, every
 * import pointing to its own layer or a lower one. Read from the real sources by the two scripts
 * anyone can run by hand: `node scripts/check-imports.mjs` and `node scripts/check-layers.mjs`.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findCycles, importGraph, type ImportGraph } from '../../scripts/check-imports.mjs';
import { LAYERS, layerOf, layerProblems } from '../../scripts/check-layers.mjs';

describe('the layers of src/', () => {
  const graph = importGraph('src');

  it('has no import circle, type-only imports included', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(findCycles(graph).map((c) => c.cycle.join(' -> '))).toEqual([]);
  });

  it('places every module in a layer, and every import points down (or stays in its layer)', () => {
    const { unplaced, upward } = layerProblems(graph);
    expect(unplaced).toEqual([]);
    expect(upward.map((e) => `${e.from} -> ${e.to}`)).toEqual([]);
  });

  it('has the vocabulary and the platform at the bottom, and the command line at the top', () => {
    expect(layerOf('src/platform/os.ts')).toBe(0);
    expect(layerOf('src/agents/types.ts')).toBeLessThan(layerOf('src/pipeline/records.ts'));
    expect(layerOf('src/agents/native/abi.ts')).toBeGreaterThan(layerOf('src/agents/agent.ts'));
    expect(layerOf('src/cli/main.ts')).toBe(LAYERS.length - 1);
  });

  it('reports an upward import, a module in no layer and a circle when there is one', () => {
    const bad: ImportGraph = new Map([
      ['src/volume/writer.ts', [{ to: 'src/jobs/backup.ts', typeOnly: true }]],
      ['src/jobs/backup.ts', [{ to: 'src/volume/writer.ts', typeOnly: false }]],
      ['src/somewhere-new/x.ts', []],
    ]);
    const { unplaced, upward } = layerProblems(bad);
    expect(unplaced).toEqual(['src/somewhere-new/x.ts']);
    expect(upward.map((e) => `${e.from} -> ${e.to}`)).toEqual(['src/volume/writer.ts -> src/jobs/backup.ts']);
    expect(findCycles(bad).map((c) => c.members)).toEqual([['src/jobs/backup.ts', 'src/volume/writer.ts']]);
  });

  // liblzo2 (platform/lzo.ts): serve's compression = LZO, with the library Bacula itself links.
  // The system's zlib (platform/zlib.ts): gzip_like_bacula_fd, one deflate stream reset between
  // blocks as bacula-fd's, which node:zlib cannot do (and Node bundles a zlib whose bytes differ).
  it('binds native code with koffi only in the bindings: native agents, Bacula plugins, libc, kernel32, liblzo2, zlib', () => {
    const BINDINGS = /^src\/(agents\/native\/|agents\/bacula-plugin\/|platform\/libc\.ts$|platform\/kernel32\.ts$|platform\/lzo\.ts$|platform\/zlib\.ts$)/;
    const users = [...graph.keys()].filter((file) => /from 'koffi'/.test(readFileSync(file, 'utf8')));
    expect(users.length).toBeGreaterThan(5);
    expect(users.filter((file) => !BINDINGS.test(file))).toEqual([]);
  });
});
