/**
 * Loading one native agent library: the checks that can be made before any of its code runs,
 * dlopen through koffi, Name(), ABI negotiation, and reading the function table the agent chose.
 * Every refusal is an AgentLoadError whose message names the file, says what is wrong and what to
 * do about it (the way the Vulkan loader reports why a driver was skipped).
 */
import { openSync, readSync, closeSync } from 'node:fs';
import koffi, { type LibraryHandle } from 'koffi';
import {
  AFD_E_VERSION,
  AFD_OK,
  AGENT_ENTRY_POINTS,
  AgentProtos,
  type AgentEntryPoint,
  AgentApi,
  CAPABILITY_BITS,
  GEN2_CAPABILITIES,
  Kv,
  NegotiateReply,
  NegotiateRequest,
  RETURN_CODES,
  agentApiSizeFor,
} from './abi.js';
import { escapeBytes, readCString } from './cstring.js';
import { HOST_MAX_ABI, HOST_MIN_ABI, type Capability } from '../types.js';
import { AgentLoadError } from '../../errors.js';
import { HOST_VERSION } from '../../version.js';
import { NativeAgentSession, type EntryPoint, type NativeAgentLibrary } from './session.js';

/** Why a library was refused; stable values for scripts (`plugins list --json`) and tests. */
export type RefusalCode =
  | 'E_NOT_REGULAR'
  | 'E_INSECURE_PERMISSIONS'
  | 'E_NOT_LIBRARY'
  | 'E_WRONG_PLATFORM'
  | 'E_LOAD_FAILED'
  | 'E_MISSING_SYMBOL'
  | 'E_BAD_NAME'
  | 'E_ABI_RANGE'
  | 'E_NEGOTIATION'
  | 'E_BAD_TABLE'
  | 'E_DUPLICATE_NAME';

const NAME_MAX_BYTES = 64;
const INFO_MAX_ENTRIES = 256;
const INFO_MAX_BYTES = 4096;
const PLATFORM = `${process.platform}-${process.arch}`;

