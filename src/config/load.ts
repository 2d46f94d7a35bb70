/**
 * Finding, reading and validating the configuration. Relative paths in a file are relative to
 * that file, so a configuration means the same thing whatever directory agentfd is started from.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { DEFAULT_PRELOAD } from '../agents/bacula-plugin/command.js';
import { ConfigError } from '../errors.js';
import { configSchema, durationMs, sizeBytes, speedBytes, type JobConfig } from './schema.js';
import { IS_WINDOWS } from '../platform/os.js';

export interface IsolationDefaults {
  mode: 'process' | 'none';
  callTimeoutMs: number;
  cancelGraceMs: number;
}

const DEFAULT_ISOLATION: IsolationDefaults = { mode: 'process', callTimeoutMs: 600_000, cancelGraceMs: 10_000 };

/** A duration of the configuration, in milliseconds (a bare number is seconds). */
export function parseDuration(value: number | string): number {
  const ms = durationMs(value);
  if (Number.isNaN(ms)) throw new ConfigError(`"${value}" is not a duration like 30s or 5m`);
  return ms;
}

/** [serve.tls] as read: the files are paths, checked and read only when `agentfd serve` starts. */
export interface TlsConfig {
  enable: boolean;
  require: boolean;
  certificate: string | null;
  key: string | null;
  caCertificateFile: string | null;
  verifyPeer: boolean;
  allowedCn: string[];
}

export interface AgentfdConfig {
  /** The file it came from, or null for the built-in defaults. */
  file: string | null;
  pluginDir: string;
  dataDir: string;
  storageDir: string;
  volumeSize: number;
  /** Options applied to every job of an agent, by agent Name(). */
  agentOptions: Record<string, Record<string, string>>;
  /** How each native agent is run: the global setting, overridden per agent. */
  isolation: IsolationDefaults;
  agentIsolation: Record<string, Partial<IsolationDefaults>>;
  jobs: Record<string, JobConfig>;
  /** Public key files whose signatures scan trusts (trusted_signers). */
  trustedSigners: string[];
  /** agentfd serve: the File Daemon a Bacula Director drives; null when not configured. */
  serve: {
    name: string;
    address: string;
    port: number;
    directors: { name: string; password: string }[];
    maxJobs: number;
    /** 0: no heartbeats. */
    heartbeatMs: number;
    authTimeoutMs: number;
    maxUnauthenticated: number;
    authFailureDelayMs: number;
    /** Maximum Bandwidth Per Job, bytes per second (0: none). */
    maxBandwidthPerJob: number;
    /** gzip_like_bacula_fd: GZIP as bacula-fd compresses it, in turn on one stream (one core). */
    gzipLikeBaculaFd: boolean;
    tls: TlsConfig | null;
  } | null;
  /** Bacula plugins: their extra directory (null: only *-fd.so files of pluginDir), and the libraries to preload. */
  bacula: { pluginDir: string | null; preload: string[] };
}

/** The package's root (two levels above dist/config/ or src/config/). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Where `npm install` puts the sample agents: the plugin directory when nothing else is said. On
 * Windows, node-gyp's MSVC build puts them in the same place; a tree built on Linux for Windows
 * (scripts/build-windows-dlls.sh, MinGW) has them in binding/build/windows/agents instead.
 */
export const SAMPLE_PLUGIN_DIR = samplePluginDir();

function samplePluginDir(): string {
  const gyp = path.join(PACKAGE_ROOT, 'binding', 'build', 'Release', 'agents');
  const mingw = path.join(PACKAGE_ROOT, 'binding', 'build', 'windows', 'agents');
  if (IS_WINDOWS && !existsSync(path.join(gyp, 'exchange.dll')) && existsSync(mingw)) return mingw;
  return gyp;
}

function defaultDataDir(): string {
  if (IS_WINDOWS) {
    return path.join(process.env.PROGRAMDATA ?? 'C:\\ProgramData', 'agentfd');
  }
  const xdg = process.env.XDG_DATA_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share'), 'agentfd');
}

/**
 * The configuration file to use: --config, else $AGENTFD_CONFIG, else ./agentfd.toml when it
 * exists, else none (built-in defaults).
 */
export function resolveConfigPath(explicit: string | undefined): string | null {
  if (explicit) return path.resolve(explicit);
  if (process.env.AGENTFD_CONFIG) return path.resolve(process.env.AGENTFD_CONFIG);
  const local = path.resolve('agentfd.toml');
  return existsSync(local) ? local : null;
}

/** "512M", "4G", "1.5GiB" or a byte count, in bytes (binary units). */
export function parseSize(value: number | string): number {
  const bytes = sizeBytes(value);
  if (Number.isNaN(bytes)) throw new ConfigError(`"${value}" is not a size like 512M or 4G`);
  return bytes;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_key') {
    // A record key that failed its own check (a job name): show that check's message.
    return `${where}: ${issue.issues[0]?.message ?? issue.message}`;
  }
  if (issue.code === 'invalid_type') {
    return `${where}: expected ${issue.expected}${issue.input === undefined ? ' (the key is missing)' : ''}`;
  }
  return `${where}: ${issue.message}`;
}

