/**
 * The agentfd command line (commander). Each command lives in commands/ and returns its exit code;
 * main() only wires them up, so tests and the bin script run exactly the same code.
 */
import { Command, CommanderError } from 'commander';
import { HOST_VERSION } from '../version.js';
import { registerBackupCommand } from './commands/backup.js';
import { registerEstimateCommand } from './commands/estimate.js';
import { registerCatalogCommands } from './commands/catalog.js';
import { registerConfigCommands } from './commands/config.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerKeysCommands } from './commands/keys.js';
import { registerRestoreCommand } from './commands/restore.js';
import { registerServeCommand } from './commands/serve.js';
import { registerPluginCommands } from './commands/plugins.js';
import { processIo, type CommandIo } from './output.js';

export function buildProgram(io: CommandIo, setExit: (code: number) => void): Command {
  const program = new Command('agentfd')
    .description('A backup file daemon that drives native backup agents (C libraries) and the file system alike')
    .version(HOST_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })
    .exitOverride();
  registerPluginCommands(program, io, setExit);
  registerConfigCommands(program, io, setExit);
  registerBackupCommand(program, io, setExit);
  registerEstimateCommand(program, io, setExit);
  registerRestoreCommand(program, io, setExit);
  registerCatalogCommands(program, io, setExit);
  registerKeysCommands(program, io, setExit);
  registerDemoCommand(program, io, setExit);
  registerServeCommand(program, io, setExit);
  return program;
}

/** Run the command line; resolves to the exit code. */
export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => (exitCode = code));
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return error.exitCode;
    }
    throw error;
  }
  return exitCode;
}
