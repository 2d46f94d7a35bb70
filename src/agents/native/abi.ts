/**
 * The native agent ABI (binding/include/agentfd_agent.h) as koffi sees it. Everything that knows a
 * C layout or a C value lives here, so a change to the header has exactly one TypeScript twin to
 * update. The words these values stand for (levels, capabilities, kinds) are the vocabulary of
 * ../types.ts, which the rest of agentfd imports instead of this module.
 *
 * Function pointers inside tables are declared as `void *` and turned into callables with
 * koffi.decode(pointer, prototype) only after the table's struct_size says the field exists: an
 * agent built against an older header hands out a shorter table, and reading past it would be
 * reading someone else's memory.
 */
import koffi, { type TypeObject } from 'koffi';
import type { Capability, FileKind, Level, LogLevel, StreamType } from '../types.js';

export const AFD_OK = 0;
export const AFD_DONE = 1;

/** Return codes, by value, with the names the header gives them. */
export const RETURN_CODES: Readonly<Record<number, string>> = {
  [-1]: 'AFD_E_FAIL',
  [-2]: 'AFD_E_VERSION',
  [-3]: 'AFD_E_INVALID',
  [-4]: 'AFD_E_CANCELLED',
  [-5]: 'AFD_E_UNSUPPORTED',
  [-6]: 'AFD_E_IO',
  [-7]: 'AFD_E_NOMEM',
  [-8]: 'AFD_E_REFUSED',
};
export const AFD_E_VERSION = -2;

/** The bit of each capability in afd_agent_api.capabilities. */
export const CAPABILITY_BITS = {
  full: 1n << 0n,
  incremental: 1n << 1n,
  differential: 1n << 2n,
  restore: 1n << 3n,
  'own-state': 1n << 4n,
  'raw-restorable': 1n << 5n,
  accurate: 1n << 6n,
  'thread-safe': 1n << 7n,
  cancel: 1n << 8n,
  estimate: 1n << 9n,
} as const satisfies Record<Capability, bigint>;

/** Capabilities that only make sense from generation 2 on (their entry points are gen 2). */
export const GEN2_CAPABILITIES: readonly Capability[] = ['own-state', 'accurate', 'estimate'];

/** The header's value of each level (afd_backup_params.level). */
export const LEVEL_CODES = { full: 1, incremental: 2, differential: 3 } as const satisfies Record<Level, number>;

/** The header's values of afd_file.kind, afd_stream.type and the log levels, with their names. */
export const FILE_KIND_BY_CODE = { 1: 'regular', 2: 'directory', 3: 'symlink', 4: 'virtual' } as const satisfies Record<number, FileKind>;
export const STREAM_TYPE_BY_CODE = { 1: 'data', 2: 'metadata', 3: 'named' } as const satisfies Record<number, StreamType>;
export const LOG_LEVEL_BY_CODE = { 1: 'error', 2: 'warning', 3: 'info', 4: 'debug' } as const satisfies Record<number, LogLevel>;

export const AFD_STREAM_RAW_RESTORABLE = 1;
export const AFD_FILE_SEEN = 1;
export const AFD_STATUS_OK = 0;
export const AFD_STATUS_FAILED = 1;

// ---- structures -------------------------------------------------------------------------------

export const NegotiateRequest = koffi.struct('afd_negotiate_request', {
  struct_size: 'uint32_t',
  host_min_abi: 'uint32_t',
  host_max_abi: 'uint32_t',
  reserved: 'uint32_t',
  host_name: 'const char *',
  host_version: 'const char *',
  host_platform: 'const char *',
});

export const NegotiateReply = koffi.struct('afd_negotiate_reply', {
  struct_size: 'uint32_t',
  agent_min_abi: 'uint32_t',
  agent_max_abi: 'uint32_t',
  chosen_abi: 'uint32_t',
  api: 'void *',
});

export const Kv = koffi.struct('afd_kv', { key: 'void *', value: 'void *' });

