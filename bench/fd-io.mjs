/**
 * How long a File Daemon took over its part of a Bacula job, from the kernel's I/O counters: the
 * one clock the bench uses for the real bacula-fd and for `agentfd serve` alike, in the same lab.
 *
 * Why not another clock:
 * - Bacula's job report has 1-second resolution (a 4 s job reads as 268 or 537 MB/s).
 * - The wall time from bconsole's `run` to the job's end holds ~2 s of the Director's own work
 *   (scheduling, catalog, volume setup, the end-of-job catalog inserts), noisy from job to job on a
 *   shared machine; subtracting an empty job's time would subtract one noisy figure from another.
 * - The FD's own logs say nothing precise; agentfd's and bacula-fd's would not say the same thing.
 *
 * So the FD's part is timed from outside, the same way for both: /proc/<pid>/io of the FD, summed
 * over the process and any children it starts (threads are in their process's counters), sampled
 * every ~5 ms. `rchar` and `wchar` count every read()/write() family call, files and sockets alike,
 * which is how both FDs move data (bacula-fd's bsock and libuv's streams use read/write/writev).
 * - Start: the first sample where the FD has read more than 64 KiB beyond its count before the
 *   job. In a backup these are file bytes, in a restore the SD's stream; the Director's commands
 *   are far smaller, one data block is not.
 * - End: the last sample where the FD's write count grew by at least 4 KiB. In a backup these are
 *   the records it sends to the SD, in a restore the files it writes; after its data an FD writes
 *   only a few hundred bytes at a time (the end of the data, its job status to the Director).
 * So the span is from the FD's first input to its last output: what it does with the data, and
 * not the Director's scheduling or catalog work, which is the same for both clients. Both ends lag
 * the true instant by half an interval on average, so the span is unbiased to within one interval.
 * What the FD does before its first read (opening the SD session) or after its last write is
 * left out for both.
 */
import { readFileSync, readdirSync } from 'node:fs';

export const SAMPLE_MS = 5;
const START_THRESHOLD = 64 * 1024;
const END_THRESHOLD = 4 * 1024;
const STALL_MS = 60_000; // no FD or SD I/O for this long during a job: the job is stuck
const DISCOVER_EVERY = 20; // samples between looks for new children of the FD (~100 ms)

/** True while `pid` runs (a zombie, waiting to be reaped, counts as gone). */
export function alive(pid) {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** { rchar, wchar } of one process (all its threads), or null once it is gone. */
function counters(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return null;
  }
  const field = (name) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rchar: field('rchar'), wchar: field('wchar') };
}

/**
 * The descendants of `root` (children, their children...), from /proc/<pid>/stat (this kernel has
 * no task/children). Also pipeline.mjs's, for the memory samples.
 */
export function descendants(root) {
  const parents = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      // The command name may hold spaces and parentheses: the fields after it start at the last ")".
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, parent] of parents) if (!tree.has(pid) && tree.has(parent)) tree.add(pid), (grew = true);
  }
  tree.delete(root);
  return tree;
}

/**
 * The FD's counters summed over its process tree. A child that has exited keeps the last counts
 * seen of it (the kernel does not add a child's counts to its parent's /proc/<pid>/io).
 */
function treeCounter(rootPid, name) {
  const last = new Map();
  let tick = 0;
  return () => {
    if (tick++ % DISCOVER_EVERY === 0) for (const pid of descendants(rootPid)) if (!last.has(pid)) last.set(pid, { rchar: 0, wchar: 0 });
    const own = counters(rootPid);
    if (!own || !alive(rootPid)) throw new Error(`${name} (pid ${rootPid}) died, or this user may not read /proc/${rootPid}/io`);
    if (Number.isNaN(own.rchar) || Number.isNaN(own.wchar)) throw new Error(`/proc/${rootPid}/io of ${name} has no rchar/wchar lines`);
    last.set(rootPid, own);
    for (const pid of last.keys()) {
      if (pid === rootPid) continue;
      const now = counters(pid);
      if (now) last.set(pid, now);
    }
    let rchar = 0;
    let wchar = 0;
    for (const c of last.values()) (rchar += c.rchar), (wchar += c.wchar);
    return { rchar, wchar };
  };
}

/**
 * Samples the FD's (process tree's) rchar and wchar every SAMPLE_MS until stop(). The SD's
 * counters are read too, only to tell a stuck job: onFailure is called once (instead of throwing
 * from a timer) when a daemon is gone or no counter has moved for STALL_MS, and sampling stops.
 */
export function startIoSampler({ fd, sd }, onFailure) {
  const samples = [];
  let failed = false;
  let progressAt = Date.now();
  const fdCounters = treeCounter(fd.pid, fd.name);
  const read = () => {
    const f = fdCounters();
    const s = counters(sd.pid);
    if (!s || !alive(sd.pid)) throw new Error(`${sd.name} (pid ${sd.pid}) died`);
    return { at: process.hrtime.bigint(), fdRead: f.rchar, fdWritten: f.wchar, sdMoved: s.rchar + s.wchar };
  };
  const fail = (error) => {
    failed = true;
    clearInterval(timer);
    onFailure(error);
  };
  const sample = () => {
    if (failed) return;
    let next;
    try {
      next = read();
    } catch (error) {
      return fail(error);
    }
    const previous = samples.at(-1);
    if (!previous || next.fdRead !== previous.fdRead || next.fdWritten !== previous.fdWritten || next.sdMoved !== previous.sdMoved) progressAt = Date.now();
    else if (Date.now() - progressAt > STALL_MS) return fail(new Error(`neither ${fd.name} nor ${sd.name} did any I/O for ${STALL_MS / 1000} s`));
    samples.push(next);
  };
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    samples,
    stop() {
      clearInterval(timer);
      if (!failed) {
        try {
          samples.push(read());
        } catch {
          // The job is over; a daemon that died now shows up in the next job.
        }
      }
      failed = true;
    },
  };
}

/**
 * CPU seconds (user + system) the FD has used so far: its own (all threads), its children's that
 * it has waited for, and its live descendants'. A steadier figure than time on a loaded machine,
 * where an FD that waits on its peers loses more to the scheduler than one that computes.
 * /proc/<pid>/stat counts in USER_HZ ticks, 100 a second on Linux.
 */
export function fdCpuSeconds(rootPid) {
  const ticks = (pid, withChildren) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14-17 of stat (utime, stime, cutime, cstime): 11-14 after the command name.
      return Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
    } catch {
      return 0;
    }
  };
  let total = ticks(rootPid, true);
  for (const pid of descendants(rootPid)) total += ticks(pid, false);
  return total / 100;
}

/**
 * Seconds from the FD's first input to its last output (see the header comment); null when the
 * counters show no transfer (an empty input, or another process did the job).
 */
export function fdTransferSeconds(samples) {
  if (samples.length < 2) return null;
  const before = samples[0].fdRead;
  const first = samples.findIndex((s) => s.fdRead - before > START_THRESHOLD);
  let last = -1;
  for (let i = samples.length - 1; i > 0; i--) {
    if (samples[i].fdWritten - samples[i - 1].fdWritten >= END_THRESHOLD) {
      last = i;
      break;
    }
  }
  if (first < 0 || last <= first) return null;
  return Number(samples[last].at - samples[first].at) / 1e9;
}
