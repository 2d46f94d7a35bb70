/*
 * afd_bacula_shim.c: the variadic bFuncs callbacks of a Bacula 9.6 FD plugin host, in C.
 * See afd_bacula_shim.h for why this library exists and what it forwards to JS.
 *
 * Plain C11 plus vsnprintf/va_copy; depends on nothing but the C library, so it builds the same
 * on every platform node-gyp targets.
 */
#include "afd_bacula_shim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bRC_OK: every callback succeeds; what the host does with a message is the host's business. */
#define SHIM_BRC_OK 0

/* ---------------------------------------------------------------------------------------------
 * The sink. One pointer for the whole process, written by afd_bacula_shim() on the JS thread and
 * read by the callbacks on whatever thread a plugin uses, hence the atomic accesses.
 * ------------------------------------------------------------------------------------------- */

static afd_bacula_sink_fn *volatile g_sink;

static afd_bacula_sink_fn *sink_load(void) {
#if defined(__GNUC__) || defined(__clang__)
  return __atomic_load_n(&g_sink, __ATOMIC_ACQUIRE);
#else
  /* MSVC: an aligned pointer-sized volatile access is atomic (and ordered on x86/x64). */
  return g_sink;
#endif
}

static void sink_store(afd_bacula_sink_fn *sink) {
#if defined(__GNUC__) || defined(__clang__)
  __atomic_store_n(&g_sink, sink, __ATOMIC_RELEASE);
#else
  g_sink = sink;
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------------------------- */

/* `buf` holds a NUL-terminated text that filled all `size` bytes and was cut by vsnprintf: end it
 * with "..." instead, cutting before a partial UTF-8 sequence so that JS decodes clean text.
 * Needs size >= 4. */
static void mark_truncated(char *buf, size_t size) {
  size_t end = size - 4; /* room for "..." and the NUL */
  /* A byte 10xxxxxx at the cut continues a character that started before it: cut at that
   * character's first byte instead (a UTF-8 character has at most 3 continuation bytes). */
  for (int i = 0; i < 3 && end > 0 && ((unsigned char)buf[end] & 0xC0) == 0x80; i++) end--;
  memcpy(buf + end, "...", 4);
}

/* Formats `fmt` with `ap` and hands the text to the sink (no-op without a sink). */
static void forward(void *ctx, int32_t kind, int32_t type_or_level, int64_t mtime,
                    const char *file, int32_t line, const char *fmt, va_list ap) {
  afd_bacula_sink_fn *sink = sink_load();
  if (sink == NULL) return;
  if (fmt == NULL) {
    sink(ctx, kind, type_or_level, mtime, file, line, "(null)");
    return;
  }

  char stack_text[AFD_BACULA_SHIM_STACK_TEXT];
  va_list again; /* a va_list can be walked only once: keep a copy for the second attempt */
  va_copy(again, ap);
  int n = vsnprintf(stack_text, sizeof stack_text, fmt, ap);
  if (n < 0) {
    /* An encoding error (e.g. %ls with an unconvertible wide string): the buffer's contents are
     * unspecified, so forward the format string itself rather than lose the message. */
    va_end(again);
    sink(ctx, kind, type_or_level, mtime, file, line, fmt);
    return;
  }
  if ((size_t)n < sizeof stack_text) {
    va_end(again);
    sink(ctx, kind, type_or_level, mtime, file, line, stack_text);
    return;
  }

  /* Longer than the stack buffer: format again into a heap buffer, capped. */
  size_t want = (size_t)n + 1;
  size_t cap = want > AFD_BACULA_SHIM_MAX_TEXT ? AFD_BACULA_SHIM_MAX_TEXT : want;
  char *heap_text = malloc(cap);
  if (heap_text == NULL) {
    va_end(again);
    mark_truncated(stack_text, sizeof stack_text); /* better the first 2 KiB than nothing */
    sink(ctx, kind, type_or_level, mtime, file, line, stack_text);
    return;
  }
  vsnprintf(heap_text, cap, fmt, again);
  va_end(again);
  if (want > cap) mark_truncated(heap_text, cap);
  sink(ctx, kind, type_or_level, mtime, file, line, heap_text);
  free(heap_text);
}

/* ---------------------------------------------------------------------------------------------
 * The callbacks. Signatures exactly as in Bacula 9.6's bFuncs (bpContext* is opaque here; bRC is
 * an enum, i.e. an int; utime_t is int64_t).
 * ------------------------------------------------------------------------------------------- */

/* bRC registerBaculaEvents(bpContext *ctx, ...): event ids (uint32_t, promoted to unsigned int)
 * up to a terminating 0; forwarded as "1 2 3 18". Bacula 9.6 itself only logs them too. */
static int register_events(void *ctx, ...) {
  afd_bacula_sink_fn *sink = sink_load();
  if (sink == NULL) return SHIM_BRC_OK;

  /* 64 ids of at most 10 digits plus a separator each, and the NUL. */
  char text[AFD_BACULA_SHIM_MAX_EVENTS * 11 + 1];
  size_t used = 0;
  int32_t count = 0;
  text[0] = '\0';

  va_list ap;
  va_start(ap, ctx);
  while (count < AFD_BACULA_SHIM_MAX_EVENTS) {
    unsigned int event = va_arg(ap, unsigned int);
    if (event == 0) break;
    int n = snprintf(text + used, sizeof text - used, count == 0 ? "%u" : " %u", event);
    if (n < 0 || (size_t)n >= sizeof text - used) break; /* cannot happen with the size above */
    used += (size_t)n;
    count++;
  }
  va_end(ap);

  sink(ctx, AFD_BACULA_SHIM_REGISTER_EVENTS, count, 0, NULL, 0, text);
  return SHIM_BRC_OK;
}

/* bRC JobMessage(bpContext *ctx, const char *file, int line, int type, utime_t mtime,
 *                const char *fmt, ...) */
static int job_message(void *ctx, const char *file, int line, int type, int64_t mtime,
                       const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  forward(ctx, AFD_BACULA_SHIM_JOB_MESSAGE, type, mtime, file, line, fmt, ap);
  va_end(ap);
  return SHIM_BRC_OK;
}

/* bRC DebugMessage(bpContext *ctx, const char *file, int line, int level, const char *fmt, ...) */
static int debug_message(void *ctx, const char *file, int line, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  forward(ctx, AFD_BACULA_SHIM_DEBUG_MESSAGE, level, 0, file, line, fmt, ap);
  va_end(ap);
  return SHIM_BRC_OK;
}

/* void *baculaMalloc(bpContext *ctx, const char *file, int line, size_t size) */
static void *bacula_malloc(void *ctx, const char *file, int line, size_t size) {
  (void)ctx;
  (void)file;
  (void)line;
  return malloc(size);
}

/* void baculaFree(bpContext *ctx, const char *file, int line, void *mem) */
static void bacula_free(void *ctx, const char *file, int line, void *mem) {
  (void)ctx;
  (void)file;
  (void)line;
  free(mem);
}

/* ---------------------------------------------------------------------------------------------
 * The exported entry point
 * ------------------------------------------------------------------------------------------- */

static const afd_bacula_shim_table g_table = {
  sizeof(afd_bacula_shim_table),
  AFD_BACULA_SHIM_VERSION,
  (void *)register_events,
  (void *)job_message,
  (void *)debug_message,
  (void *)bacula_malloc,
  (void *)bacula_free,
};

AFD_BACULA_SHIM_EXPORT const afd_bacula_shim_table *afd_bacula_shim(afd_bacula_sink_fn *sink) {
  sink_store(sink);
  return &g_table;
}
