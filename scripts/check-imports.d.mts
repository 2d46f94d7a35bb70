/** Types of check-imports.mjs, for the tests that use its graph. */
export interface ImportEdge {
  /** The imported file, relative to the repository (e.g. 'src/errors.ts'). */
  to: string;
  /** `import type` (or only type names): gone from the compiled code. */
  typeOnly: boolean;
}
export type ImportGraph = Map<string, ImportEdge[]>;
export interface ImportCircle {
  /** The modules that import one another, sorted. */
  members: string[];
  /** One circle through them, first module repeated at the end. */
  cycle: string[];
}
export function importGraph(dir?: string, base?: string): ImportGraph;
export function findCycles(graph: ImportGraph, options?: { runtimeOnly?: boolean }): ImportCircle[];
