/*
 * afd_bacula_shim.h: the C half of agentfd's Bacula 9.6 File Daemon plugin adapter.
 *
 * Why this exists: a Bacula FD plugin receives a table of host callbacks (bFuncs) from the host
 * in loadPlugin(). Three of them are C variadic functions:
 *
 *   bRC registerBaculaEvents(bpContext *ctx, ...);                      event ids, 0-terminated
 *   bRC JobMessage(bpContext *ctx, const char *file, int line, int type, int64_t mtime,
 *                  const char *fmt, ...);                               printf-style
 *   bRC DebugMessage(bpContext *ctx, const char *file, int line, int level,
 *                    const char *fmt, ...);                             printf-style
 *
 * koffi can call variadic C functions but cannot *implement* one as a JS callback: the callee of
 * a variadic function has to walk a va_list, which only C can do portably. So agentfd loads this
 * small plain shared library (not a Node addon: it does not link against Node) and puts its
 * functions into bFuncs. They format the message in C (vsnprintf) and forward a finished,
 * NUL-terminated string to one NON-variadic sink function, which JS registers as an ordinary koffi
 * callback. The shim also supplies baculaMalloc/baculaFree, plain malloc/free, so that memory a
 * plugin allocates through the host never touches the JS heap.
 *
 * All the other bFuncs entries (getBaculaValue, AcceptFile, checkChanges, ...) have fixed
 * signatures and are implemented in JS directly.
 */
#ifndef AFD_BACULA_SHIM_H
#define AFD_BACULA_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Only afd_bacula_shim() is exported; the callbacks are reached through the table it returns
 * (the library is built with -fvisibility=hidden, so nothing else leaks into the symbol table). */
#if defined(_WIN32) || defined(__CYGWIN__)
#define AFD_BACULA_SHIM_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define AFD_BACULA_SHIM_EXPORT __attribute__((visibility("default")))
#else
#define AFD_BACULA_SHIM_EXPORT
#endif

/* Values of `kind` passed to the sink. */
#define AFD_BACULA_SHIM_JOB_MESSAGE 1     /* from JobMessage */
#define AFD_BACULA_SHIM_DEBUG_MESSAGE 2   /* from DebugMessage */
#define AFD_BACULA_SHIM_REGISTER_EVENTS 3 /* from registerBaculaEvents */

/* Limits of the forwarded text. Messages up to AFD_BACULA_SHIM_STACK_TEXT - 1 bytes are formatted
 * into a stack buffer; longer ones are formatted again into a malloc'd buffer. Text longer than
 * AFD_BACULA_SHIM_MAX_TEXT - 1 bytes is cut (at a UTF-8 character boundary) and ends with "...". */
#define AFD_BACULA_SHIM_STACK_TEXT 2048
#define AFD_BACULA_SHIM_MAX_TEXT 65536
/* registerBaculaEvents reads at most this many event ids (stops earlier at the terminating 0). */
#define AFD_BACULA_SHIM_MAX_EVENTS 64

/*
 * The sink: one non-variadic function that JS implements (koffi.register). It is called
 * synchronously, on whatever thread the plugin called the Bacula callback from, and `file` and
 * `text` are valid only during the call (copy them). Arguments per kind:
 *
 *   kind 1 (JobMessage):   type_or_level = message type (M_INFO = 6, M_ERROR = 4, ...),
 *                          mtime = the plugin's mtime argument, file/line = the plugin's
 *                          __FILE__/__LINE__ (file may be NULL), text = the formatted message
 *                          ("(null)" when fmt was NULL).
 *   kind 2 (DebugMessage): type_or_level = debug level, mtime = 0, rest as for kind 1.
 *   kind 3 (registerBaculaEvents): type_or_level = number of event ids read, mtime = 0,
 *                          file = NULL, line = 0, text = the ids in decimal separated by one
 *                          space ("1 2 3 18"; "" for none).
 *
 * `ctx` is the bpContext* the plugin passed, unchanged (may be NULL, e.g. from loadPlugin).
 */
typedef void afd_bacula_sink_fn(void *ctx, int32_t kind, int32_t type_or_level, int64_t mtime,
                                const char *file, int32_t line, const char *text);

/*
 * The shim's callbacks, as untyped pointers so that JS can copy them into bFuncs as they are.
 * Every callback returns bRC_OK (0, an int) and does nothing else while no sink is set.
 */
typedef struct afd_bacula_shim_table {
  uint32_t size;          /* sizeof(afd_bacula_shim_table): lets JS check it reads this layout */
  uint32_t version;       /* 1 */
  void *register_events;  /* bRC registerBaculaEvents(bpContext *ctx, ...) */
  void *job_message;      /* bRC JobMessage(bpContext *ctx, const char *file, int line, int type, int64_t mtime, const char *fmt, ...) */
  void *debug_message;    /* bRC DebugMessage(bpContext *ctx, const char *file, int line, int level, const char *fmt, ...) */
  void *bacula_malloc;    /* void *baculaMalloc(bpContext *ctx, const char *file, int line, size_t size) */
  void *bacula_free;      /* void baculaFree(bpContext *ctx, const char *file, int line, void *mem) */
} afd_bacula_shim_table;

#define AFD_BACULA_SHIM_VERSION 1

/*
 * Stores `sink` (process-wide: one sink serves every plugin and every job; the sink tells them
 * apart by `ctx`) and returns the static table of the shim's functions. Call it again to replace
 * the sink; NULL turns forwarding off (the callbacks then do nothing). The returned table lives
 * as long as the library stays loaded.
 */
AFD_BACULA_SHIM_EXPORT const afd_bacula_shim_table *afd_bacula_shim(afd_bacula_sink_fn *sink);

#ifdef __cplusplus
}
#endif

#endif /* AFD_BACULA_SHIM_H */
