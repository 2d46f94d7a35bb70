/**
 * Loading an unmodified Bacula 9.6 File Daemon plugin (`*-fd.so`) the way bacula-fd does: dlopen,
 * loadPlugin(bInfo, bFuncs, &pInfo, &pFuncs), then the same four checks in the same order (magic,
 * interface version 14, licence, pInfo size), each refusal saying what was wanted and what the
 * plugin has (bacula-fd 9.6's filed/fd_plugins.c, is_plugin_compatible).
 *
 * Bacula plugins resolve some symbols from their host: Debian's bpipe-fd.so imports eight from
 * libbac and has no DT_NEEDED on it, so libbac must be in the global scope before the plugin is
 * opened. The libraries listed in `[bacula] preload` are opened with RTLD_GLOBAL first; when that
 * is not enough, the refusal names the missing symbol.
 */
import path from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';
import { AgentLoadError, messageOf } from '../../errors.js';
import type { Capability } from '../types.js';
import { readCString } from '../native/cstring.js';
import { sniffBinaryFormat, type RefusalCode } from '../native/library.js';
import {
  ACCEPTED_LICENSES,
  BInfo,
  FD_PLUGIN_INTERFACE_VERSION,
  FD_PLUGIN_MAGIC,
  OPTIONAL_ENTRY_POINTS,
  PFuncs,
  PINFO_SIZE,
  PInfo,
  PLUGIN_ENTRY_POINTS,
  PluginProtos,
  type PluginEntryPoint,
} from './abi.js';
import { DEFAULT_PRELOAD, baculaPluginName } from './command.js';
import { hostFunctionTable, onLoadMessage } from './host-functions.js';
import { BaculaPluginSession, type BaculaPluginLibrary, type PluginFunction } from './session.js';
import { IS_LINUX } from '../../platform/os.js';

/**
 * What a Bacula plugin can do in agentfd. Bacula hands every plugin the job's level and since-time
 * and lets it decide what to send; files it stops sending are deleted in accurate mode unless its
 * checkFile() says they still exist; its stream is whatever its reader produced, usable as a file.
 */
export const BACULA_CAPABILITIES: readonly Capability[] = ['full', 'incremental', 'differential', 'restore', 'raw-restorable', 'accurate'];

function refuse(code: RefusalCode, file: string, message: string, cause?: unknown): never {
  throw new AgentLoadError(code, file, `${file}: ${message}`, cause === undefined ? undefined : { cause });
}

/** Libraries opened with RTLD_GLOBAL for plugins, kept for the life of the process (plugins bind to them). */
const preloaded = new Map<string, { handle: LibraryHandle | null; problem: string | null }>();

function preload(libraries: readonly string[]): string[] {
  const problems: string[] = [];
  for (const library of libraries) {
    let entry = preloaded.get(library);
    if (!entry) {
      try {
        entry = { handle: koffi.load(library, { global: true }), problem: null };
      } catch (error) {
        entry = { handle: null, problem: `${library} could not be preloaded (${messageOf(error).replace(/^Failed to load shared library:\s*/, '')})` };
      }
      preloaded.set(library, entry);
    }
    if (entry.problem) problems.push(entry.problem);
  }
  return problems;
}

/** The readable name inside a simple Itanium-mangled symbol ("_Z18sm_get_pool_memoryPKcii" -> "sm_get_pool_memory"). */
export function demangledName(symbol: string): string {
  const nested = /^_ZN(?:\d+\w+?)*?(\d+)([A-Za-z_]\w*)/.exec(symbol);
  const simple = /^_Z(\d+)([A-Za-z_]\w*)/.exec(symbol);
  const match = simple ?? nested;
  if (!match) return symbol;
  return match[2]!.slice(0, Number(match[1]));
}

