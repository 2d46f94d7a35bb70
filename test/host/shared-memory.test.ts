/**
 * The shared memory between agentfd and an agent host (Linux): two mappings of one region see each
 * other's bytes, the region's file can go while both stay mapped (nothing is left in /dev/shm by a
 * job), and a region that is not there maps as nothing (the host then uses its pipe).
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SharedRegion } from '../../src/host/shared-memory.js';

describe.runIf(process.platform === 'linux')('shared memory region', () => {
  it("gives both sides the same bytes, even after the region's file is removed", () => {
    const daemon = SharedRegion.create(1024 * 1024)!;
    expect(daemon).not.toBeNull();
    const host = SharedRegion.open(daemon.file, daemon.size)!;
    try {
      host.bytes.set([1, 2, 3], 4096);
      expect([...daemon.bytes.subarray(4096, 4099)]).toEqual([1, 2, 3]);
      daemon.unlink();
      expect(existsSync(daemon.file)).toBe(false);
      daemon.bytes[1024 * 1024 - 1] = 0xab;
      expect(host.bytes[1024 * 1024 - 1]).toBe(0xab);
    } finally {
      host.close();
      daemon.close();
    }
  });

  it('maps nothing where the region is not there', () => {
    expect(SharedRegion.open('/dev/shm/agentfd-no-such-region', 4096)).toBeNull();
  });
});
