/**
 * The Bacula 9.6 File Daemon plugin ABI (FD_PLUGIN_INTERFACE_VERSION 14), as koffi types.
 *
 * Unlike agentfd's own header, this ABI is fixed: a plugin checks nothing of the host, and
 * bacula-fd checks that the plugin's magic, version, licence and pInfo size are exactly its own.
 * The layouts are those of Bacula 9.6.7's filed/fd_plugins.h and lib/plugins.h on x86-64 Linux
 * with glibc (every enum an int, bool one byte, pointers eight);
 * every size is asserted below, so a mistake here fails at load instead of corrupting a plugin's
 * memory. On Windows Bacula has its own `struct stat` and packets differ: the adapter refuses to
 * load Bacula plugins anywhere but Linux x86-64 (see library.ts).
 */
import koffi from 'koffi';

export const FD_PLUGIN_INTERFACE_VERSION = 14;
export const FD_PLUGIN_MAGIC = '*FDPluginData*';
/** The licences bacula-fd accepts, compared exactly (fd_plugins.c: is_plugin_compatible). */
export const ACCEPTED_LICENSES = ['Bacula AGPLv3', 'AGPLv3', 'Bacula'] as const;

/** bRC */
export const bRC = { OK: 0, Stop: 1, Error: 2, More: 3, Term: 4, Seen: 5, Core: 6, Skip: 7, Cancel: 8 } as const;
export const BRC_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(bRC).map(([k, v]) => [v, `bRC_${k}`]));

/** bEventType: the events this adapter sends. */
export const bEvent = {
  JobStart: 1,
  JobEnd: 2,
  StartBackupJob: 3,
  EndBackupJob: 4,
  StartRestoreJob: 5,
  EndRestoreJob: 6,
  BackupCommand: 9,
  RestoreCommand: 10,
  EstimateCommand: 11,
  Level: 12,
  Since: 13,
  CancelCommand: 14,
  EndFileSet: 19,
  PluginCommand: 20,
} as const;

/** bVariable numbers of getBaculaValue / setBaculaValue. */
export const bVar = {
  JobId: 1,
  FDName: 2,
  Level: 3,
  Type: 4,
  Client: 5,
  JobName: 6,
  JobStatus: 7,
  SinceTime: 8,
  Accurate: 9,
  FileSeen: 10,
  VssObject: 11,
  VssDllHandle: 12,
  WorkingDir: 13,
  Where: 14,
  RegexWhere: 15,
  ExePath: 16,
  Version: 17,
  DistName: 18,
  PrevJobName: 20,
  PrefixLinks: 21,
  InteractiveSession: 22,
  FileIndex: 23,
  Replace: 24,
} as const;

/** JobMessage types (lib/message.h) that mean the job went wrong. */
export const M_ABORT = 1;
export const M_FATAL = 3;
export const M_ERROR = 4;
export const M_WARNING = 5;
export const MESSAGE_TYPES: Readonly<Record<number, string>> = {
  1: 'abort', 2: 'debug', 3: 'fatal', 4: 'error', 5: 'warning', 6: 'info', 7: 'saved', 8: 'not saved', 9: 'skipped',
  10: 'mount', 11: 'error', 12: 'terminate', 13: 'restored', 14: 'security', 15: 'alert', 16: 'volume',
};

/** File types (filetypes.h) a plugin may give startBackupFile. */
export const FT = { REGE: 2, REG: 3, LNK: 4, DIREND: 5, SPEC: 6, FIFO: 17, DIRBEGIN: 18, RESTORE_FIRST: 25, PLUGIN_CONFIG: 27, PLUGIN_CONFIG_FILLED: 28 } as const;

/** createFile's answer in restore_pkt.create_status. */
export const CF = { SKIP: 1, ERROR: 2, EXTRACT: 3, CREATED: 4, CORE: 5 } as const;

/** io_pkt.func */
export const IO = { OPEN: 1, READ: 2, WRITE: 3, CLOSE: 4, SEEK: 5 } as const;

/** open(2) flags as bacula-fd passes them on Linux. */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_CREAT = 0o100;
export const O_TRUNC = 0o1000;

/** The stream numbers that describe a plugin file's attributes and data (streams.h). */
export const STREAM_UNIX_ATTRIBUTES = 1;
export const STREAM_FILE_DATA = 2;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

