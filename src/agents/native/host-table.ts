/**
 * The host-function table handed to native agents (afd_host_api).
 *
 * koffi allows 8192 registered callbacks per process, so the host functions are registered
 * once, and every session is told apart by its host_ctx (a small integer the agent passes back).
 * The table lives in memory allocated with koffi.alloc, because agents keep its address from
 * open() to close(); a JS-owned buffer could move or be collected under them.
 *
 * Each callback is wrapped in try/catch: koffi turns an exception thrown in a callback into a zero
 * return in C and a rethrow somewhere unrelated.
 */
import koffi from 'koffi';
import { HostApi, HostProtos, LOG_LEVEL_BY_CODE, hostApiSizeFor } from './abi.js';
import { HOST_MAX_ABI, type LogLevel } from '../types.js';
import { escapeInvalidUtf8, readCString, readCStringLenient } from './cstring.js';

/** What a session answers to its agent's host calls. */
export interface HostCallbacks {
  log(level: LogLevel, message: string): void;
  filesetCheck(path: string): boolean;
  getOption(key: string): string | undefined;
  isCancelled(): boolean;
  stateGet(): Uint8Array | null;
  stateSet(blob: Uint8Array): void;
  /**
   * Gen 3, confined restore writes (see restore-writes.ts): an OS file descriptor, or a negative
   * AFD_E_* code once the reason is logged.
   */
  restoreOpen(relativePath: string, flags: number): number;
  restoreRename(from: string, to: string): number;
  restoreRemove(relativePath: string): number;
  /** A host function that failed inside agentfd (a bug of agentfd's, not the agent's): fails the job. */
  protocolError(message: string): void;
}

/** The largest state blob an agent may store (the header promises 1 MiB). */
export const MAX_STATE_BYTES = 1 << 20;
/** The longest string argument (an option name, a fileset path); a longer one is an error return. */
const MAX_HOST_STRING = 64 * 1024;
/** The longest log message; a longer one is cut and marked (the header promises 64 KiB). */
export const MAX_LOG_BYTES = 64 * 1024;

const sessions = new Map<bigint, HostCallbacks>();
let nextContext = 1n;
let tables: Map<number, unknown> | null = null;

function lookup(ctx: unknown): HostCallbacks | undefined {
  return typeof ctx === 'bigint' ? sessions.get(ctx) : undefined;
}

function copyOut(target: unknown, cap: number | bigint, bytes: Uint8Array, withNul: boolean): void {
  const room = Number(cap);
  const needed = bytes.length + (withNul ? 1 : 0);
  if (target === null || room < needed || needed === 0) return;
  const view = new Uint8Array(koffi.view(target, needed));
  view.set(bytes);
  if (withNul) view[bytes.length] = 0;
}

/**
 * A string argument of a host function, or null when the agent passed NULL, invalid UTF-8 or more
 * than 64 KiB: the function then returns its error code to the agent, and the job log says why
 * (the agent can handle an error return; it is never a reason for the job to fail).
 */
function stringArg(host: HostCallbacks, fn: string, what: string, pointer: unknown): string | null {
  const text = readCString(pointer, MAX_HOST_STRING);
  if (text.ok) return text.value;
  const why =
    text.reason === 'null' ? 'NULL' : text.reason === 'too-long' ? 'longer than 64 KiB' : `not valid UTF-8 ("${escapeInvalidUtf8(text.bytes ?? new Uint8Array())}")`;
  host.log('warning', `the agent passed ${what} that is ${why} to ${fn}(); it returned an error to the agent`);
  return null;
}

function guard<T>(ctx: unknown, fallback: T, body: (host: HostCallbacks) => T): T {
  const host = lookup(ctx);
  if (!host) return fallback;
  try {
    return body(host);
  } catch (error) {
    host.protocolError(`a host function failed: ${error instanceof Error ? error.message : String(error)}`);
    return fallback;
  }
}

