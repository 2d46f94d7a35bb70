/**
 * Checks on what an agent hands out. An agent is foreign code: a path with "..", a NUL, invalid
 * UTF-8 or an impossible count is refused here, before anything else in agentfd trusts it.
 *
 * A wrong afd_file fails that file only (FileRefused: the session calls backup_end_file and goes on
 * with the next file), as agentfd_agent.h says; what leaves no file to fail (a NULL afd_file, a
 * struct_size below generation 1, which means the agent was built against another header) fails the job.
 */
import koffi from 'koffi';
import { AFD_FILE_SEEN, AFD_STREAM_RAW_RESTORABLE, FILE_KIND_BY_CODE, FileDesc, STREAM_TYPE_BY_CODE, StreamDesc } from './abi.js';
import { escapeBytes, readCString } from './cstring.js';
import { agentPathProblem, type AgentFileInfo, type AgentStreamInfo, type FileKind } from '../types.js';

export const MAX_PATH_BYTES = 32 * 1024;
export const MAX_STREAMS = 1024;
const STREAM_NAME = /^[A-Za-z0-9._-]{1,64}$/;

function toNumber(value: number | bigint): number {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** A file whose afd_file breaks a rule: the file fails, the job goes on. */
export class FileRefused extends Error {
  /** The path to record the failure under: the agent's, with bytes that are not UTF-8 as \xNN. */
  readonly path: string;
  readonly kind: FileKind;
  constructor(path: string, kind: FileKind, message: string) {
    super(message);
    this.name = 'FileRefused';
    this.path = path;
    this.kind = kind;
  }
}

/**
 * Decode the afd_file at `pointer`. Throws FileRefused when the file breaks a rule, or an Error when
 * there is no file to fail; either message says what the agent got wrong.
 */
export function decodeAgentFile(pointer: unknown): AgentFileInfo {
  if (pointer === null) throw new Error('backup_next_file returned AFD_OK without a file');
  const size = koffi.decode(pointer, 0, 'uint32_t') as number;
  if (size < FileDesc.size) throw new Error(`the afd_file has struct_size ${size}, less than the ${FileDesc.size} bytes of generation 1`);
  const raw = koffi.decode(pointer, FileDesc) as {
    kind: number; path: unknown; link_target: unknown; mode: number; flags: number;
    mtime_ns: number | bigint; size: number | bigint; win_attributes: number; stream_count: number; streams: unknown;
  };
  const path = readCString(raw.path, MAX_PATH_BYTES);
  const knownKind = FILE_KIND_BY_CODE[raw.kind as keyof typeof FILE_KIND_BY_CODE] as FileKind | undefined;
  if (!path.ok) {
    const shown = path.reason === 'null' ? '(NULL)' : path.reason === 'too-long' ? '(a path longer than 32 KiB)' : escapeBytes(path.bytes ?? new Uint8Array());
    const why = path.reason === 'null' ? 'the file path is NULL' : path.reason === 'too-long' ? 'the file path is longer than 32 KiB' : `the file path "${shown}" is not valid UTF-8 (bytes shown as \\xNN)`;
    throw new FileRefused(shown, knownKind ?? 'regular', why);
  }
  const refuse = (message: string): never => {
    throw new FileRefused(path.value, knownKind ?? 'regular', message);
  };
  const problem = agentPathProblem(path.value);
  if (problem) refuse(`the file path ${JSON.stringify(path.value)} is refused: ${problem}`);
  const kind = knownKind ?? refuse(`${path.value}: unknown file kind ${raw.kind}`);
  let linkTarget: string | null = null;
  if (kind === 'symlink') {
    const target = readCString(raw.link_target, MAX_PATH_BYTES);
    if (!target.ok) refuse(`${path.value}: a symlink whose target is ${target.reason === 'null' ? 'NULL' : target.reason === 'too-long' ? 'longer than 32 KiB' : 'not valid UTF-8'}`);
    else linkTarget = target.value;
  }
  const seen = (raw.flags & AFD_FILE_SEEN) !== 0;
  if (raw.stream_count > MAX_STREAMS) refuse(`${path.value}: ${raw.stream_count} streams (at most ${MAX_STREAMS})`);
  if (seen && raw.stream_count > 0) refuse(`${path.value}: a "seen" file cannot have streams`);
  if (raw.stream_count > 0 && raw.streams === null) refuse(`${path.value}: ${raw.stream_count} streams announced but the array is NULL`);
  const streams: AgentStreamInfo[] = [];
  for (let index = 0; index < raw.stream_count; index++) {
    const s = koffi.decode(raw.streams, index * StreamDesc.size, StreamDesc) as {
      struct_size: number; type: number; name: unknown; size_hint: number | bigint; flags: number;
    };
    if (s.struct_size < StreamDesc.size) refuse(`${path.value}: stream ${index} has struct_size ${s.struct_size}`);
    const type = STREAM_TYPE_BY_CODE[s.type as keyof typeof STREAM_TYPE_BY_CODE] ?? refuse(`${path.value}: stream ${index} has unknown type ${s.type}`);
    const name = readCString(s.name, 64);
    if (!name.ok || !STREAM_NAME.test(name.value)) refuse(`${path.value}: stream ${index} has an invalid name (1 to 64 of A-Z a-z 0-9 . _ -)`);
    const streamName = (name as { value: string }).value;
    if (streams.some((other) => other.name === streamName)) refuse(`${path.value}: two streams are named ${streamName}`);
    const hint = toNumber(s.size_hint);
    streams.push({ index, type, name: streamName, sizeHint: hint >= 0 ? hint : null, rawRestorable: (s.flags & AFD_STREAM_RAW_RESTORABLE) !== 0 });
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
