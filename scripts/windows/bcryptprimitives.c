/*
 * bcryptprimitives.dll for Wine 8.0, which does not ship it. Windows builds of Rust code (the
 * bundler inside vitest 4) import ProcessPrng from it; Windows 10 and later have it. Here it
 * fills the buffer from advapi32's RtlGenRandom (exported as SystemFunction036), in pieces, since
 * that takes a 32-bit length.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE out, SIZE_T length) {
  const SIZE_T piece = (SIZE_T)1 << 30;
  for (SIZE_T done = 0; done < length;) {
    SIZE_T n = length - done < piece ? length - done : piece;
    if (!SystemFunction036(out + done, (ULONG)n)) return FALSE;
    done += n;
  }
  return TRUE;
}