const implementations = {
  log: (ctx: unknown, level: number, message: unknown) =>
    guard(ctx, undefined, (host) => {
      // A log line is never the reason a job fails: cut to 64 KiB, bytes that are not UTF-8 shown as \xNN.
      const text = readCStringLenient(message, MAX_LOG_BYTES);
      const line = text === null ? '(the agent logged a NULL message)' : text.droppedBytes > 0 ? `${text.text}… [truncated: ${text.droppedBytes} bytes]` : text.text;
      host.log(LOG_LEVEL_BY_CODE[level as keyof typeof LOG_LEVEL_BY_CODE] ?? 'info', line);
    }),
  fileset_check: (ctx: unknown, path: unknown) =>
    guard(ctx, -1, (host) => {
      const text = stringArg(host, 'fileset_check', 'a path', path);
      return text === null ? -1 : host.filesetCheck(text) ? 1 : 0;
    }),
  get_option: (ctx: unknown, key: unknown, buf: unknown, cap: number | bigint) =>
    guard(ctx, -1, (host) => {
      const name = stringArg(host, 'get_option', 'an option name', key);
      const value = name === null ? undefined : host.getOption(name);
      if (value === undefined) return -1;
      const bytes = Buffer.from(value, 'utf8');
      copyOut(buf, cap, bytes, true);
      return bytes.length;
    }),
  is_cancelled: (ctx: unknown) => guard(ctx, 0, (host) => (host.isCancelled() ? 1 : 0)),
  state_get: (ctx: unknown, buf: unknown, cap: number | bigint) =>
    guard(ctx, -1, (host) => {
      const blob = host.stateGet();
      if (blob === null) return -1;
      copyOut(buf, cap, blob, false);
      return blob.length;
    }),
  state_set: (ctx: unknown, data: unknown, len: number | bigint) =>
    guard(ctx, -3, (host) => {
      const size = Number(len);
      // Refused with a return code the agent can handle; the last blob accepted stays the job's state.
      if (size > MAX_STATE_BYTES) {
        host.log('warning', `the agent tried to store ${size} bytes of state; the limit is ${MAX_STATE_BYTES}: state_set() returned AFD_E_INVALID, the state stored before (if any) is kept`);
        return -3;
      }
      if (size > 0 && data === null) {
        host.log('warning', 'the agent passed NULL state data with a non-zero length: state_set() returned AFD_E_INVALID, the state stored before (if any) is kept');
        return -3;
      }
      host.stateSet(size === 0 ? new Uint8Array(0) : Uint8Array.from(new Uint8Array(koffi.view(data, size))));
      return 0;
    }),
  restore_open: (ctx: unknown, path: unknown, flags: number) =>
    guard(ctx, -1, (host) => {
      const text = stringArg(host, 'restore_open', 'a path', path);
      return text === null ? -3 : host.restoreOpen(text, flags >>> 0);
    }),
  restore_rename: (ctx: unknown, from: unknown, to: unknown) =>
    guard(ctx, -1, (host) => {
      const source = stringArg(host, 'restore_rename', 'a path', from);
      const destination = source === null ? null : stringArg(host, 'restore_rename', 'a path', to);
      return destination === null ? -3 : host.restoreRename(source!, destination);
    }),
  restore_remove: (ctx: unknown, path: unknown) =>
    guard(ctx, -1, (host) => {
      const text = stringArg(host, 'restore_remove', 'a path', path);
      return text === null ? -3 : host.restoreRemove(text);
    }),
};

/** The table for a generation (a gen 1 agent gets a gen 1 sized table), allocated on first use. */
export function hostTableFor(generation: number): unknown {
  if (tables === null) {
    tables = new Map();
    const pointers = Object.fromEntries(
      (Object.keys(HostProtos) as (keyof typeof HostProtos)[]).map((name) => [
        name,
        koffi.register(implementations[name] as (...args: never[]) => unknown, koffi.pointer(HostProtos[name])),
      ]),
    );
    for (let gen = 1; gen <= HOST_MAX_ABI; gen++) {
      const table = koffi.alloc(HostApi, 1);
      koffi.encode(table, HostApi, { struct_size: hostApiSizeFor(gen), abi_version: gen, ...pointers });
      tables.set(gen, table);
    }
  }
  return tables.get(generation) ?? tables.get(HOST_MAX_ABI);
}

/** Attach callbacks to a new host_ctx; release it with detachHostContext. */
export function attachHostContext(callbacks: HostCallbacks): bigint {
  const ctx = nextContext++;
  sessions.set(ctx, callbacks);
  return ctx;
}

export function detachHostContext(ctx: bigint): void {
  sessions.delete(ctx);
}
