/*
 * faulty_throw.cc: the C++ half of the "FaultInjector" sample agent (faulty.c).
 *
 * fault=throw-read calls faulty_throw_injected() from backup_read. It throws a C++ exception that
 * nothing catches: it unwinds into the C agent and on into the host, which have no handler, so
 * the C++ runtime calls std::terminate() ("terminate called after throwing an instance of
 * 'std::runtime_error'", then SIGABRT). That is what an agent written in C++ does when an
 * exception escapes its ABI functions, and the host must survive it.
 *
 * The function is not exported (no AFD_EXPORT; the build uses -fvisibility=hidden): the library
 * exports only Name and afd_negotiate.
 */
#include <stdexcept>

extern "C" void faulty_throw_injected(void);

extern "C" void faulty_throw_injected(void) {
    throw std::runtime_error("injected C++ exception");
}
