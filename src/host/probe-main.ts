/**
 * The plugin probe: a child process that loads each library of the plugin directory, asks its
 * Name(), negotiates, and reports what it found as JSON lines on stdout. Loading runs the library's
 * initialisation code and Name(); done here, a library that crashes doing so takes only the probe
 * down, and the daemon refuses that library and probes the rest again.
 *
 * Each result line is written synchronously, after a "loading" line, so that the daemon knows
 * which library was being loaded if the probe dies.
 */
import { writeSync } from 'node:fs';
import { examineLibrary } from '../agents/descriptor.js';
import { AgentLoadError, messageOf } from '../errors.js';

const { candidates, preload } = JSON.parse(process.argv[2] ?? '{}') as { candidates: { file: string; dirProblem: string | null }[]; preload?: string[] };
const line = (value: unknown) => writeSync(1, `${JSON.stringify(value)}\n`);

for (const { file, dirProblem } of candidates) {
  line({ loading: file });
  try {
    line({ file, agent: examineLibrary(file, dirProblem, preload) });
  } catch (error) {
    const code = error instanceof AgentLoadError ? error.code : 'E_LOAD_FAILED';
    const reason = error instanceof AgentLoadError ? error.message : `${file}: cannot be loaded: ${messageOf(error)}`;
    line({ file, refused: { file, code, reason } });
  }
}
line({ done: true });
