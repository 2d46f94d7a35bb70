/**
 * The shape of agentfd.toml. TOML because it is what administrators of daemons already edit by
 * hand (comments, no significant indentation, tables per job), and zod because it checks the
 * parsed tree and says precisely which key is wrong. Unknown keys are errors: a misspelt key that
 * is silently ignored is a backup that silently does not happen.
 */
import { z } from 'zod';
import { pluginNameOrNull } from '../agents/bacula-plugin/command.js';
import { MIN_VOLUME_BYTES } from '../volume/writer.js';

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Option values reach agents as strings (get_option); TOML scalars are accepted and converted. */
const optionValue = z.union([z.string(), z.number(), z.boolean()]).transform((value) => String(value));

const glob = z.string().min(1, 'a glob cannot be empty');

const compression = z.string().regex(/^(none|gzip(:[1-9])?|zstd(:([1-9]|1[0-9]))?)$/, 'one of none, gzip:1-9, zstd:1-19');

const jobFields = z.strictObject({
  agent: z.string().min(1, 'name the agent by its Name(), or "filesystem" for directories, e.g. agent = "MicrosoftExchange"').optional(),
  /**
   * A Bacula plugin command, as in a Bacula FileSet's `Plugin = "..."`: the plugin is named before
   * the first ':' and gets the whole string (it is stored on the volume and used at restore).
   */
  plugin: z.string().min(1).optional(),
  description: z.string().optional(),
  /** Directories to back up (the filesystem agent). */
  paths: z.array(z.string().min(1)).optional(),
  include: z.array(glob).optional(),
  exclude: z.array(glob).optional(),
  options: z.record(z.string(), optionValue).default({}),
  compression: compression.default('zstd:3'),
  /** When the agent cannot make the level asked for: "upgrade" to a full backup (with a warning), or "refuse". */
  level_policy: z.enum(['upgrade', 'refuse']).default('upgrade'),
  /** Public key files (agentfd keys generate) the job's data key is wrapped for. */
  encrypt_to: z.array(z.string().min(1)).default([]),
  /** A file whose first line is a passphrase the data key is also wrapped with (scrypt). */
  passphrase_file: z.string().min(1).optional(),
  /** A private key file whose Ed25519 key signs the job's manifest. */
  sign_with: z.string().min(1).optional(),
});

export const jobSchema = jobFields
  .superRefine((job, ctx) => {
    if (job.plugin === undefined) {
      if (job.agent === undefined) ctx.addIssue({ code: 'custom', path: ['agent'], message: 'name the agent (agent = "MicrosoftExchange", or "filesystem" for directories) or give a Bacula plugin command (plugin = "bpipe:...")' });
      return;
    }
    const name = pluginNameOrNull(job.plugin);
    if (name === null) ctx.addIssue({ code: 'custom', path: ['plugin'], message: `malformed plugin command "${job.plugin}": Bacula's form is NAME:ARGUMENTS, e.g. "bpipe:/@bpipe@/dump.sql:mysqldump mydb:mysql mydb"` });
    else if (job.agent !== undefined && job.agent !== name) ctx.addIssue({ code: 'custom', path: ['agent'], message: `agent "${job.agent}" differs from the plugin the command names ("${name}"); leave agent out` });
    if (job.options.command !== undefined) ctx.addIssue({ code: 'custom', path: ['options', 'command'], message: 'the command of a Bacula plugin job is its plugin key; do not set options.command as well' });
  })
  // A plugin job runs the plugin the command names, which gets the command as its option "command".
  .transform((job) => (job.plugin === undefined ? { ...job, agent: job.agent! } : { ...job, agent: pluginNameOrNull(job.plugin)!, options: { ...job.options, command: job.plugin } }));

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DURATION_HINT = 'a duration like 30, "500ms", "30s", "5m" or "1h"';

/** A duration: seconds as a number, or "500ms", "30s", "5m", "1h". */
const duration = z.union([z.number().positive(), z.string().regex(DURATION, DURATION_HINT)], { error: DURATION_HINT });

