/** The bandwidth limit (transfer/bandwidth.ts) on a simulated clock, and Bacula's speed units (config). */
import { describe, expect, it } from 'vitest';
import { BandwidthThrottle, type ThrottleClock } from '../../src/bacula-fd/transfer/bandwidth.js';
import { speedBytes } from '../../src/config/schema.js';

/** A clock whose time moves only by sleeps and by what the test says writing took; it keeps each sleep. */
function simulatedClock(lateness = 0): ThrottleClock & { time: number; sleeps: number[] } {
  const clock = {
    time: 1_000_000,
    sleeps: [] as number[],
    now: () => clock.time,
    sleep: async (micros: number, signal: AbortSignal) => {
      clock.sleeps.push(micros);
      if (!signal.aborted) clock.time += micros + lateness;
    },
  };
  return clock;
}

/** Writes `total` bytes in 64 KiB frames (each taking `writeMicros`), as sendStream does; the simulated seconds it took. */
async function send(throttle: BandwidthThrottle, clock: { time: number }, total: number, writeMicros = 50): Promise<number> {
  const start = clock.time;
  for (let sent = 0; sent < total; sent += 65_536) {
    clock.time += writeMicros;
    await throttle.written(4 + Math.min(65_536, total - sent));
  }
  return (clock.time - start) / 1_000_000;
}

describe('serve bandwidth limit', () => {
  it('holds a job to its limit as bacula-fd does: 20 MB at 4mb/s takes 5 s', async () => {
    const clock = simulatedClock();
    const seconds = await send(new BandwidthThrottle(4_000_000, clock), clock, 20_000_000);
    expect(seconds).toBeGreaterThan(4.95);
    expect(seconds).toBeLessThan(5.05);
  });

  it('credits a late timer to the next write, so the rate stays at the limit', async () => {
    const clock = simulatedClock(2_000); // each sleep 2 ms late, as Node's timers can be
    const seconds = await send(new BandwidthThrottle(4_000_000, clock), clock, 20_000_000);
    expect(seconds).toBeLessThan(5.05);
  });

  it('does not slow a link that is slower than its limit, and never sleeps without a limit', async () => {
    const slow = simulatedClock();
    // Each frame takes 100 ms to write: 655 kB/s, under the 1 MB/s limit.
    expect(await send(new BandwidthThrottle(1_000_000, slow), slow, 2_000_000, 100_000)).toBeCloseTo(3.1, 1);
    expect(slow.sleeps).toEqual([]);
    const none = simulatedClock();
    await send(new BandwidthThrottle(0, none), none, 20_000_000);
    expect(none.sleeps).toEqual([]);
  });

  it('takes a new limit at once (setbandwidth during a job)', async () => {
    const clock = simulatedClock();
    const throttle = new BandwidthThrottle(4_000_000, clock);
    await send(throttle, clock, 4_000_000);
    throttle.limit = 1_000_000;
    const seconds = await send(throttle, clock, 2_000_000);
    expect(seconds).toBeGreaterThan(1.9);
    expect(seconds).toBeLessThan(2.1);
  });

  it('starts the count anew after a pause of more than 10 s, as bacula-fd', async () => {
    const clock = simulatedClock();
    const throttle = new BandwidthThrottle(1_000, clock);
    await throttle.written(1_000_000); // the first write only starts the count
    clock.time += 11_000_000;
    await throttle.written(100);
    expect(clock.sleeps).toEqual([]);
  });

  it('stops sleeping for good once aborted (a job being stopped)', async () => {
    const clock = simulatedClock();
    const throttle = new BandwidthThrottle(1_000, clock);
    throttle.abort();
    const seconds = await send(throttle, clock, 1_000_000);
    expect(seconds).toBeLessThan(0.01);
  });

  it("reads Bacula's speed units: mb/s and kb/s are decimal, m/s and k/s binary", () => {
    expect(speedBytes('4mb/s')).toBe(4_000_000);
    expect(speedBytes('500 kb/s')).toBe(500_000);
    expect(speedBytes('1m/s')).toBe(1_048_576);
    expect(speedBytes('100k/s')).toBe(102_400);
    expect(speedBytes('2 MiB/s')).toBe(2_097_152);
    expect(speedBytes(1234)).toBe(1234);
    expect(speedBytes('4 mbit')).toBeNull();
  });
});
