/**
 * Benchmark inputs: the bytes every backup case and every baseline reads, made once per
 * invocation in a scratch directory (under os.tmpdir(), deleted by the caller).
 *
 * - random: crypto.randomFillSync output, incompressible, so codecs cost their worst and store
 *   slightly more than they read.
 * - text: log lines from a seeded generator of our own, deterministic run to run and across
 *   machines, built to compress with `gzip -6` at about 4:1 like the generated text that
 *   bacula-fd's published figures were measured on.
 *
 * Each input is also presented as a store of the Exchange sample agent (<store>/SG1/Big.edb, a
 * hard link to the input, and an empty SG1/logs/), which is how agentfd backs up one large
 * stream: the agent reads the file and hands it to the bridge, like a database backup API would.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, linkSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';

const BLOCK = 4 * 1024 * 1024;

/** Writes `bytes` random bytes to `file`, 4 MiB at a time (one buffer, refilled). */
export function writeRandom(file, bytes) {
  const block = Buffer.allocUnsafe(BLOCK);
  const fd = openSync(file, 'w');
  try {
    for (let written = 0; written < bytes; ) {
      const n = Math.min(BLOCK, bytes - written);
      randomFillSync(block, 0, n);
      written += writeSync(fd, block, 0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/** mulberry32: a tiny seeded PRNG, plenty for test data and the same on every machine. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'alpha beta gamma delta epsilon zeta theta lambda kappa sigma omega request response server client ' +
  'backup restore volume storage director daemon network packet session stream attribute checksum ' +
  'file directory user admin error warning info debug trace timeout retry connect accept close'
).split(' ');
const USERS = ['alice', 'bob', 'carol', 'dave', 'eve', 'mallory', 'trent', 'peggy', 'victor', 'walter'];
const LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
const STATUSES = [200, 200, 200, 201, 204, 301, 404, 500];
const pad = (n, width) => String(n).padStart(width, '0');

/**
 * Writes `bytes` of log lines to `file`, e.g.
 * `2026-11-03 14:22:07.123 INFO [worker-7] user=alice req=1234567 path=/api/v1/backup/42 status=200 bytes=5120 took=12ms msg="..."`.
 * The timestamp advances a second per line (compressible, like real logs); request ids, sizes and
 * the message words are random (not compressible beyond their entropy), which lands `gzip -6` near
 * 4:1. The last line is cut at exactly `bytes`.
 */
export function writeText(file, bytes, seed = 42) {
  const random = prng(seed);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const int = (n) => Math.floor(random() * n);
  // "HH:MM:SS" for every second of a day, made once: formatting it per line would be half the cost.
  const clock = Array.from({ length: 86400 }, (_, s) => `${pad(Math.floor(s / 3600), 2)}:${pad(Math.floor(s / 60) % 60, 2)}:${pad(s % 60, 2)}`);
  const fd = openSync(file, 'w');
  try {
    let written = 0;
    for (let i = 1; written < bytes; ) {
      let text = '';
      // About 1 MiB of lines per write: appending to a string is cheap, a write per line is not.
      while (text.length < 1 << 20) {
        let words = pick(WORDS);
        for (let w = 2 + int(6); w > 0; w--) words += ' ' + pick(WORDS);
        text +=
          `2026-11-${pad(1 + (Math.floor(i / 86400) % 28), 2)} ${clock[i % 86400]}.${pad(int(1000), 3)} ` +
          `${pick(LEVELS)} [worker-${int(32)}] user=${pick(USERS)} req=${int(1e7)} path=/api/v1/${pick(WORDS)}/${int(100000)} ` +
          `status=${pick(STATUSES)} bytes=${int(100000)} took=${int(2000)}ms msg="${words}"\n`;
        i++;
      }
      const chunk = Buffer.from(text, 'latin1'); // ASCII only: characters are bytes
      written += writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written));
    }
  } finally {
    closeSync(fd);
  }
}

/** SHA-256 (hex) of a file, read in 4 MiB blocks: how a restore is checked against its input. */
export function sha256File(file) {
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(BLOCK);
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, block, 0, BLOCK, null)) > 0; ) hash.update(block.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * An Exchange sample store whose one database is `file`: <dir>/SG1/Big.edb (a hard link, or a copy
 * across filesystems) and an empty <dir>/SG1/logs/. Returns the store directory and the path of
 * the database inside a restore target (the agent restores to <to>/SG1/Big.edb).
 */
export function exchangeStore(dir, file) {
  mkdirSync(path.join(dir, 'SG1', 'logs'), { recursive: true });
  const db = path.join(dir, 'SG1', 'Big.edb');
  try {
    linkSync(file, db);
  } catch (error) {
    if (error.code !== 'EXDEV') throw error;
    copyFileSync(file, db);
  }
  return { store: dir, restoredPath: (to) => path.join(to, 'SG1', 'Big.edb') };
}

/**
 * Makes the inputs of one invocation under `scratch`:
 * - random and text of `bytes` each (every backup case, every baseline);
 * - big: random of `bigBytes` (the large memory case and the bridge).
 * Each comes with its size, its SHA-256 (what a restore must reproduce; null for big) and an
 * Exchange store.
 * `log` reports progress: on a slow disk the full inputs take a while.
 */
export function prepareInputs({ scratch, bytes, bigBytes, log = () => undefined }) {
  const dir = path.join(scratch, 'inputs');
  mkdirSync(dir, { recursive: true });
  const make = (name, label, write, size, { hash = true } = {}) => {
    const file = path.join(dir, `${name}.bin`);
    const started = process.hrtime.bigint();
    write(file, size);
    const sha256 = hash ? sha256File(file) : null;
    log(`input ${name}: ${(size / 1024 ** 2).toFixed(0)} MiB in ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
    return { name, label, file, bytes: size, sha256, ...exchangeStore(path.join(scratch, 'stores', name), file) };
  };
  return {
    random: make('random', 'random', writeRandom, bytes),
    text: make('text', 'text', (file, size) => writeText(file, size), bytes),
    // Never restored, so never hashed (4 GiB in full mode).
    big: make('big', 'random', writeRandom, bigBytes, { hash: false }),
  };
}
