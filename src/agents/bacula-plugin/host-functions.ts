/**
 * The bFuncs table handed to Bacula plugins: what bacula-fd would answer, answered by agentfd.
 *
 * One table serves every plugin of the process: a plugin keeps the pointer from loadPlugin() until
 * it is unloaded, and tells jobs apart by the bpContext it passes back, whose address maps to the
 * job's callbacks here. The non-variadic functions are koffi callbacks registered once; the three
 * variadic ones (registerBaculaEvents, JobMessage, DebugMessage) cannot be, so the C shim
 * (binding/src/afd_bacula_shim.c) formats them and forwards plain text to one sink callback.
 *
 * Each callback is wrapped: koffi turns an exception thrown in a callback into a zero return in C
 * (bRC_OK) and a rethrow somewhere unrelated; here a failure becomes bRC_Error and is recorded for
 * the job.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { AgentfdError, messageOf } from '../../errors.js';
import { readCString } from '../native/cstring.js';
import { BFuncs, FD_PLUGIN_INTERFACE_VERSION, HostProtos, ShimTable, bRC } from './abi.js';

/** What one job (one bpContext) answers to its plugin. */
export interface BaculaHostCallbacks {
  /** getBaculaValue: write the variable to `value`; returns a bRC. */
  getValue(variable: number, value: bigint): number;
  setValue(variable: number, value: bigint | null): number;
  /** A formatted JobMessage (kind 1), DebugMessage (2) or registerBaculaEvents list (3). */
  message(kind: number, type: number, text: string): void;
  /** AddExclude, AddInclude, AddOptions, AddRegex, AddWild, NewOptions, NewInclude, NewPreInclude. */
  fileset(call: string, item: string | null, type: number | null): number;
  checkChanges(sp: bigint): number;
  acceptFile(sp: bigint): number;
  /** A host function failed or was misused; the job reports it. */
  protocolError(message: string): void;
}

/** Messages a plugin sends before any job (from loadPlugin, with a NULL context). */
export type LoadMessageListener = (kind: number, type: number, text: string) => void;

const contexts = new Map<bigint, BaculaHostCallbacks>();
let loadListener: LoadMessageListener | null = null;
let table: bigint | null = null;
let shimLibrary: LibraryHandle | null = null;

/** Where node-gyp put the shim (binding/build/Release), from src/ or dist/ alike. */
export function shimPath(): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const name = process.platform === 'win32' ? 'afd_bacula_shim.dll' : process.platform === 'darwin' ? 'afd_bacula_shim.dylib' : 'afd_bacula_shim.so';
  return path.join(root, 'binding', 'build', 'Release', name);
}

function text(pointer: unknown): string | null {
  const result = readCString(pointer, 64 * 1024);
  if (result.ok) return result.value;
  return result.reason === 'null' ? null : result.reason === 'invalid-utf8' ? Buffer.from(result.bytes ?? []).toString('latin1') : '(too long)';
}

function guard(ctx: unknown, body: (host: BaculaHostCallbacks) => number): number {
  const host = typeof ctx === 'bigint' ? contexts.get(ctx) : undefined;
  if (!host) return bRC.Error;
  try {
    return body(host);
  } catch (error) {
    host.protocolError(`a host function failed: ${messageOf(error)}`);
    return bRC.Error;
  }
}

function fileset(call: string, withType: boolean) {
  return withType
    ? (ctx: unknown, item: unknown, type: number) => guard(ctx, (host) => host.fileset(call, text(item), type))
    : (ctx: unknown, item: unknown) => guard(ctx, (host) => host.fileset(call, text(item), null));
}

function build(): bigint {
  let shim: LibraryHandle;
  const file = shimPath();
  try {
    shim = koffi.load(file);
  } catch (error) {
    throw new AgentfdError('E_BACULA_SHIM', `the Bacula plugin adapter's C shim ${file} cannot be loaded (${messageOf(error)}); run npm run build:native`, { cause: error });
  }
  shimLibrary = shim;
  const sink = koffi.register(
    (ctx: unknown, kind: number, type: number, _mtime: unknown, _file: unknown, _line: number, message: unknown) => {
      const body = text(message) ?? '';
      const host = typeof ctx === 'bigint' ? contexts.get(ctx) : undefined;
      try {
        if (host) host.message(kind, type, body);
        else loadListener?.(kind, type, body);
      } catch {
        // a message that cannot be delivered is dropped, never thrown into the plugin
      }
    },
    koffi.pointer(HostProtos.sink),
  );
  const shimTable = koffi.decode(shim.func('const void *afd_bacula_shim(void *sink)')(sink), ShimTable) as Record<string, unknown>;
  const register = (fn: (...args: never[]) => number, proto: TypeObject) => koffi.register(fn, koffi.pointer(proto));
  const entries = {
    size: BFuncs.size,
    version: FD_PLUGIN_INTERFACE_VERSION,
    registerBaculaEvents: shimTable.register_events,
    getBaculaValue: register((ctx: unknown, variable: number, value: unknown) => guard(ctx, (host) => host.getValue(variable, value as bigint)), HostProtos.getBaculaValue),
    setBaculaValue: register((ctx: unknown, variable: number, value: unknown) => guard(ctx, (host) => host.setValue(variable, (value as bigint | null) ?? null)), HostProtos.setBaculaValue),
    JobMessage: shimTable.job_message,
    DebugMessage: shimTable.debug_message,
    baculaMalloc: shimTable.bacula_malloc,
    baculaFree: shimTable.bacula_free,
    AddExclude: register(fileset('AddExclude', false), HostProtos.addString),
    AddInclude: register(fileset('AddInclude', false), HostProtos.addString),
    AddOptions: register(fileset('AddOptions', false), HostProtos.addString),
    AddRegex: register(fileset('AddRegex', true), HostProtos.addPattern),
    AddWild: register(fileset('AddWild', true), HostProtos.addPattern),
    NewOptions: register((ctx: unknown) => guard(ctx, (host) => host.fileset('NewOptions', null, null)), HostProtos.newBlock),
    NewInclude: register((ctx: unknown) => guard(ctx, (host) => host.fileset('NewInclude', null, null)), HostProtos.newBlock),
    NewPreInclude: register((ctx: unknown) => guard(ctx, (host) => host.fileset('NewPreInclude', null, null)), HostProtos.newBlock),
    checkChanges: register((ctx: unknown, sp: unknown) => guard(ctx, (host) => host.checkChanges(sp as bigint)), HostProtos.withSavePkt),
    AcceptFile: register((ctx: unknown, sp: unknown) => guard(ctx, (host) => host.acceptFile(sp as bigint)), HostProtos.withSavePkt),
  };
  // Plugins keep this pointer for as long as they are loaded: C memory, never freed.
  const memory = koffi.alloc('uint8_t', BFuncs.size) as bigint;
  koffi.encode(memory, BFuncs, entries);
  return memory;
}

/** The process's bFuncs table (built on first use). */
export function hostFunctionTable(): bigint {
  table ??= build();
  return table;
}

/** Whether the shim is loaded (for diagnostics). */
export function shimLoaded(): boolean {
  return shimLibrary !== null;
}

/** Route a bpContext's calls to `host` until detach. */
export function attachContext(ctx: bigint, host: BaculaHostCallbacks): void {
  contexts.set(ctx, host);
}

export function detachContext(ctx: bigint): void {
  contexts.delete(ctx);
}

/** Receive the messages plugins send with no context (while loadPlugin runs). */
export function onLoadMessage(listener: LoadMessageListener | null): void {
  loadListener = listener;
}
