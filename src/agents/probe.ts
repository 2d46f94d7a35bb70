/**
 * Probing libraries in a child process (probe-main.ts). When the probe dies, the library it was
 * loading is refused with the signal or exit code, and a new probe takes the remaining ones.
 */
import { compiledScript } from '../compiled-script.js';
import { spawn } from 'node:child_process';
import type { Candidate, Examination, RefusedLibrary } from './descriptor.js';

/** How long one library may take to load and negotiate before the probe is killed. */
const PROBE_TIMEOUT_MS = 30_000;

function runProbe(candidates: Candidate[], preload: readonly string[] | undefined): Promise<{ results: Examination[]; crash: RefusedLibrary | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [compiledScript(import.meta.url, 'probe-main.js'), JSON.stringify({ candidates, preload })], { stdio: ['ignore', 'pipe', 'pipe'] });
    const results: Examination[] = [];
    let loading: string | null = null;
    let pending = '';
    let stderr = '';
    let done = false;
    let timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const message = JSON.parse(pending.slice(0, newline)) as { loading?: string; done?: boolean } & Partial<Examination>;
        pending = pending.slice(newline + 1);
        clearTimeout(timer);
        timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
        if (message.loading) loading = message.loading;
        else if (message.done) done = true;
        else {
          results.push(message as Examination);
          loading = null;
        }
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (done || loading === null) return resolve({ results, crash: null });
      const how = signal === 'SIGKILL' ? `did not finish loading within ${PROBE_TIMEOUT_MS / 1000} s` : signal ? `crashed (signal ${signal})` : `ended the process (exit code ${code})`;
      const said = stderr.trim().split('\n').filter(Boolean).slice(-2).join(' | ');
      resolve({
        results,
        crash: {
          file: loading,
          code: 'E_LOAD_CRASHED',
          reason: `${loading}: ${how} while being loaded (its initialisation code, Name() or afd_negotiate(); for a Bacula plugin, loadPlugin())${said ? `; it printed: ${said}` : ''}. The library is broken; remove it and contact its vendor.`,
        },
      });
    });
  });
}

/** Probe every file; a library that crashes its probe is refused, and the probe goes on without it. */
export async function probeLibraries(candidates: Candidate[], preload?: readonly string[]): Promise<Examination[]> {
  const results: Examination[] = [];
  let remaining = candidates;
  while (remaining.length > 0) {
    const run = await runProbe(remaining, preload);
    results.push(...run.results);
    if (!run.crash) break;
    results.push({ file: run.crash.file, refused: run.crash });
    const handled = new Set(results.map((r) => r.file));
    remaining = remaining.filter((c) => !handled.has(c.file));
  }
  return results;
}
