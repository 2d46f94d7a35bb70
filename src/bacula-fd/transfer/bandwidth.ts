/**
 * Bandwidth limits as bacula-fd applies them (lib/bsock.c control_bwlimit): every byte written to
 * the Storage Daemon is counted; what was written beyond what the limit allowed since the last
 * tick is slept off, and a pause of more than 10 s (or a clock going back) starts the count anew.
 * The limit is in bytes per second and may change while a job runs (`setbandwidth`); 0 is none.
 *
 * Bacula's units for a limit (lib/edit.c speed_to_uint64): k/s and kib/s are 1024 bytes/s, kb/s
 * 1000; m/s and mib/s 1,048,576, mb/s 1,000,000. So `Maximum Bandwidth = 4mb/s` is 4,000,000
 * bytes per second (the Director sends `setbandwidth=4000000`).
 */

/** The clock and the sleep a throttle uses; tests give their own. */
export interface ThrottleClock {
  /** Microseconds. */
  now(): number;
  /** Sleeps `micros`, or less when `signal` aborts. */
  sleep(micros: number, signal: AbortSignal): Promise<void>;
}

export const SYSTEM_CLOCK: ThrottleClock = {
  now: () => Number(process.hrtime.bigint() / 1000n),
  sleep: (micros, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.ceil(micros / 1000));
      signal.addEventListener('abort', done, { once: true });
    }),
};

/** A pause longer than this (µs) starts the count anew, as bacula-fd (clock problems, idle links). */
const RESTART_AFTER = 10_000_000;
/** Calls closer than this (µs) are counted and looked at with the next one. */
const MIN_TICK = 100;

export class BandwidthThrottle {
  private counted = 0;
  private lastTick: number;
  private readonly stop = new AbortController();

  constructor(
    /** Bytes per second; 0: no limit. */
    public limit: number,
    private readonly clock: ThrottleClock = SYSTEM_CLOCK,
  ) {
    this.lastTick = clock.now();
  }

  /** `bytes` were written: resolves once the limit allows the next write. */
  async written(bytes: number): Promise<void> {
    if (this.limit <= 0 || bytes <= 0 || this.stop.signal.aborted) return;
    const now = this.clock.now();
    const elapsed = now - this.lastTick;
    this.counted += bytes;
    if (elapsed < 0 || elapsed > RESTART_AFTER) {
      this.counted = bytes;
      this.lastTick = now;
      return;
    }
    if (elapsed < MIN_TICK) return;
    const perMicro = this.limit / 1_000_000;
    this.counted = Math.max(0, this.counted - Math.floor(elapsed * perMicro));
    const sleep = Math.floor(this.counted / perMicro);
    if (sleep > MIN_TICK) {
      await this.clock.sleep(sleep, this.stop.signal);
      // From when the sleep should have ended, not when the timer fired: a timer's lateness (a
      // millisecond or two per sleep in Node, where bacula-fd's nanosleep is precise) is then
      // credited to the next write instead of slowing the job below its limit.
      this.lastTick = Math.min(now + sleep, this.clock.now());
      this.counted = 0;
    } else {
      this.lastTick = now;
    }
  }

  /** Ends any sleep now and for good (the job is being stopped). */
  abort(): void {
    this.stop.abort();
  }
}
