/** --key and --passphrase-file, turned into what the session reader needs to open a job. */
import type { Command } from 'commander';
import { loadPrivateIdentity } from '../crypto/keys.js';
import type { UnwrapSecrets } from '../crypto/envelope.js';
import { AgentfdError } from '../errors.js';
import { readPassphrase } from '../jobs/encryption.js';

export interface SecretOptions {
  key?: string[];
  passphraseFile?: string;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function secretsFrom(options: SecretOptions): UnwrapSecrets {
  const keys = (options.key ?? []).map((file) => {
    const identity = loadPrivateIdentity(file);
    if (!identity.encryption) throw new AgentfdError('E_KEY', `${file} holds no X25519 private key; pass the .key file of agentfd keys generate`);
    return { key: identity.encryption, file };
  });
  return { keys, ...(options.passphraseFile ? { passphrase: readPassphrase(options.passphraseFile) } : {}) };
}

/** Add --key and --passphrase-file to a command that opens encrypted jobs. */
export function withSecretOptions(command: Command): Command {
  return command
    .option('-k, --key <file>', 'private key file to open encrypted jobs (repeatable)', collect)
    .option('--passphrase-file <file>', 'a file whose first line is the job passphrase');
}