export const StreamDesc = koffi.struct('afd_stream', {
  struct_size: 'uint32_t',
  type: 'uint32_t',
  name: 'void *',
  size_hint: 'int64_t',
  flags: 'uint32_t',
  reserved: 'uint32_t',
});

export const FileDesc = koffi.struct('afd_file', {
  struct_size: 'uint32_t',
  kind: 'uint32_t',
  path: 'void *',
  link_target: 'void *',
  mode: 'uint32_t',
  flags: 'uint32_t',
  mtime_ns: 'int64_t',
  size: 'int64_t',
  win_attributes: 'uint32_t',
  stream_count: 'uint32_t',
  streams: 'void *',
});

/** afd_stream and afd_file as the host builds them for restore_start_file (strings copied in). */
export const StreamDescIn = koffi.struct('afd_stream_in', {
  struct_size: 'uint32_t',
  type: 'uint32_t',
  name: 'const char *',
  size_hint: 'int64_t',
  flags: 'uint32_t',
  reserved: 'uint32_t',
});

export const FileDescIn = koffi.struct('afd_file_in', {
  struct_size: 'uint32_t',
  kind: 'uint32_t',
  path: 'const char *',
  link_target: 'const char *',
  mode: 'uint32_t',
  flags: 'uint32_t',
  mtime_ns: 'int64_t',
  size: 'int64_t',
  win_attributes: 'uint32_t',
  stream_count: 'uint32_t',
  streams: 'const afd_stream_in *',
});

export const OpenParams = koffi.struct('afd_open_params', {
  struct_size: 'uint32_t',
  abi_version: 'uint32_t',
  host: 'void *',
  host_ctx: 'void *',
  job_name: 'const char *',
  job_id: 'uint64_t',
});

export const BackupParams = koffi.struct('afd_backup_params', {
  struct_size: 'uint32_t',
  level: 'uint32_t',
  since_ns: 'int64_t',
  job_start_ns: 'int64_t',
  delivered_level: 'uint32_t',
  reserved: 'uint32_t',
});

export const RestoreParams = koffi.struct('afd_restore_params', {
  struct_size: 'uint32_t',
  source_abi: 'uint32_t',
  target: 'const char *',
  source_agent_version: 'const char *',
  flags: 'uint32_t',
  reserved: 'uint32_t',
});

export const Estimate = koffi.struct('afd_estimate', {
  struct_size: 'uint32_t',
  reserved: 'uint32_t',
  files: 'int64_t',
  bytes: 'int64_t',
});

// ---- the agent's function table ---------------------------------------------------------------

/** Entry points of afd_agent_api in header order, with the generation that introduced each. */
export const AGENT_ENTRY_POINTS = [
  ['open', 1],
  ['close', 1],
  ['last_error', 1],
  ['backup_prepare', 1],
  ['backup_next_file', 1],
  ['backup_start_stream', 1],
  ['backup_read', 1],
  ['backup_end_stream', 1],
  ['backup_end_file', 1],
  ['restore_prepare', 1],
  ['restore_start_file', 1],
  ['restore_write', 1],
  ['restore_end_file', 1],
  ['restore_finish', 1],
  ['backup_finish', 2],
  ['estimate', 2],
] as const;
export type AgentEntryPoint = (typeof AGENT_ENTRY_POINTS)[number][0];

export const AgentApi = koffi.struct('afd_agent_api', {
  struct_size: 'uint32_t',
  abi_version: 'uint32_t',
  capabilities: 'uint64_t',
  info: 'void *',
  info_count: 'uint32_t',
  reserved: 'uint32_t',
  ...Object.fromEntries(AGENT_ENTRY_POINTS.map(([name]) => [name, 'void *'])),
});

/** The size of a generation's table: everything up to the first entry point of the next one. */
export function agentApiSizeFor(generation: number): number {
  const next = AGENT_ENTRY_POINTS.find(([, gen]) => gen > generation);
  return next ? koffi.offsetof(AgentApi, next[0]) : AgentApi.size;
}

