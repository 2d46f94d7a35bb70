/**
 * The pipe protocol between agentfd and an agent host, on its own: frames come out whole however
 * the pipe cuts them; a length beyond MAX_FRAME is refused at once (the pipe is out of step) rather
 * than waited for; and the call status a host leaves in shared memory reads back, or reads as
 * nothing when it is out of bounds.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CALL_STATUS_BYTES, FRAME_HEADER, Frame, FrameReader, MAX_FRAME, encodeFrame, jsonFrame, parseJson, readCallStatus } from '../../src/host/protocol.js';

const frames = (dataBytes: number) => [
  { type: Frame.FILE, bytes: Buffer.concat(jsonFrame(Frame.FILE, { file: { path: '/@x/a', mtimeNs: 1_700_000_000_000_000_123n } })) },
  { type: Frame.STREAM_END, bytes: Buffer.concat(encodeFrame(Frame.STREAM_END)) },
  { type: Frame.DATA, bytes: Buffer.concat(encodeFrame(Frame.DATA, randomBytes(dataBytes))) },
];

/** Every frame of `sent`, pushed into a reader `cut` bytes at a time, as decoded. */
function cutAndRead(sent: ReturnType<typeof frames>, cut: number) {
  const stream = Buffer.concat(sent.map((f) => f.bytes));
  const reader = new FrameReader();
  const got = [];
  for (let at = 0; at < stream.length; at += cut) got.push(...reader.push(stream.subarray(at, at + cut)));
  return got;
}

describe('host pipe protocol', () => {
  it('reassembles frames cut at every byte, or many to a chunk, exactly as sent', () => {
    // Small frames cut anywhere (a header split included); a data frame larger than a pipe's chunk cut as a pipe cuts it.
    const cases: [ReturnType<typeof frames>, number[]][] = [
      [frames(3000), [1, 3, FRAME_HEADER - 1, FRAME_HEADER, 1000]],
      [frames(200_000), [4096, 65_536, Number.MAX_SAFE_INTEGER]],
    ];
    for (const [sent, cuts] of cases) {
      for (const cut of cuts) {
        const got = cutAndRead(sent, cut);
        expect(got.map((f) => f.type), `cut ${cut}`).toEqual(sent.map((f) => f.type));
        got.forEach((f, i) => expect(f.payload.equals(sent[i]!.bytes.subarray(FRAME_HEADER)), `cut ${cut}, frame ${i}`).toBe(true));
      }
    }
    const sent = frames(0);
    const first = new FrameReader().push(sent[0]!.bytes)[0]!;
    // A bigint crosses as its decimal text: JSON numbers cannot hold an i64.
    expect(parseJson<{ file: { mtimeNs: string } }>(first.payload).file.mtimeNs).toBe('1700000000000000123');
  });

  it('refuses a frame longer than MAX_FRAME as soon as its header arrives, and waits for one of MAX_FRAME', () => {
    const header = (length: number) => {
      const h = Buffer.alloc(FRAME_HEADER);
      h.writeUInt32LE(length, 0);
      h.writeUInt8(Frame.DATA, 4);
      return h;
    };
    expect(new FrameReader().push(header(MAX_FRAME))).toEqual([]);
    expect(() => new FrameReader().push(header(MAX_FRAME + 1))).toThrow(
      expect.objectContaining({ code: 'E_HOST_PROTOCOL', message: `a frame of ${MAX_FRAME + 1} bytes from the agent host: the pipe is out of step` }),
    );
    // Out of step after good frames too: the frames before it are not passed off as more than they are.
    const reader = new FrameReader();
    expect(reader.push(Buffer.concat(encodeFrame(Frame.OK, Buffer.from('{}'))))).toHaveLength(1);
    expect(() => reader.push(header(0xffffffff))).toThrow(expect.objectContaining({ code: 'E_HOST_PROTOCOL' }));
  });

  it('reads the entry point a host left in shared memory, and nothing from a status out of bounds', () => {
    const region = new Uint8Array(100 + CALL_STATUS_BYTES);
    const write = (name: string) => {
      region[100] = name.length;
      for (let i = 0; i < name.length; i++) region[101 + i] = name.charCodeAt(i);
    };
    expect(readCallStatus(region, 100)).toBeNull();
    write('backup_read');
    expect(readCallStatus(region, 100)).toBe('backup_read');
    region[100] = CALL_STATUS_BYTES; // a length that does not fit the status
    expect(readCallStatus(region, 100)).toBeNull();
    write('x'.repeat(CALL_STATUS_BYTES - 1));
    expect(readCallStatus(region, 100)).toHaveLength(CALL_STATUS_BYTES - 1);
    expect(readCallStatus(region.subarray(0, 120), 100)).toBeNull(); // the name runs past the region
  });
});
