/**
 * The gen 3 host functions restore_open, restore_rename and restore_remove of one session: the
 * agent's restored files, created, renamed and removed beneath the restore target only (see
 * "Writing restored files" in agentfd_agent.h, src/platform/confined-target.ts for Linux and
 * src/platform/pinned-target.ts for Windows). They run in the process that runs the agent (the
 * isolated agent host by default), so the descriptor (Windows: HANDLE) restore_open returns is
 * the agent's own.
 */
import { constants } from 'node:fs';
import { AgentfdError } from '../../errors.js';
import { ConfinedError, ConfinedTarget, splitRelative } from '../../platform/confined-target.js';
import { handleValue } from '../../platform/kernel32.js';
import { CONFINED_WRITES, IS_WINDOWS } from '../../platform/os.js';
import { PinnedTarget } from '../../platform/pinned-target.js';
import type { LogLevel } from '../types.js';

const AFD_E_INVALID = -3;
const AFD_E_UNSUPPORTED = -5;
const AFD_E_IO = -6;
const AFD_E_REFUSED = -8;
/** The header's AFD_RESTORE_* flags. */
const MODE_MASK = 0o777;
const TRUNCATE = 1 << 16;
const EXCLUSIVE = 1 << 17;

/** The open target, whichever way this system confines. */
type Target = ConfinedTarget | PinnedTarget;

export class RestoreWrites {
  private target: Target | null = null;

  constructor(private readonly log: (level: LogLevel, message: string) => void) {}

  /** restore_prepare: open the target, once, before the agent is called. */
  prepare(target: string | null): void {
    if (target === null || !CONFINED_WRITES) return;
    try {
      this.target = IS_WINDOWS ? PinnedTarget.open(target) : ConfinedTarget.open(target, 0o755);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new AgentfdError('E_RESTORE_PATH', `restore target ${target} cannot be used as a directory (${code}); give a directory agentfd may create or write`, { cause: error });
    }
  }

  open(relative: string, flags: number): number {
    return this.confined('restore_open', relative, (target) => {
      if ((flags & ~(MODE_MASK | TRUNCATE | EXCLUSIVE)) !== 0) {
        throw new ConfinedError('invalid', `unknown flags 0x${(flags & ~(MODE_MASK | TRUNCATE | EXCLUSIVE)).toString(16)}`);
      }
      const parts = splitRelative(relative);
      // Windows has no permission bits to give the file: its ACL is inherited from the directory.
      if (target instanceof PinnedTarget) return handleValue(target.openFile(parts, { truncate: (flags & TRUNCATE) !== 0, exclusive: (flags & EXCLUSIVE) !== 0 }));
      const extra = (flags & TRUNCATE ? constants.O_TRUNC : 0) | (flags & EXCLUSIVE ? constants.O_EXCL : 0);
      return target.openFile(parts, extra, flags & MODE_MASK || 0o600);
    });
  }

  rename(from: string, to: string): number {
    return this.confined('restore_rename', `${from} -> ${to}`, (target) => {
      target.rename(splitRelative(from), splitRelative(to));
      return 0;
    });
  }

  remove(relative: string): number {
    return this.confined('restore_remove', relative, (target) => {
      target.remove(splitRelative(relative));
      return 0;
    });
  }

  close(): void {
    this.target?.close();
    this.target = null;
  }

  /** Run `body` against the open target; a failure is logged as an error of the job and becomes its AFD_E_* code. */
  private confined(call: string, what: string, body: (target: Target) => number): number {
    if (this.target === null) {
      this.log('error', `${call}(${what}): this restore has no target directory (restore to the original location), so there is nothing to write beneath`);
      return AFD_E_UNSUPPORTED;
    }
    try {
      return body(this.target);
    } catch (error) {
      if (!(error instanceof ConfinedError)) throw error;
      this.log('error', `${call}(${what}): ${error.message}`);
      return error.kind === 'refused' ? AFD_E_REFUSED : error.kind === 'invalid' ? AFD_E_INVALID : AFD_E_IO;
    }
  }
}
