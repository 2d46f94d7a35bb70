/**
 * agentfd's binding of the system's zlib (libz.so.1: the library bacula-fd links), through koffi,
 * for the one thing Node's own zlib cannot do: keep ONE deflate stream and reset it between
 * blocks, as bacula-fd 9.6 compresses a job's GZIP data. deflateReset keeps part of the stream's
 * state (the window's bytes past the new input, which zlib's match finder reads while choosing
 * among matches near a block's end), so such a block's bytes depend on the blocks before it; and
 * Node bundles another zlib (Chromium's, whose match finder hashes differently), whose bytes
 * differ even for a fresh stream. Only the system's zlib, called in bacula-fd's order, gives
 * bacula-fd's bytes.
 *
 * Loaded on first use, by its usual name or from AGENTFD_ZLIB_LIBRARY (a path). Windows has no
 * system zlib: there AGENTFD_ZLIB_LIBRARY must name a zlib1.dll (a Windows bacula-fd installs
 * one beside bacula-fd.exe), else resetDeflater() throws and zlibMissing() says why.
 */
import koffi from 'koffi';
import { IS_WINDOWS } from './os.js';

/** One deflate stream, reset after each block it compresses. */
export interface ResetDeflater {
  /**
   * `plain` deflated to its end (deflate with Z_FINISH) at `level` (1-9) as one zlib stream of
   * at most `limit` bytes, after `headroom` bytes left for the caller; then the stream is reset
   * (deflateReset) for the next block. Throws DeflateError when zlib does not finish within
   * `limit` bytes; the deflater is then unusable.
   */
  block(plain: Uint8Array, level: number, limit: number, headroom?: number): Buffer;
  /** Frees the stream (deflateEnd) and its buffers. */
  end(): void;
}

/** A zlib call that did not return what it should, with the zlib status it returned. */
export class DeflateError extends Error {
  constructor(
    readonly call: string,
    readonly status: number,
  ) {
    super(`Compression ${call} error: ${status}`);
  }
}

const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_FINISH = 4;
const Z_DEFAULT_COMPRESSION = -1;
const Z_DEFAULT_STRATEGY = 0;

/** zlib.h's z_stream: koffi lays it out as the platform's C compiler does (uLong is 4 bytes on Windows). */
const Z_STREAM = koffi.struct({ // anonymous: a module loaded twice (vi.resetModules) must not declare a name twice
  next_in: 'void *',
  avail_in: 'unsigned int',
  total_in: 'unsigned long',
  next_out: 'void *',
  avail_out: 'unsigned int',
  total_out: 'unsigned long',
  msg: 'void *',
  state: 'void *',
  zalloc: 'void *',
  zfree: 'void *',
  opaque: 'void *',
  data_type: 'int',
  adler: 'unsigned long',
  reserved: 'unsigned long',
});
const STREAM_SIZE = koffi.sizeof(Z_STREAM);
const at = (field: string) => koffi.offsetof(Z_STREAM, field);
const ULONG_SIZE = koffi.sizeof('unsigned long');

interface Bound {
  version: () => string;
  init: (stream: bigint, level: number, version: string, size: number) => number;
  params: (stream: bigint, level: number, strategy: number) => number;
  deflate: (stream: bigint, flush: number) => number;
  reset: (stream: bigint) => number;
  end: (stream: bigint) => number;
}

let bound: Bound | null | undefined;
let missing = '';

/** The library's name: AGENTFD_ZLIB_LIBRARY, or the system's zlib. */
export function zlibName(): string {
  return process.env.AGENTFD_ZLIB_LIBRARY || (IS_WINDOWS ? 'zlib1.dll' : process.platform === 'darwin' ? 'libz.1.dylib' : 'libz.so.1');
}

function bind(): Bound | null {
  if (bound !== undefined) return bound;
  const name = zlibName();
  try {
    // deep (RTLD_DEEPBIND): node exports a zlib of its own under the same names (deflate,
    // deflateInit2_, ...), which would otherwise take the library's calls to its own functions.
    const lib = koffi.load(name, { deep: true });
    bound = {
      version: lib.func('const char *zlibVersion()') as Bound['version'],
      init: lib.func('int deflateInit_(void *strm, int level, const char *version, int stream_size)') as Bound['init'],
      params: lib.func('int deflateParams(void *strm, int level, int strategy)') as Bound['params'],
      deflate: lib.func('int deflate(void *strm, int flush)') as Bound['deflate'],
      reset: lib.func('int deflateReset(void *strm)') as Bound['reset'],
      end: lib.func('int deflateEnd(void *strm)') as Bound['end'],
    };
  } catch (error) {
    missing = `${name} cannot be loaded (${(error as Error).message})`;
    bound = null;
  }
  return bound;
}

