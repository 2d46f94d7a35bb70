/**
 * Checks on what an agent hands out. An agent is foreign code: a path with "..", a NUL, invalid
 * UTF-8 or an impossible count is refused here, before anything else in agentfd trusts it.
 */
import koffi from 'koffi';
import { AFD_FILE_SEEN, AFD_STREAM_RAW_RESTORABLE, FILE_KINDS, FileDesc, STREAM_TYPES, StreamDesc } from './abi.js';
import { readCString } from './cstring.js';
import type { AgentFileInfo, AgentStreamInfo } from '../types.js';

export const MAX_PATH_BYTES = 32 * 1024;
export const MAX_STREAMS = 1024;
const STREAM_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Why `path` is not an acceptable agent path, or null when it is. */
export function agentPathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'it is not absolute (it must start with "/")';
  if (path.includes('\0')) return 'it contains a NUL character';
  if (path.includes('\\')) return 'it contains a backslash (paths are "/"-separated)';
  if (path === '/') return null;
  const parts = path.slice(1).split('/');
  if (parts.some((p) => p === '')) return 'it has an empty component ("//" or a trailing "/")';
  if (parts.some((p) => p === '.' || p === '..')) return 'it has a "." or ".." component';
  return null;
}

function toNumber(value: number | bigint): number {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** Decode the afd_file at `pointer`; throws an Error whose message says what the agent got wrong. */
export function decodeAgentFile(pointer: unknown): AgentFileInfo {
  if (pointer === null) throw new Error('backup_next_file returned AFD_OK without a file');
  const size = koffi.decode(pointer, 0, 'uint32_t') as number;
  if (size < FileDesc.size) throw new Error(`the afd_file has struct_size ${size}, less than the ${FileDesc.size} bytes of generation 1`);
  const raw = koffi.decode(pointer, FileDesc) as {
    kind: number; path: unknown; link_target: unknown; mode: number; flags: number;
    mtime_ns: number | bigint; size: number | bigint; win_attributes: number; stream_count: number; streams: unknown;
  };
  const path = readCString(raw.path, MAX_PATH_BYTES);
  if (!path.ok) throw new Error(`the file path is ${path.reason === 'null' ? 'NULL' : path.reason === 'too-long' ? 'longer than 32 KiB' : 'not valid UTF-8'}`);
  const problem = agentPathProblem(path.value);
  if (problem) throw new Error(`the file path ${JSON.stringify(path.value)} is refused: ${problem}`);
  const kind = FILE_KINDS[raw.kind as keyof typeof FILE_KINDS];
  if (!kind) throw new Error(`${path.value}: unknown file kind ${raw.kind}`);
  let linkTarget: string | null = null;
  if (kind === 'symlink') {
    const target = readCString(raw.link_target, MAX_PATH_BYTES);
    if (!target.ok) throw new Error(`${path.value}: a symlink whose target is ${target.reason}`);
    linkTarget = target.value;
  }
  const seen = (raw.flags & AFD_FILE_SEEN) !== 0;
  if (raw.stream_count > MAX_STREAMS) throw new Error(`${path.value}: ${raw.stream_count} streams (at most ${MAX_STREAMS})`);
  if (seen && raw.stream_count > 0) throw new Error(`${path.value}: a "seen" file cannot have streams`);
  if (raw.stream_count > 0 && raw.streams === null) throw new Error(`${path.value}: ${raw.stream_count} streams announced but the array is NULL`);
  const streams: AgentStreamInfo[] = [];
  for (let index = 0; index < raw.stream_count; index++) {
    const s = koffi.decode(raw.streams, index * StreamDesc.size, StreamDesc) as {
      struct_size: number; type: number; name: unknown; size_hint: number | bigint; flags: number;
    };
    if (s.struct_size < StreamDesc.size) throw new Error(`${path.value}: stream ${index} has struct_size ${s.struct_size}`);
    const type = STREAM_TYPES[s.type as keyof typeof STREAM_TYPES];
    if (!type) throw new Error(`${path.value}: stream ${index} has unknown type ${s.type}`);
    const name = readCString(s.name, 64);
    if (!name.ok || !STREAM_NAME.test(name.value)) throw new Error(`${path.value}: stream ${index} has an invalid name (1 to 64 of A-Z a-z 0-9 . _ -)`);
    if (streams.some((other) => other.name === name.value)) throw new Error(`${path.value}: two streams are named ${name.value}`);
    const hint = toNumber(s.size_hint);
    streams.push({ index, type, name: name.value, sizeHint: hint >= 0 ? hint : null, rawRestorable: (s.flags & AFD_STREAM_RAW_RESTORABLE) !== 0 });
  }
  const logicalSize = toNumber(raw.size);
  return {
    path: path.value,
    kind,
    linkTarget,
    mode: raw.mode & 0o7777,
    seen,
    mtimeNs: BigInt(raw.mtime_ns),
    size: logicalSize >= 0 ? logicalSize : null,
    winAttributes: raw.win_attributes,
    streams,
  };
}