/** A duration of the configuration in milliseconds (a bare number is seconds); NaN when it is not one. */
export function durationMs(value: number | string): number {
  if (typeof value === 'number') return value * 1000;
  const match = DURATION.exec(value.trim());
  return match ? Number(match[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'] : Number.NaN;
}

/** Node's timers fire at once beyond this (a 32-bit count of milliseconds). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A time limit agentfd waits with a timer: more than nothing, and at most what a timer holds. */
const timeLimit = z.union([z.number(), z.string().regex(DURATION, DURATION_HINT)], { error: DURATION_HINT }).superRefine((value, ctx) => {
  const ms = durationMs(value);
  if (ms < 1) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is no time at all: give at least 1ms, e.g. "30s"` });
  else if (ms > MAX_TIMER_MS) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is longer than agentfd can wait (at most "596h", about 24 days)` });
});

const SIZE = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i;
const SIZE_HINT = 'a size like 1073741824, "512M" or "4G"';

/** "512M", "4G", "1.5GiB" or a byte count, in bytes (binary units); NaN when it is not one. */
export function sizeBytes(value: number | string): number {
  if (typeof value === 'number') return value;
  const match = SIZE.exec(value.trim());
  if (!match) return Number.NaN;
  const power = ' KMGT'.indexOf(match[2]!.toUpperCase() || ' ');
  return Math.round(Number(match[1]) * 1024 ** power);
}

/** volume_size: a size the volume writer accepts (MIN_VOLUME_BYTES to 2^53 bytes), said in the user's units. */
const volumeSize = z
  .union([z.number().int(), z.string().regex(SIZE, SIZE_HINT)], { error: SIZE_HINT })
  .superRefine((value, ctx) => {
    const bytes = sizeBytes(value);
    const given = typeof value === 'number' ? `${value} bytes` : `"${value}" (${bytes} bytes)`;
    if (bytes < MIN_VOLUME_BYTES) {
      ctx.addIssue({ code: 'custom', message: `${given} is smaller than the smallest volume, "${MIN_VOLUME_BYTES / 1024}K" (${MIN_VOLUME_BYTES} bytes); the default is "1G"` });
    } else if (!Number.isSafeInteger(bytes)) {
      ctx.addIssue({ code: 'custom', message: `${given.replace(/ \(.*/, '')} is larger than agentfd can count (at most "8191T")` });
    }
  });
const isolation = z.enum(['process', 'none']);

export const agentSettingsSchema = z.strictObject({
  options: z.record(z.string(), optionValue).default({}),
  /** "process" (default): the agent runs in its own host process; "none": in the daemon. */
  isolation: isolation.optional(),
  /** An agent call (or a silence while it streams) longer than this ends the job and its host. */
  call_timeout: timeLimit.optional(),
  /** How long a cancelled agent may take to stop before its host is killed. */
  cancel_grace: timeLimit.optional(),
});

/** Where Bacula File Daemon plugins come from, and what they need loaded before them. */
export const baculaSchema = z.strictObject({
  /** Bacula's Plugin Directory (Debian: /usr/lib/bacula): its *-fd.so files are loaded as Bacula plugins. */
  plugin_dir: z.string().min(1).optional(),
  /** Libraries opened with global binding before a plugin (Debian's bpipe-fd.so needs libbac). */
  preload: z.array(z.string().min(1)).optional(),
});

/** [serve.tls]: bacula-fd's TLS directives, for Director connections (server) and SD connections (client). */
export const serveTlsSchema = z.strictObject({
  /** TLS Enable: use TLS with peers that offer it. */
  enable: z.boolean().default(false),
  /** TLS Require: refuse peers that do not offer TLS (implies enable). */
  require: z.boolean().default(false),
  /** TLS Certificate and TLS Key: this File Daemon's certificate (PEM), needed when TLS is on. */
  certificate: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  /** TLS CA Certificate File: the CAs that sign Directors' and Storage Daemons' certificates (default: the system's). */
  ca_certificate_file: z.string().min(1).optional(),
  /** TLS Verify Peer: Directors must present a certificate signed by the CA (default true, as bacula-fd). */
  verify_peer: z.boolean().default(true),
  /** TLS Allowed CN: when not empty, a Director's certificate must name one of these. */
  allowed_cn: z.array(z.string().min(1)).default([]),
});