function dlopen(file: string, preloadList: readonly string[], preloadProblems: string[]): LibraryHandle {
  try {
    return koffi.load(file);
  } catch (error) {
    const text = messageOf(error).replace(/^Failed to load shared library:\s*/, '');
    const symbol = /undefined symbol: (\S+)/.exec(text)?.[1];
    if (symbol) {
      const readable = demangledName(symbol);
      const preloadText = preloadList.length === 0 ? 'no libraries are preloaded ([bacula] preload is empty)' : `preloaded: ${preloadList.join(', ')}`;
      const problems = preloadProblems.length > 0 ? ` ${preloadProblems.join('; ')}.` : '';
      refuse(
        'E_MISSING_SYMBOL',
        file,
        `this Bacula plugin needs the symbol ${readable}${readable !== symbol ? ` (${symbol})` : ''}, which bacula-fd provides from its own libraries (libbac), and ${preloadText}.${problems} ` +
          `Install the Bacula file daemon's libraries (Debian: apt-get install bacula-fd) and list the one that exports ${readable} in [bacula] preload (Debian: ${DEFAULT_PRELOAD[0]}).`,
        error,
      );
    }
    refuse('E_LOAD_FAILED', file, `cannot be loaded: ${text}. Install the libraries it depends on (ldd shows which are missing).`, error);
  }
}

function pinfoString(value: unknown, what: string, file: string): string {
  const text = readCString(value, 4096);
  if (text.ok) return text.value;
  if (text.reason === 'null') return '';
  return refuse('E_BAD_TABLE', file, `the plugin's ${what} is ${text.reason === 'too-long' ? 'longer than 4 KiB' : 'not valid UTF-8'}`);
}

/**
 * Load the Bacula plugin at `file` (whose permissions the caller has checked), after the
 * `preloadList` libraries. Throws AgentLoadError with bacula-fd's reason when it is refused.
 */
export function loadBaculaPlugin(file: string, preloadList: readonly string[] = DEFAULT_PRELOAD): BaculaPluginLibrary {
  // A plugin keeps its bFuncs and state in globals, and dlopen gives a second load of the same file
  // the same globals: loaded twice and unloaded once, its unloadPlugin() would pull them from under
  // the other user. So, as in bacula-fd, each file is loaded once per process and shared.
  const shared = loadedPlugins.get(file);
  if (shared) {
    shared.refs++;
    return handle(shared);
  }
  const plugin = loadOnce(file, preloadList);
  const entry = { plugin, refs: 1 };
  loadedPlugins.set(file, entry);
  return handle(entry);
}

const loadedPlugins = new Map<string, { plugin: BaculaPluginLibrary; refs: number }>();

function handle(entry: { plugin: BaculaPluginLibrary; refs: number }): BaculaPluginLibrary {
  let released = false;
  const self: BaculaPluginLibrary = {
    ...entry.plugin,
    openSession: (options) => BaculaPluginSession.open(self, options),
    unload() {
      if (released) return;
      released = true;
      if (--entry.refs === 0) {
        loadedPlugins.delete(entry.plugin.file);
        entry.plugin.unload();
      }
    },
  };
  return self;
}

