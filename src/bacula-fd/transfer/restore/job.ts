/**
 * What the stages of one serve restore share: its totals and errors, the root it writes under
 * (opened at the first entry), the directories whose attributes wait for the end, and the ACL
 * and xattr records (xacl.ts) of the entry being restored.
 */
import { XaclRestore } from '../../attributes/xacl.js';
import type { RestoreRun as AgentRestoreRun } from '../../../agents/agent.js';
import type { SdRecord } from '../storage-daemon.js';
import type { Bregexp } from './bregexp.js';
import type { CreateContext } from './create-entry.js';
import type { ReplaceMode } from './replace.js';
import { RestoreRoot } from './restore-root.js';
import { DeferredDirectories } from './set-attributes.js';

export interface RestoreTotals {
  files: number;
  bytes: number;
  errors: string[];
}

export interface RestoreRun {
  records: AsyncIterable<SdRecord>;
  /** Bacula's `where`: the restore's root; '' or '/' restores in place (as with a RegexWhere). */
  where: string;
  /** The Director's regexwhere= (bregexp.ts): each name rewritten by it, restored in place. */
  regexWhere?: readonly Bregexp[];
  log: (level: 'info' | 'warning' | 'error', message: string) => void;
  /**
   * The agent run for a plugin command met on the volume (STREAM_PLUGIN_NAME), or null when no
   * agent of that name is installed: then its files restore as plain files under `where`, as
   * bacula-fd does with a plugin it does not have.
   */
  plugin?: (command: string) => Promise<AgentRestoreRun | null>;
  /** The Director's replace= letter (default a: always). */
  replace?: ReplaceMode;
  /** The Director's prelinks=1: absolute symlink targets are restored with where in front. */
  prefixLinks?: boolean;
  /** How long an FT_FIFO fifo may wait for its reader (bacula-fd: 60 s; tests shorten it). */
  fifoOpenTimeoutMs?: number;
  /** Totals to count into as the restore goes (`status client` reads them while it runs). */
  totals?: RestoreTotals;
  /** Told the name of each entry as its attributes record arrives. */
  onEntry?: (fname: string) => void;
}

export class RestoreJob {
  readonly totals: RestoreTotals;
  readonly xacl: XaclRestore;
  private readonly directories = new DeferredDirectories();
  private opened: RestoreRoot | null = null;

  constructor(readonly run: RestoreRun) {
    this.totals = run.totals ?? { files: 0, bytes: 0, errors: [] };
    this.xacl = new XaclRestore((message) => run.log('warning', message));
  }

  /** An error of the job: counted, and logged at once. */
  problem(message: string): void {
    this.totals.errors.push(message);
    this.run.log('error', message);
  }

  /** The root under where, opened at the first entry that needs it (tried again by the next when it fails). */
  async root(): Promise<RestoreRoot> {
    return (this.opened ??= await RestoreRoot.open(this.run.where));
  }

  async createContext(): Promise<CreateContext> {
    const run = this.run;
    return {
      root: await this.root(), replace: run.replace ?? 'a', where: run.where, prefixLinks: run.prefixLinks ?? false,
      fifoOpenTimeoutMs: run.fifoOpenTimeoutMs, directories: this.directories, log: run.log,
    };
  }

  /** The end of the records: the directories' attributes, deepest first, then the ACL and xattr summary. */
  async finish(): Promise<void> {
    if (this.opened) this.totals.files += await this.directories.apply(this.opened, (message) => this.problem(message));
    this.xacl.finish();
  }

  close(): void {
    this.opened?.close();
  }
}