// ---- structures ---------------------------------------------------------------------------------

export const BInfo = koffi.struct('bacula_binfo', { size: 'uint32_t', version: 'uint32_t' });

export const PInfo = koffi.struct('bacula_pinfo', {
  size: 'uint32_t',
  version: 'uint32_t',
  plugin_magic: 'void *',
  plugin_license: 'void *',
  plugin_author: 'void *',
  plugin_date: 'void *',
  plugin_version: 'void *',
  plugin_description: 'void *',
});

/** pFuncs: the plugin's entry points, in header order. */
export const PLUGIN_ENTRY_POINTS = [
  'newPlugin',
  'freePlugin',
  'getPluginValue',
  'setPluginValue',
  'handlePluginEvent',
  'startBackupFile',
  'endBackupFile',
  'startRestoreFile',
  'endRestoreFile',
  'pluginIO',
  'createFile',
  'setFileAttributes',
  'checkFile',
  'handleXACLdata',
  'checkStream',
] as const;
export type PluginEntryPoint = (typeof PLUGIN_ENTRY_POINTS)[number];
/** Entry points bacula-fd calls only after a NULL check; the others it calls unconditionally. */
export const OPTIONAL_ENTRY_POINTS: readonly PluginEntryPoint[] = ['checkFile', 'handleXACLdata', 'checkStream', 'getPluginValue', 'setPluginValue'];

export const PFuncs = koffi.struct('bacula_pfuncs', {
  size: 'uint32_t',
  version: 'uint32_t',
  ...Object.fromEntries(PLUGIN_ENTRY_POINTS.map((name) => [name, 'void *'])),
});

/** bFuncs: what the host offers the plugin, in header order. */
export const HOST_FUNCTIONS = [
  'registerBaculaEvents',
  'getBaculaValue',
  'setBaculaValue',
  'JobMessage',
  'DebugMessage',
  'baculaMalloc',
  'baculaFree',
  'AddExclude',
  'AddInclude',
  'AddOptions',
  'AddRegex',
  'AddWild',
  'NewOptions',
  'NewInclude',
  'NewPreInclude',
  'checkChanges',
  'AcceptFile',
] as const;
export type HostFunction = (typeof HOST_FUNCTIONS)[number];

export const BFuncs = koffi.struct('bacula_bfuncs', {
  size: 'uint32_t',
  version: 'uint32_t',
  ...Object.fromEntries(HOST_FUNCTIONS.map((name) => [name, 'void *'])),
});

const Timespec = koffi.struct('bacula_timespec', { tv_sec: 'int64_t', tv_nsec: 'int64_t' });

/** glibc's x86-64 `struct stat` (144 bytes). */
export const Stat = koffi.struct('bacula_stat', {
  st_dev: 'uint64_t',
  st_ino: 'uint64_t',
  st_nlink: 'uint64_t',
  st_mode: 'uint32_t',
  st_uid: 'uint32_t',
  st_gid: 'uint32_t',
  pad0: 'int32_t',
  st_rdev: 'uint64_t',
  st_size: 'int64_t',
  st_blksize: 'int64_t',
  st_blocks: 'int64_t',
  st_atim: Timespec,
  st_mtim: Timespec,
  st_ctim: Timespec,
  reserved: koffi.array('int64_t', 3),
});

export const SavePkt = koffi.struct('bacula_save_pkt', {
  pkt_size: 'int32_t',
  fname: 'void *',
  link: 'void *',
  statp: Stat,
  type: 'int32_t',
  flags: 'uint64_t',
  no_read: 'bool',
  portable: 'bool',
  accurate_found: 'bool',
  cmd: 'void *',
  delta_seq: 'uint32_t',
  object_name: 'void *',
  object: 'void *',
  object_len: 'int32_t',
  index: 'int32_t',
  LinkFI: 'int32_t',
  pkt_end: 'int32_t',
});

export const RestorePkt = koffi.struct('bacula_restore_pkt', {
  pkt_size: 'int32_t',
  stream: 'int32_t',
  data_stream: 'int32_t',
  type: 'int32_t',
  file_index: 'int32_t',
  LinkFI: 'int32_t',
  uid: 'uint32_t',
  statp: Stat,
  attrEx: 'void *',
  ofname: 'void *',
  olname: 'void *',
  where: 'void *',
  RegexWhere: 'void *',
  replace: 'int32_t',
  create_status: 'int32_t',
  delta_seq: 'uint32_t',
  pkt_end: 'int32_t',
});