/** Parse and validate configuration text. `file` names it in messages and anchors relative paths. */
export function parseConfig(text: string, file: string): AgentfdConfig {
  let tree: unknown;
  try {
    tree = parseToml(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const firstLine = error.message.split('\n')[0] ?? error.message;
      throw new ConfigError(`${file}:${error.line}:${error.column}: not valid TOML: ${firstLine}`, { cause: error });
    }
    throw new ConfigError(`${file}: not valid TOML: ${String(error)}`, { cause: error });
  }
  const result = configSchema.safeParse(tree);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${describeIssue(issue)}`);
    throw new ConfigError(`${file}: invalid configuration:\n${lines.join('\n')}`);
  }
  const raw = result.data;
  const base = path.dirname(file);
  const dataDir = raw.data_dir ? path.resolve(base, raw.data_dir) : defaultDataDir();
  // Key, passphrase and directory paths of jobs are relative to the file, like the top-level ones.
  const jobs = Object.fromEntries(
    Object.entries(raw.jobs).map(([name, job]) => [
      name,
      {
        ...job,
        paths: job.paths?.map((p) => path.resolve(base, p)),
        encrypt_to: job.encrypt_to.map((p) => path.resolve(base, p)),
        passphrase_file: job.passphrase_file && path.resolve(base, job.passphrase_file),
        sign_with: job.sign_with && path.resolve(base, job.sign_with),
      },
    ]),
  );
  return {
    file,
    pluginDir: raw.plugin_dir ? path.resolve(base, raw.plugin_dir) : SAMPLE_PLUGIN_DIR,
    dataDir,
    storageDir: raw.storage_dir ? path.resolve(base, raw.storage_dir) : path.join(dataDir, 'volumes'),
    volumeSize: parseSize(raw.volume_size),
    agentOptions: Object.fromEntries(Object.entries(raw.agents).map(([name, s]) => [name, s.options])),
    isolation: { mode: raw.isolation, callTimeoutMs: parseDuration(raw.call_timeout), cancelGraceMs: parseDuration(raw.cancel_grace) },
    agentIsolation: Object.fromEntries(
      Object.entries(raw.agents).map(([name, s]) => [
        name,
        {
          ...(s.isolation ? { mode: s.isolation } : {}),
          ...(s.call_timeout !== undefined ? { callTimeoutMs: parseDuration(s.call_timeout) } : {}),
          ...(s.cancel_grace !== undefined ? { cancelGraceMs: parseDuration(s.cancel_grace) } : {}),
        },
      ]),
    ),
    jobs,
    trustedSigners: raw.trusted_signers.map((p) => path.resolve(base, p)),
    serve: raw.serve
      ? {
          name: raw.serve.name,
          address: raw.serve.address,
          port: raw.serve.port,
          directors: raw.serve.directors,
          maxJobs: raw.serve.max_jobs,
          heartbeatMs: raw.serve.heartbeat_interval === 0 ? 0 : parseDuration(raw.serve.heartbeat_interval),
          authTimeoutMs: parseDuration(raw.serve.auth_timeout),
          maxUnauthenticated: raw.serve.max_unauthenticated,
          authFailureDelayMs: raw.serve.auth_failure_delay === 0 ? 0 : parseDuration(raw.serve.auth_failure_delay),
          maxBandwidthPerJob: speedBytes(raw.serve.max_bandwidth_per_job) ?? 0,
          gzipLikeBaculaFd: raw.serve.gzip_like_bacula_fd,
          tls: raw.serve.tls
            ? {
                enable: raw.serve.tls.enable,
                require: raw.serve.tls.require,
                certificate: raw.serve.tls.certificate ? path.resolve(base, raw.serve.tls.certificate) : null,
                key: raw.serve.tls.key ? path.resolve(base, raw.serve.tls.key) : null,
                caCertificateFile: raw.serve.tls.ca_certificate_file ? path.resolve(base, raw.serve.tls.ca_certificate_file) : null,
                verifyPeer: raw.serve.tls.verify_peer,
                allowedCn: raw.serve.tls.allowed_cn,
              }
            : null,
        }
      : null,
    bacula: {
      pluginDir: raw.bacula.plugin_dir ? path.resolve(base, raw.bacula.plugin_dir) : null,
      preload: raw.bacula.preload ? raw.bacula.preload.map((p) => path.resolve(base, p)) : [...DEFAULT_PRELOAD],
    },
  };
}

/** Load the configuration from `file`, or the built-in defaults when `file` is null. */
export function loadConfig(file: string | null): AgentfdConfig {
  if (file === null) {
    const dataDir = defaultDataDir();
    return {
      file: null, pluginDir: SAMPLE_PLUGIN_DIR, dataDir, storageDir: path.join(dataDir, 'volumes'), volumeSize: parseSize('1G'),
      agentOptions: {}, isolation: DEFAULT_ISOLATION, agentIsolation: {}, jobs: {}, trustedSigners: [],
      bacula: { pluginDir: null, preload: [...DEFAULT_PRELOAD] },
      serve: null,
    };
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      `${file}: cannot read the configuration (${code === 'ENOENT' ? 'no such file' : code}). Pass --config with an existing file; examples/agentfd.toml is a starting point.`,
      { cause: error },
    );
  }
  return parseConfig(text, file);
}
