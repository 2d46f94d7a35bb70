/** Run the real agentfd command in a child process, as a user would. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './native.js';

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const result = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'agentfd.js'), ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, AGENTFD_CONFIG: '', ...options.env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** Run with --json and parse the single object it prints. */
export function runCliJson(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const result = runCli([...args, '--json'], options);
  let json: Record<string, any>;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    throw new Error(`agentfd ${args.join(' ')} --json printed no JSON object:\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return { ...result, json };
}