export const IoPkt = koffi.struct('bacula_io_pkt', {
  pkt_size: 'int32_t',
  func: 'int32_t',
  count: 'int32_t',
  flags: 'int32_t',
  mode: 'uint32_t',
  buf: 'void *',
  fname: 'void *',
  status: 'int32_t',
  io_errno: 'int32_t',
  lerror: 'int32_t',
  whence: 'int32_t',
  offset: 'int64_t',
  win32: 'bool',
  pkt_end: 'int32_t',
});

/** The sizes of these types in bacula-fd 9.6.7 on x86-64 Linux (gcc, glibc): checked once, at import. */
const EXPECTED_SIZES: [string, { size: number } | number, number][] = [
  ['bInfo', koffi.sizeof(BInfo), 8],
  ['pInfo', koffi.sizeof(PInfo), 56],
  ['pFuncs', koffi.sizeof(PFuncs), 128],
  ['bFuncs', koffi.sizeof(BFuncs), 144],
  ['struct stat', koffi.sizeof(Stat), 144],
  ['save_pkt', koffi.sizeof(SavePkt), 240],
  ['restore_pkt', koffi.sizeof(RestorePkt), 232],
  ['io_pkt', koffi.sizeof(IoPkt), 72],
];
for (const [what, size, expected] of EXPECTED_SIZES) {
  if (size !== expected) throw new Error(`internal error: the Bacula ${what} layout is ${String(size)} bytes, expected ${expected}`);
}
export const PINFO_SIZE = 56;

// ---- prototypes ---------------------------------------------------------------------------------

/** Plugin entry points, with every pointer as `void *` so that the adapter owns all memory. */
export const PluginProtos = {
  newPlugin: koffi.proto('int bacula_new_plugin(void *ctx)'),
  freePlugin: koffi.proto('int bacula_free_plugin(void *ctx)'),
  handlePluginEvent: koffi.proto('int bacula_handle_event(void *ctx, void *event, void *value)'),
  startBackupFile: koffi.proto('int bacula_start_backup_file(void *ctx, void *sp)'),
  endBackupFile: koffi.proto('int bacula_end_backup_file(void *ctx)'),
  startRestoreFile: koffi.proto('int bacula_start_restore_file(void *ctx, void *cmd)'),
  endRestoreFile: koffi.proto('int bacula_end_restore_file(void *ctx)'),
  pluginIO: koffi.proto('int bacula_plugin_io(void *ctx, void *io)'),
  createFile: koffi.proto('int bacula_create_file(void *ctx, void *rp)'),
  setFileAttributes: koffi.proto('int bacula_set_file_attributes(void *ctx, void *rp)'),
  checkFile: koffi.proto('int bacula_check_file(void *ctx, void *fname)'),
};

/** The host functions implemented in JavaScript (the variadic ones are in the C shim). */
export const HostProtos = {
  getBaculaValue: koffi.proto('int bacula_get_value(void *ctx, int var, void *value)'),
  setBaculaValue: koffi.proto('int bacula_set_value(void *ctx, int var, void *value)'),
  addString: koffi.proto('int bacula_add_string(void *ctx, void *text)'),
  addPattern: koffi.proto('int bacula_add_pattern(void *ctx, void *item, int type)'),
  newBlock: koffi.proto('int bacula_new_block(void *ctx)'),
  withSavePkt: koffi.proto('int bacula_with_save_pkt(void *ctx, void *sp)'),
  /** The shim's sink: one formatted message (afd_bacula_shim.h). */
  sink: koffi.proto('void afd_bacula_sink_fn(void *ctx, int32_t kind, int32_t type, int64_t mtime, void *file, int32_t line, void *text)'),
};

export const ShimTable = koffi.struct('afd_bacula_shim_table', {
  size: 'uint32_t',
  version: 'uint32_t',
  register_events: 'void *',
  job_message: 'void *',
  debug_message: 'void *',
  bacula_malloc: 'void *',
  bacula_free: 'void *',
});