/** Why resetDeflater() would throw: the library's name and the loader's error; '' when it is there. */
export function zlibMissing(): string {
  bind();
  return missing;
}

/** Native memory zlib may keep pointers to (a JS buffer could move or go between calls), and a view of it. */
interface Native {
  pointer: bigint;
  bytes: Uint8Array;
}

function allocate(size: number): Native {
  const pointer = koffi.alloc('uint8_t', size) as bigint;
  return { pointer, bytes: new Uint8Array(koffi.view(pointer, size)) };
}

class SystemResetDeflater implements ResetDeflater {
  private readonly stream = allocate(STREAM_SIZE);
  private readonly fields = new DataView(this.stream.bytes.buffer);
  private input = allocate(64 * 1024);
  private output = allocate(64 * 1024);
  private level: number;
  private usable = true;

  /** deflateInit at zlib's default level (6), as bacula-fd opens its job's stream. */
  constructor(private readonly lib: Bound) {
    this.stream.bytes.fill(0); // zalloc, zfree, opaque: NULL, zlib's own allocator
    const status = lib.init(this.stream.pointer, Z_DEFAULT_COMPRESSION, lib.version(), STREAM_SIZE);
    if (status !== Z_OK) {
      koffi.free(this.stream.pointer);
      throw new DeflateError('deflateInit', status);
    }
    this.level = 6;
  }

  block(plain: Uint8Array, level: number, limit: number, headroom = 0): Buffer {
    if (!this.usable) throw new Error('this deflate stream failed earlier and cannot go on');
    this.usable = false; // until the block is through
    // A level differing from the stream's: set as bacula-fd sets each file's (deflateParams
    // after a reset only changes the parameters; with the same level it changes nothing).
    if (level !== this.level) this.check('deflateParams', this.lib.params(this.stream.pointer, level, Z_DEFAULT_STRATEGY), Z_OK);
    this.level = level;
    if (this.input.bytes.length < plain.length) this.input = this.grow(this.input, plain.length);
    if (this.output.bytes.length < limit) this.output = this.grow(this.output, limit);
    this.input.bytes.set(plain);
    this.setPointer('next_in', this.input.pointer);
    this.fields.setUint32(at('avail_in'), plain.length, true);
    this.setPointer('next_out', this.output.pointer);
    this.fields.setUint32(at('avail_out'), limit, true);
    this.check('deflate', this.lib.deflate(this.stream.pointer, Z_FINISH), Z_STREAM_END);
    const length = ULONG_SIZE === 8 ? Number(this.fields.getBigUint64(at('total_out'), true)) : this.fields.getUint32(at('total_out'), true);
    const frame = Buffer.allocUnsafe(headroom + length);
    frame.set(this.output.bytes.subarray(0, length), headroom);
    this.check('deflateReset', this.lib.reset(this.stream.pointer), Z_OK);
    this.usable = true;
    return frame;
  }

  end(): void {
    this.usable = false;
    this.lib.end(this.stream.pointer);
    for (const native of [this.stream, this.input, this.output]) koffi.free(native.pointer);
  }

  private check(call: string, status: number, wanted: number): void {
    if (status !== wanted) throw new DeflateError(call, status);
  }

  private setPointer(field: string, pointer: bigint): void {
    this.fields.setBigUint64(at(field), pointer, true);
  }

  private grow(old: Native, size: number): Native {
    koffi.free(old.pointer);
    return allocate(size);
  }
}

/**
 * A new deflate stream of the system's zlib, opened as bacula-fd opens its job's (deflateInit at
 * the default level). Throws when the library cannot be loaded (zlibMissing() says why).
 */
export function resetDeflater(): ResetDeflater {
  const lib = bind();
  if (!lib) throw new Error(`the system's zlib is needed: ${missing}`);
  return new SystemResetDeflater(lib);
}