/** Prototypes of the entry points. Session handles are `void *` (BigInt) on this side. */
export const AgentProtos = {
  open: koffi.proto('int32_t afd_open_fn(const afd_open_params *params, _Out_ void **out)'),
  close: koffi.proto('void afd_close_fn(void *session)'),
  last_error: koffi.proto('void *afd_last_error_fn(void *session)'),
  backup_prepare: koffi.proto('int32_t afd_backup_prepare_fn(void *session, _Inout_ afd_backup_params *params)'),
  backup_next_file: koffi.proto('int32_t afd_backup_next_file_fn(void *session, _Out_ void **out)'),
  backup_start_stream: koffi.proto('int32_t afd_backup_start_stream_fn(void *session, uint32_t index)'),
  backup_read: koffi.proto('int64_t afd_backup_read_fn(void *session, uint8_t *buf, uint64_t cap)'),
  backup_end_stream: koffi.proto('int32_t afd_backup_end_stream_fn(void *session)'),
  backup_end_file: koffi.proto('int32_t afd_backup_end_file_fn(void *session)'),
  restore_prepare: koffi.proto('int32_t afd_restore_prepare_fn(void *session, const afd_restore_params *params)'),
  restore_start_file: koffi.proto('int32_t afd_restore_start_file_fn(void *session, const afd_file_in *file)'),
  restore_write: koffi.proto(
    'int32_t afd_restore_write_fn(void *session, uint32_t index, const uint8_t *buf, uint64_t len)',
  ),
  restore_end_file: koffi.proto('int32_t afd_restore_end_file_fn(void *session, int32_t status)'),
  restore_finish: koffi.proto('int32_t afd_restore_finish_fn(void *session)'),
  backup_finish: koffi.proto('int32_t afd_backup_finish_fn(void *session, int32_t status)'),
  estimate: koffi.proto('int32_t afd_estimate_fn(void *session, _Inout_ afd_estimate *out)'),
} satisfies Record<AgentEntryPoint, TypeObject>;

// ---- the host's function table ----------------------------------------------------------------

export const HostProtos = {
  log: koffi.proto('void afd_host_log_fn(void *ctx, int32_t level, void *message)'),
  fileset_check: koffi.proto('int32_t afd_host_fileset_check_fn(void *ctx, void *path)'),
  get_option: koffi.proto('int64_t afd_host_get_option_fn(void *ctx, void *key, void *buf, uint64_t cap)'),
  is_cancelled: koffi.proto('int32_t afd_host_is_cancelled_fn(void *ctx)'),
  state_get: koffi.proto('int64_t afd_host_state_get_fn(void *ctx, void *buf, uint64_t cap)'),
  state_set: koffi.proto('int32_t afd_host_state_set_fn(void *ctx, void *data, uint64_t len)'),
  restore_open: koffi.proto('int64_t afd_host_restore_open_fn(void *ctx, void *path, uint32_t flags)'),
  restore_rename: koffi.proto('int32_t afd_host_restore_rename_fn(void *ctx, void *from, void *to)'),
  restore_remove: koffi.proto('int32_t afd_host_restore_remove_fn(void *ctx, void *path)'),
};

export const HostApi = koffi.struct('afd_host_api', {
  struct_size: 'uint32_t',
  abi_version: 'uint32_t',
  log: 'void *',
  fileset_check: 'void *',
  get_option: 'void *',
  is_cancelled: 'void *',
  state_get: 'void *',
  state_set: 'void *',
  restore_open: 'void *',
  restore_rename: 'void *',
  restore_remove: 'void *',
});

/** The size of the host table a generation knows (gen 1 ends before state_get, gen 2 before restore_open). */
export function hostApiSizeFor(generation: number): number {
  if (generation >= 3) return HostApi.size;
  return koffi.offsetof(HostApi, generation >= 2 ? 'restore_open' : 'state_get');
}
