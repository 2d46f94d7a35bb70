/** Types of check-layers.mjs, for the tests that use it. */
import type { ImportGraph } from './check-imports.mjs';
export const LAYERS: string[][];
export function layerOf(file: string): number;
export interface UpwardImport {
  from: string;
  to: string;
  fromLayer: number;
  toLayer: number;
}
export function layerProblems(graph: ImportGraph): { unplaced: string[]; upward: UpwardImport[] };