/** The refusal of one library, thrown by loadNativeAgent. */
function refuse(code: RefusalCode, file: string, message: string, cause?: unknown): never {
  throw new AgentLoadError(code, file, `${file}: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * What the first bytes say the file is. Checked before dlopen, so that a text file named
 * `agent.so` or a Windows DLL on Linux is refused for what it is rather than with dlerror's text,
 * and so that no code in it runs.
 */
export function sniffBinaryFormat(file: string): 'elf' | 'pe' | 'mach-o' | 'unknown' | 'short' {
  const head = Buffer.alloc(4);
  const fd = openSync(file, 'r');
  let read: number;
  try {
    read = readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (read < 4) return 'short';
  if (head[0] === 0x7f && head.toString('latin1', 1, 4) === 'ELF') return 'elf';
  if (head[0] === 0x4d && head[1] === 0x5a) return 'pe';
  const magic = head.readUInt32BE(0);
  if ([0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe].includes(magic)) return 'mach-o';
  return 'unknown';
}

const NATIVE_FORMAT: Record<string, 'elf' | 'pe' | 'mach-o'> = { win32: 'pe', darwin: 'mach-o' };

function checkBinaryFormat(file: string): void {
  const format = sniffBinaryFormat(file);
  const expected = NATIVE_FORMAT[process.platform] ?? 'elf';
  if (format === expected) return;
  if (format === 'unknown' || format === 'short') {
    const what = expected === 'elf' ? 'an ELF header' : expected === 'pe' ? 'a PE (MZ) header' : 'a Mach-O header';
    refuse(
      'E_NOT_LIBRARY',
      file,
      `not a shared library: ${format === 'short' ? 'the file is shorter than any library header' : `it does not start with ${what}`}. ` +
        'Remove it from the plugin directory, or replace it with the agent library built for this system.',
    );
  }
  const names = { elf: 'an ELF (Linux/BSD)', pe: 'a Windows (PE)', 'mach-o': 'a macOS (Mach-O)' } as const;
  refuse(
    'E_WRONG_PLATFORM',
    file,
    `${names[format]} library, but this agentfd runs on ${PLATFORM}. Install the build of this agent for ${PLATFORM}.`,
  );
}

function dlopen(file: string): LibraryHandle {
  try {
    return koffi.load(file);
  } catch (error) {
    // koffi drops the path from dlerror's text; we add it back through refuse().
    const text = error instanceof Error ? error.message.replace(/^Failed to load shared library:\s*/, '') : String(error);
    if (/invalid ELF header|file too short|not a dynamic executable/i.test(text)) {
      refuse('E_NOT_LIBRARY', file, `not a shared library (${text}). Remove it from the plugin directory.`, error);
    }
    if (/wrong ELF class|ELFCLASS|machine|not a valid Win32|Cannot load '.*' DLL/i.test(text)) {
      refuse('E_WRONG_PLATFORM', file, `built for another architecture (${text}). Install the ${PLATFORM} build of this agent.`, error);
    }
    const symbol = /undefined symbol: (\S+)/.exec(text)?.[1];
    const hint = symbol
      ? `it needs the symbol ${symbol}, which no loaded library provides; install the library that defines it or link the agent against it`
      : 'install the libraries it depends on (ldd on Linux, Dependencies on Windows shows which are missing)';
    refuse('E_LOAD_FAILED', file, `cannot be loaded: ${text}. ${hint[0]!.toUpperCase()}${hint.slice(1)}.`, error);
  }
}

function bindSymbol(lib: LibraryHandle, file: string, prototype: string, symbol: string): EntryPoint {
  try {
    return lib.func(prototype) as EntryPoint;
  } catch (error) {
    let hint = 'every agentfd agent exports Name() and afd_negotiate() (see binding/include/agentfd_agent.h)';
    if (hasSymbol(lib, 'loadPlugin')) {
      hint = 'it exports loadPlugin(), so it looks like a Bacula File Daemon plugin, which is loaded as a Bacula plugin, not as a native agent';
    }
    refuse('E_MISSING_SYMBOL', file, `missing symbol ${symbol}: ${hint}.`, error);
  }
}

function hasSymbol(lib: LibraryHandle, symbol: string): boolean {
  try {
    lib.symbol(symbol);
    return true;
  } catch {
    return false;
  }
}

function readName(nameFn: EntryPoint, file: string): string {
  const result = readCString(nameFn(), NAME_MAX_BYTES);
  if (!result.ok) {
    const why = {
      null: 'Name() returned NULL',
      'invalid-utf8': `Name() returned bytes that are not valid UTF-8 ("${escapeBytes(result.bytes ?? new Uint8Array())}")`,
      'too-long': `Name() returned more than ${NAME_MAX_BYTES} bytes`,
    }[result.reason];
    refuse('E_BAD_NAME', file, `${why}. Name() must return a static UTF-8 string of 1 to ${NAME_MAX_BYTES} bytes; fix the agent.`);
  }
  const name = result.value;
  // eslint-disable-next-line no-control-regex
  if (name.length === 0 || /[\u0000-\u001f\u007f/\\]/.test(name) || name.trim() !== name) {
    refuse(
      'E_BAD_NAME',
      file,
      `Name() returned ${JSON.stringify(name)}, which is empty or holds control characters, slashes or outer spaces; jobs could not name it. Fix the agent.`,
    );
  }
  return name;
}

interface Negotiated {
  abi: number;
  agentRange: [number, number];
  api: unknown;
}

function negotiate(negotiateFn: EntryPoint, file: string, name: string): Negotiated {
  const request = {
    struct_size: NegotiateRequest.size,
    host_min_abi: HOST_MIN_ABI,
    host_max_abi: HOST_MAX_ABI,
    reserved: 0,
    host_name: 'agentfd',
    host_version: HOST_VERSION,
    host_platform: PLATFORM,
  };
  const reply = { struct_size: NegotiateReply.size, agent_min_abi: 0, agent_max_abi: 0, chosen_abi: 0, api: null as unknown };
  const rc = negotiateFn(request, reply) as number;
  const agentRange: [number, number] = [reply.agent_min_abi, reply.agent_max_abi];
  const hostRange = `${HOST_MIN_ABI}..${HOST_MAX_ABI}`;
  const agentText = `${agentRange[0]}..${agentRange[1]}`;
  if (rc === AFD_E_VERSION || (rc === AFD_OK && reply.chosen_abi === 0)) {
    const newer = agentRange[0] > HOST_MAX_ABI;
    refuse(
      'E_ABI_RANGE',
      file,
      `agent "${name}" speaks ABI generations ${agentText}, this agentfd speaks ${hostRange}. ` +
        (newer ? 'Upgrade agentfd, or install an older build of the agent.' : 'Install a newer build of the agent, or an agentfd that still speaks its generation.'),
    );
  }
  if (rc !== AFD_OK) {
    refuse('E_NEGOTIATION', file, `afd_negotiate() failed with ${RETURN_CODES[rc] ?? rc}; the agent is broken. Contact its vendor.`);
  }
  if (reply.chosen_abi < HOST_MIN_ABI || reply.chosen_abi > HOST_MAX_ABI) {
    refuse('E_NEGOTIATION', file, `afd_negotiate() chose generation ${reply.chosen_abi}, outside the offered range ${hostRange}; the agent is broken.`);
  }
  if (reply.api === null || reply.api === 0n) {
    refuse('E_NEGOTIATION', file, `afd_negotiate() chose generation ${reply.chosen_abi} but returned no function table; the agent is broken.`);
  }
  return { abi: reply.chosen_abi, agentRange, api: reply.api };
}

/** Read the field `field` of the table at `api` if its struct_size covers it, else undefined. */
function tableField(api: unknown, size: number, field: string, type: string, bytes: number): unknown {
  const offset = koffi.offsetof(AgentApi, field);
  if (offset + bytes > size) return undefined;
  return koffi.decode(api, offset, type);
}

function readInfo(api: unknown, size: number, warnings: string[]): Record<string, string> {
  const info: Record<string, string> = {};
  const pointer = tableField(api, size, 'info', 'void *', 8);
  const count = (tableField(api, size, 'info_count', 'uint32_t', 4) as number | undefined) ?? 0;
  if (!pointer || count === 0) return info;
  if (count > INFO_MAX_ENTRIES) {
    warnings.push(`the agent declares ${count} info entries; only the first ${INFO_MAX_ENTRIES} are read`);
  }
  for (let i = 0; i < Math.min(count, INFO_MAX_ENTRIES); i++) {
    const kv = koffi.decode(pointer, i * Kv.size, Kv) as { key: unknown; value: unknown };
    const key = readCString(kv.key, INFO_MAX_BYTES);
    const value = readCString(kv.value, INFO_MAX_BYTES);
    if (key.ok && value.ok) info[key.value] = value.value;
    else warnings.push(`info entry ${i} is not a pair of UTF-8 strings and was skipped`);
  }
  return info;
}

function decodeCapabilities(bits: bigint, abi: number, warnings: string[]): { names: Capability[]; bits: bigint } {
  let known = 0n;
  const names: Capability[] = [];
  for (const [name, bit] of Object.entries(CAPABILITY_BITS) as [Capability, bigint][]) {
    known |= bit;
    if ((bits & bit) === 0n) continue;
    if (abi < 2 && GEN2_CAPABILITIES.includes(name)) {
      warnings.push(`capability "${name}" needs ABI generation 2 but generation ${abi} was negotiated; it is ignored`);
      bits &= ~bit;
      continue;
    }
    names.push(name);
  }
  if ((bits & ~known) !== 0n) {
    warnings.push(`unknown capability bits 0x${(bits & ~known).toString(16)} are ignored (a newer agent than this agentfd?)`);
    bits &= known;
  }
  return { names, bits };
}

const BACKUP_ENTRIES: AgentEntryPoint[] = [
  'backup_prepare',
  'backup_next_file',
  'backup_start_stream',
  'backup_read',
  'backup_end_stream',
  'backup_end_file',
];
const RESTORE_ENTRIES: AgentEntryPoint[] = [
  'restore_prepare',
  'restore_start_file',
  'restore_write',
  'restore_end_file',
  'restore_finish',
];

function readTable(file: string, name: string, negotiated: Negotiated) {
  const { api, abi } = negotiated;
  const size = koffi.decode(api, 0, 'uint32_t') as number;
  const tableAbi = koffi.decode(api, 4, 'uint32_t') as number;
  const minimum = agentApiSizeFor(1);
  if (size < minimum) {
    refuse('E_BAD_TABLE', file, `the function table of "${name}" is ${size} bytes, less than the ${minimum} bytes of a generation 1 table; the agent is broken or was built against a foreign header.`);
  }
  if (tableAbi !== abi) {
    refuse('E_BAD_TABLE', file, `"${name}" negotiated generation ${abi} but its function table says generation ${tableAbi}; the agent is broken.`);
  }
  const warnings: string[] = [];
  const rawBits = BigInt(koffi.decode(api, koffi.offsetof(AgentApi, 'capabilities'), 'uint64_t') as number | bigint);
  const capabilities = decodeCapabilities(rawBits, abi, warnings);
  const info = readInfo(api, size, warnings);

  const entry: Partial<Record<AgentEntryPoint, EntryPoint>> = {};
  for (const [field, generation] of AGENT_ENTRY_POINTS) {
    if (generation > abi) continue;
    const pointer = tableField(api, size, field, 'void *', 8);
    if (pointer) entry[field] = koffi.decode(pointer, AgentProtos[field]) as EntryPoint;
  }
  const has = (c: Capability) => capabilities.names.includes(c);
  const required: AgentEntryPoint[] = ['open', 'close', 'last_error'];
  if (has('full') || has('incremental') || has('differential')) required.push(...BACKUP_ENTRIES);
  if (has('restore')) required.push(...RESTORE_ENTRIES);
  if (has('estimate')) required.push('estimate');
  const missing = required.filter((field) => entry[field] === undefined);
  if (missing.length > 0) {
    refuse('E_BAD_TABLE', file, `"${name}" declares ${capabilities.names.join(', ') || 'no capabilities'} but its table lacks ${missing.join(', ')}; the agent is broken.`);
  }
  if (!has('full') && !has('incremental') && !has('differential') && !has('restore')) {
    refuse('E_BAD_TABLE', file, `"${name}" declares neither a backup level nor restore, so it can do nothing; the agent is broken.`);
  }
  return { capabilities, info, entry, warnings };
}

/**
 * Load the agent library at `file` (an absolute path whose permissions the caller has checked).
 * Throws AgentLoadError on any refusal; the library is unloaded again before that.
 */
export function loadNativeAgent(file: string): NativeAgentLibrary {
  checkBinaryFormat(file);
  const lib = dlopen(file);
  try {
    const nameFn = bindSymbol(lib, file, 'void *Name(void)', 'Name');
    const negotiateFn = bindSymbol(
      lib,
      file,
      'int32_t afd_negotiate(const afd_negotiate_request *request, _Inout_ afd_negotiate_reply *reply)',
      'afd_negotiate',
    );
    const name = readName(nameFn, file);
    const negotiated = negotiate(negotiateFn, file, name);
    const table = readTable(file, name, negotiated);
    let loaded = true;
    const library: NativeAgentLibrary = {
      kind: 'native',
      name,
      file,
      abi: negotiated.abi,
      agentAbiRange: negotiated.agentRange,
      capabilities: table.capabilities.names,
      capabilityBits: table.capabilities.bits,
      info: table.info,
      warnings: table.warnings,
      entry: table.entry,
      openSession: (options) => NativeAgentSession.open(library, options),
      unload() {
        if (loaded) lib.unload();
        loaded = false;
      },
    };
    return library;
  } catch (error) {
    lib.unload();
    throw error;
  }
}