/**
 * Bacula's speed units (lib/edit.c speed_to_uint64): k/s and kib/s are 1024 bytes/s, kb/s 1000;
 * m/s and mib/s 1,048,576, mb/s 1,000,000. So "4mb/s" is 4,000,000 bytes per second.
 */
const SPEED_UNITS: Record<string, number> = {
  '': 1, 'k/s': 1024, 'kb/s': 1000, 'kib/s': 1024, 'm/s': 1_048_576, 'mb/s': 1_000_000, 'mib/s': 1_048_576,
};

/** A speed ("4mb/s", "500 kb/s", "1048576") in bytes per second, or null when it is not one. */
export function speedBytes(text: string | number): number | null {
  if (typeof text === 'number') return Number.isInteger(text) && text >= 0 ? text : null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z/]*)\s*$/i.exec(text);
  const multiplier = match ? SPEED_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || multiplier === undefined) return null;
  return Math.floor(Number(match[1]) * multiplier);
}

const SPEED_HINT = 'a speed in bytes per second, or with Bacula\'s units: "4mb/s" (4,000,000), "500kb/s", "1m/s" (1,048,576), "100k/s"';

/** `agentfd serve`: agentfd as a Bacula 9.6 File Daemon that a Director drives. */
export const serveSchema = z.strictObject({
  /** The Client's name, as the Director's Client resource has it. */
  name: z.string().regex(/^[A-Za-z0-9._:-]{1,127}$/, "a Bacula resource name: letters, digits, '.', '_', ':' or '-'").default('agentfd-fd'),
  address: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(1).max(65535).default(9102),
  /** Directors allowed to connect, each with the Client resource's Password. */
  directors: z.array(z.strictObject({ name: z.string().min(1), password: z.string().min(1) })).min(1, 'name at least one Director: [[serve.directors]] name = "bacula-dir", password = "..."'),
  /** How many jobs may run at once (Bacula's Maximum Concurrent Jobs). */
  max_jobs: z.number().int().min(1).default(20),
  /** Heartbeat Interval: during a job's data transfer, a heartbeat to the Director this often (0: none). */
  heartbeat_interval: z.union([z.literal(0), duration]).default(300),
  /** A connection that has not authenticated this long after it opened is dropped. */
  auth_timeout: duration.default('30s'),
  /** Connections waiting to authenticate, at most; one more drops the oldest of them. */
  max_unauthenticated: z.number().int().min(1).default(32),
  /** A failed authentication is answered after this long (bacula-fd: 6 s); 0: at once. */
  auth_failure_delay: z.union([z.literal(0), duration]).default('6s'),
  /** Maximum Bandwidth Per Job: bytes per second, or Bacula's units ("4mb/s", "500kb/s", "1m/s"); 0: none. */
  max_bandwidth_per_job: z.union([z.number().int().min(0), z.string().refine((t) => speedBytes(t) !== null, SPEED_HINT)], { error: SPEED_HINT }).default(0),
  /** GZIP records byte for byte bacula-fd's (the system's zlib, one stream per job, one block after another: one core). */
  gzip_like_bacula_fd: z.boolean().default(false),
  tls: serveTlsSchema.optional(),
});

export const configSchema = z.strictObject({
  plugin_dir: z.string().min(1).optional(),
  bacula: baculaSchema.default({}),
  serve: serveSchema.optional(),
  data_dir: z.string().min(1).optional(),
  /** Where volumes are written (default: <data_dir>/volumes). */
  storage_dir: z.string().min(1).optional(),
  /** Start a new volume when the current one would grow past this size: bytes, or "512M", "4G". */
  volume_size: volumeSize.default('1G'),
  isolation: isolation.default('process'),
  call_timeout: timeLimit.default('10m'),
  cancel_grace: timeLimit.default('10s'),
  agents: z.record(z.string(), agentSettingsSchema).default({}),
  /** Public key files (.pub) whose signatures agentfd scan accepts, besides each job's own sign_with key. */
  trusted_signers: z.array(z.string().min(1)).default([]),
  jobs: z
    .record(z.string().regex(JOB_NAME, 'a job name is 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit'), jobSchema)
    .default({}),
});

export type RawConfig = z.infer<typeof configSchema>;
export type JobConfig = z.infer<typeof jobSchema>;
