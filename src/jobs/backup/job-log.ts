/**
 * What a backup job says while it runs: every message goes to the caller's onLog, and warnings and
 * errors are kept for the report. A job with any error kept is not committed.
 */
export class JobLog {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];

  constructor(private readonly onLog?: (level: string, message: string) => void) {}

  /** The agents' log callback and the job's own messages. */
  readonly log = (level: string, message: string): void => {
    if (level === 'warning') this.warnings.push(message);
    if (level === 'error') this.errors.push(message);
    this.onLog?.(level, message);
  };

  warn(message: string): void {
    this.log('warning', message);
  }

  /** Keep the error that ended the job, unless it was logged already (as the failure of its file). */
  keepError(message: string): void {
    if (!this.errors.includes(message)) this.errors.push(message);
  }

  /** The first error kept: what a failed job says it failed of. */
  get firstError(): string {
    return this.errors[0] ?? 'failed';
  }
}
