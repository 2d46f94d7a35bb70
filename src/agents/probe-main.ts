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
import { examineCandidate, type Candidate } from './descriptor.js';

const { candidates, preload } = JSON.parse(process.argv[2] ?? '{}') as { candidates: Candidate[]; preload?: string[] };
const line = (value: unknown) => writeSync(1, `${JSON.stringify(value)}\n`);

for (const candidate of candidates) {
  line({ loading: candidate.file });
  line(examineCandidate(candidate, preload));
}
line({ done: true });
