/**
 * The export names of a Windows DLL, read from its PE export directory. Written out here (a few
 * dozen lines of the PE/COFF format) so the check needs no tool and runs on either system.
 */
import { readFileSync } from 'node:fs';

export function peExports(file: string): string[] {
  const bytes = readFileSync(file);
  if (bytes.readUInt16LE(0) !== 0x5a4d) throw new Error(`${file}: no MZ header, not a PE file`);
  const pe = bytes.readUInt32LE(0x3c);
  if (bytes.readUInt32LE(pe) !== 0x00004550) throw new Error(`${file}: no PE signature`);
  const sections = bytes.readUInt16LE(pe + 6);
  const optionalSize = bytes.readUInt16LE(pe + 20);
  const optional = pe + 24;
  const magic = bytes.readUInt16LE(optional);
  if (magic !== 0x20b) throw new Error(`${file}: not a PE32+ (64-bit) image`);
  // PE32+: the data directories start 112 bytes into the optional header; the first is the export table.
  const exportRva = bytes.readUInt32LE(optional + 112);
  if (exportRva === 0) return [];
  const table = optional + optionalSize;
  const toOffset = (rva: number): number => {
    for (let i = 0; i < sections; i++) {
      const s = table + i * 40;
      const virtualAddress = bytes.readUInt32LE(s + 12);
      const size = Math.max(bytes.readUInt32LE(s + 8), bytes.readUInt32LE(s + 16));
      if (rva >= virtualAddress && rva < virtualAddress + size) return rva - virtualAddress + bytes.readUInt32LE(s + 20);
    }
    throw new Error(`${file}: RVA ${rva} is in no section`);
  };
  const dir = toOffset(exportRva);
  const count = bytes.readUInt32LE(dir + 24);
  const names = toOffset(bytes.readUInt32LE(dir + 32));
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = toOffset(bytes.readUInt32LE(names + i * 4));
    out.push(bytes.toString('latin1', at, bytes.indexOf(0, at)));
  }
  return out.sort();
}

/** The functions binding/include/agentfd_agent.h says an agent exports (declared with AFD_EXPORT). */
export function headerExports(headerText: string): string[] {
  const names = [...headerText.matchAll(/^\s*AFD_EXPORT\b[^;(]*?\b(\w+)\s*\(/gm)].map((m) => m[1]!);
  return [...new Set(names)].sort();
}
