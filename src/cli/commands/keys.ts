/** `agentfd keys generate`: make the key files that encrypt and sign backups. */
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { generateKeyFiles } from '../../crypto/keys.js';
import { printJson, reportFailure, type CommandIo } from '../output.js';

export function keysGenerate(io: CommandIo, options: { out: string; name: string; json?: boolean }): number {
  try {
    const dir = path.resolve(options.out);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keys = generateKeyFiles(dir, options.name);
    if (options.json) printJson(io, { status: 'ok', ...keys });
    else {
      io.out(`private keys: ${keys.privateFile} (keep it secret and safe: without it, backups encrypted to it cannot be restored)`);
      io.out(`public keys:  ${keys.publicFile} (put it in encrypt_to = [...] of the machines that back up)`);
      io.out(`encryption key ${keys.encryptionFingerprint}, signing key ${keys.signingFingerprint}`);
    }
    return 0;
  } catch (error) {
    return reportFailure(io, Boolean(options.json), error);
  }
}

export function registerKeysCommands(program: Command, io: CommandIo, setExit: (code: number) => void): void {
  program
    .command('keys')
    .description('manage encryption and signing keys')
    .command('generate')
    .description('make NAME.key (private: restore and sign) and NAME.pub (public: encrypt to, verify)')
    .option('-o, --out <dir>', 'where to write the key files', '.')
    .option('-n, --name <name>', 'base name of the key files', 'agentfd')
    .option('--json', 'print one JSON object')
    .action((o: { out: string; name: string; json?: boolean }) => setExit(keysGenerate(io, o)));
}
