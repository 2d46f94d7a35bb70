/**
 * serve's debug levels, as bacula-fd's `setdebug` sets them (filed/job.c setdebug_cmd,
 * lib/message.c d_msg). In wire/ because every part of the daemon writes them, as every part of
 * bacula-fd writes through its lib/. A message of level N is written when N <= the level; with trace=1 it goes
 * to `<working directory>/<client name>.trace` (appended, as bacula-fd opens it "a+b"), else to
 * serve's own output. Each line is bacula-fd's: "<name>: <where>-<JobId> <text>", after a
 * timestamp when options has `t` (`T` turns that off again); `c` truncates the trace file, `0`
 * clears the flags. trace=0 closes the file.
 *
 * The levels used: 50 the Storage Daemon session, 100 every Director command and answer, 130
 * every file sent or restored, 200 every stream header sent to the SD.
 */
import { appendFileSync, mkdirSync, truncateSync } from 'node:fs';
import path from 'node:path';

export const DEBUG = { session: 50, commands: 100, files: 130, streams: 200 } as const;

/** A debug message: its level, where it comes from ("director", "backup"...), its text. */
export type DebugWrite = (level: number, where: string, text: string) => void;

export interface DebugSettings {
  level: number;
  trace: boolean;
  timestamps: boolean;
}

/** `setdebug=%ld trace=%ld hangup=%ld blowup=%ld options=%s tags=%s` (and the older forms without the last ones). */
export function parseSetdebug(command: string): { level: number; trace: number; hangup: number; blowup: number; options: string; tags: string } | null {
  const m = /^setdebug=(-?\d+) trace=(-?\d+)(?: hangup=(-?\d+))?(?: blowup=(-?\d+))?(?: options=(\S*))?(?: tags=(\S*))?/.exec(command);
  if (!m) return null;
  return { level: Number(m[1]), trace: Number(m[2]), hangup: Number(m[3] ?? -1), blowup: Number(m[4] ?? -1), options: m[5] ?? '', tags: m[6] ?? '' };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** bstrftimes: "07-Dec-2026 22:14:36", local time. */
function stamp(d: Date): string {
  return `${two(d.getDate())}-${MONTHS[d.getMonth()]}-${d.getFullYear()} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export class DebugLog {
  private settings: DebugSettings = { level: 0, trace: false, timestamps: false };

  constructor(
    private readonly name: string,
    /** bacula-fd's WorkingDirectory: where the trace file is kept. */
    private readonly workingDir: string,
    /** Where messages go when not tracing (serve's output). */
    private readonly output: (line: string) => void,
  ) {}

  get level(): number {
    return this.settings.level;
  }

  get tracing(): boolean {
    return this.settings.trace;
  }

  get traceFile(): string {
    return path.join(this.workingDir, `${this.name}.trace`);
  }

  /** What `setdebug` asked: a level below 0 keeps the current one, as bacula-fd. */
  set(level: number, trace: number, options: string): void {
    if (level >= 0) this.settings.level = level;
    this.settings.trace = trace !== 0;
    if (this.settings.trace) this.openTrace();
    for (const flag of options) {
      if (flag === 't') this.settings.timestamps = true;
      else if (flag === 'T') this.settings.timestamps = false;
      else if (flag === '0') this.settings.timestamps = false;
      else if (flag === 'c' && this.settings.trace) truncateSync(this.traceFile, 0);
    }
  }

  /** Whether messages of `level` are written now (a caller may skip building them). */
  enabled(level: number): boolean {
    return level <= this.settings.level;
  }

  /** The write function for one job (JobId 0: no job). */
  forJob(jobId: () => number): DebugWrite {
    return (level, where, text) => this.write(level, where, jobId(), text);
  }

  write(level: number, where: string, jobId: number, text: string): void {
    if (!this.enabled(level)) return;
    const line = `${this.settings.timestamps ? `${stamp(new Date())} ` : ''}${this.name}: ${where}-${jobId} ${text}${text.endsWith('\n') ? '' : '\n'}`;
    if (this.settings.trace) {
      try {
        appendFileSync(this.traceFile, line);
        return;
      } catch (error) {
        // As bacula-fd: a trace file that cannot be written turns tracing off; output takes over.
        this.settings.trace = false;
        this.output(`${this.name}: cannot write the trace file ${this.traceFile} (${(error as Error).message}); debug output goes here instead\n`);
      }
    }
    this.output(line);
  }

  /** The file exists from `setdebug trace=1` on, as bacula-fd creates it then. */
  private openTrace(): void {
    try {
      mkdirSync(this.workingDir, { recursive: true });
      appendFileSync(this.traceFile, '');
    } catch (error) {
      this.settings.trace = false;
      this.output(`${this.name}: cannot open the trace file ${this.traceFile} (${(error as Error).message}); debug output goes to this output\n`);
    }
  }
}
