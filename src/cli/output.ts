/**
 * How commands speak: a human-readable text on stdout, or with --json exactly one JSON object
 * (always with a `status`), so scripts can rely on the shape. Errors go to stderr in text mode and
 * into the object in JSON mode; the exit code says failure either way.
 */
import { AgentfdError, messageOf } from '../errors.js';

export interface CommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: CommandIo = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

export function printJson(io: CommandIo, value: Record<string, unknown>): void {
  io.out(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));
}

/** Report a failure in the form the command was asked for; returns the exit code. */
export function reportFailure(io: CommandIo, json: boolean, error: unknown): number {
  const code = error instanceof AgentfdError ? error.code : 'E_INTERNAL';
  const message = messageOf(error);
  // A job that got as far as an id failed as that job; anything earlier is an error of the command.
  const jobId = typeof error === 'object' && error !== null && 'jobId' in error ? (error as { jobId: unknown }).jobId : undefined;
  // A restore that stopped part way says how many files it had restored before it did.
  const restoredFiles = typeof error === 'object' && error !== null && 'restoredFiles' in error ? (error as { restoredFiles: unknown }).restoredFiles : undefined;
  if (json) {
    printJson(io, jobId === undefined ? { status: 'error', code, message } : { status: 'failed', jobId, code, message, ...(restoredFiles === undefined ? {} : { restoredFiles }) });
  }
  else io.err(`agentfd: ${message}`);
  if (!(error instanceof AgentfdError) && process.env.AGENTFD_DEBUG) io.err(String((error as Error)?.stack ?? error));
  return 1;
}

/** Left-aligned columns for plain-text tables. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
