/** Types of function-lengths.mjs, for the tests that use it. */
export const JOB_FUNCTIONS: [string, string][];
export interface FunctionLength {
  file: string;
  name: string;
  line: number;
  lines: number;
}
export function functionLengths(dir: string): FunctionLength[];
