/**
 * Nanosecond timestamps (bigint) to the seconds that fs.utimes takes. Node hands the seconds to
 * libuv as a double, and libuv keeps microseconds only; a double near 1.7e9 s is precise to about
 * 0.24 microsecond, so the naive conversion can land just below the microsecond and lose one.
 * Aiming at the middle of the microsecond keeps it exact: restored times match the saved ones to
 * the microsecond (the nanoseconds below are lost; that is the platform's limit).
 */
const NS_PER_S = 1_000_000_000n;

export function nsToUtimesSeconds(ns: bigint): number {
  let seconds = ns / NS_PER_S;
  let rest = ns % NS_PER_S;
  if (rest < 0n) {
    seconds -= 1n;
    rest += NS_PER_S;
  }
  const micros = rest / 1000n;
  return Number(seconds) + (Number(micros) + 0.5) / 1e6;
}