function loadOnce(file: string, preloadList: readonly string[]): BaculaPluginLibrary {
  if (!IS_LINUX || process.arch !== 'x64') {
    refuse('E_WRONG_PLATFORM', file, `Bacula 9.6 plugins are supported on Linux x86-64 only (their packets embed the platform's struct stat), and this agentfd runs on ${process.platform}-${process.arch}.`);
  }
  const format = sniffBinaryFormat(file);
  if (format !== 'elf') refuse(format === 'pe' ? 'E_WRONG_PLATFORM' : 'E_NOT_LIBRARY', file, `not a Linux shared library (${format}); Bacula plugins here are *-fd.so files built for Linux.`);
  const problems = preload(preloadList);
  const lib = dlopen(file, preloadList, problems);
  const name = baculaPluginName(path.basename(file));
  const said: string[] = [];
  try {
    let loadPlugin: (...args: unknown[]) => number;
    try {
      loadPlugin = lib.func('int loadPlugin(void *binfo, void *bfuncs, _Out_ void **pinfo, _Out_ void **pfuncs)') as (...args: unknown[]) => number;
      lib.func('int unloadPlugin(void)');
    } catch (error) {
      refuse('E_MISSING_SYMBOL', file, `named like a Bacula plugin (-fd.so) but it does not export loadPlugin() and unloadPlugin(), so it is not one. Remove it or rename it.`, error);
    }
    const binfo = koffi.alloc('uint8_t', BInfo.size) as bigint; // the plugin may keep it: never freed
    koffi.encode(binfo, BInfo, { size: BInfo.size, version: FD_PLUGIN_INTERFACE_VERSION });
    const pinfo: unknown[] = [null];
    const pfuncs: unknown[] = [null];
    onLoadMessage((kind, type, text) => said.push(text.trim()));
    let rc: number;
    try {
      rc = loadPlugin(binfo, hostFunctionTable(), pinfo, pfuncs);
    } finally {
      onLoadMessage(null);
    }
    const unloadPlugin = lib.func('int unloadPlugin(void)') as () => number;
    const saidText = said.length > 0 ? ` It said: ${said.slice(-3).join(' | ')}` : '';
    if (rc !== 0) {
      unloadPlugin();
      refuse('E_NEGOTIATION', file, `loadPlugin() returned ${rc}, so bacula-fd would skip it too.${saidText}`);
    }
    if (pinfo[0] === null || pfuncs[0] === null) {
      unloadPlugin();
      refuse('E_BAD_TABLE', file, `loadPlugin() returned OK without ${pinfo[0] === null ? 'its pInfo' : 'its pFuncs'}.`);
    }
    const info = koffi.decode(pinfo[0], PInfo) as Record<string, unknown> & { size: number; version: number };
    const magic = pinfoString(info.plugin_magic, 'magic', file);
    const license = pinfoString(info.plugin_license, 'licence', file);
    const fail = (code: RefusalCode, message: string): never => {
      unloadPlugin();
      return refuse(code, file, `${message} bacula-fd 9.6 refuses it for the same reason.`);
    };
    // bacula-fd's order (fd_plugins.c: is_plugin_compatible).
    if (magic !== FD_PLUGIN_MAGIC) fail('E_NEGOTIATION', `plugin magic wrong: wanted "${FD_PLUGIN_MAGIC}", got "${magic}"; it is not a Bacula File Daemon plugin.`);
    if (info.version !== FD_PLUGIN_INTERFACE_VERSION) {
      fail('E_ABI_RANGE', `plugin version incorrect: wanted interface version ${FD_PLUGIN_INTERFACE_VERSION} (Bacula 9.6), got ${info.version}${info.version > FD_PLUGIN_INTERFACE_VERSION ? ' (a newer Bacula\'s plugin: use the build for Bacula 9.6)' : ' (an older Bacula\'s plugin: rebuild it against Bacula 9.6)'}.`);
    }
    if (!(ACCEPTED_LICENSES as readonly string[]).includes(license)) {
      fail('E_NEGOTIATION', `plugin license incompatible: "${license}" is not one of ${ACCEPTED_LICENSES.map((l) => `"${l}"`).join(', ')}.`);
    }
    if (info.size !== PINFO_SIZE) fail('E_BAD_TABLE', `plugin size incorrect: wanted a ${PINFO_SIZE}-byte pInfo, got ${info.size}; it was built against other headers.`);

    const table = koffi.decode(pfuncs[0], PFuncs) as Record<string, unknown>;
    const entry: Partial<Record<PluginEntryPoint, PluginFunction>> = {};
    for (const point of PLUGIN_ENTRY_POINTS) {
      const pointer = table[point];
      if (pointer === null || pointer === undefined || pointer === 0n) {
        if (!OPTIONAL_ENTRY_POINTS.includes(point)) fail('E_BAD_TABLE', `its pFuncs has no ${point}(), which bacula-fd calls without checking (it would crash bacula-fd).`);
        continue;
      }
      const proto = PluginProtos[point as keyof typeof PluginProtos];
      if (proto) entry[point] = koffi.decode(pointer, proto) as PluginFunction;
    }
    const infoStrings: Record<string, string> = {
      version: pinfoString(info.plugin_version, 'version', file),
      vendor: pinfoString(info.plugin_author, 'author', file),
      author: pinfoString(info.plugin_author, 'author', file),
      description: pinfoString(info.plugin_description, 'description', file),
      date: pinfoString(info.plugin_date, 'date', file),
      license,
      interface: `Bacula ${FD_PLUGIN_INTERFACE_VERSION}`,
    };
    let loaded = true;
    const plugin: BaculaPluginLibrary = {
      kind: 'bacula',
      name,
      file,
      abi: FD_PLUGIN_INTERFACE_VERSION,
      agentAbiRange: [FD_PLUGIN_INTERFACE_VERSION, FD_PLUGIN_INTERFACE_VERSION],
      capabilities: BACULA_CAPABILITIES,
      info: infoStrings,
      warnings: problems,
      entry,
      openSession: (options) => BaculaPluginSession.open(plugin, options),
      unload() {
        if (!loaded) return;
        loaded = false;
        unloadPlugin();
        lib.unload();
      },
    };
    return plugin;
  } catch (error) {
    lib.unload();
    throw error;
  }
}
