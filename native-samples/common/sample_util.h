/*
 * sample_util.h: small helpers shared by the sample agents. Not part of the ABI: an agent author
 * needs only agentfd_agent.h. These wrap the host table (logging, options, state), keep the
 * session's last error, answer afd_negotiate() for an agent's supported range, and hide the few
 * filesystem calls that differ between POSIX and Windows.
 */
#ifndef AGENTFD_SAMPLE_UTIL_H
#define AGENTFD_SAMPLE_UTIL_H

#include "agentfd_agent.h"

#include <stdarg.h>
#include <stdio.h>

#if defined(__GNUC__) || defined(__clang__)
#define SU_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SU_PRINTF(fmt, args)
#endif

/* What every sample session starts with: the host table and context, and the last error. */
typedef struct su_base {
    const afd_host_api *host;
    void *host_ctx;
    uint32_t abi;
    char error[1024];
} su_base;

/* Copy the host table pointer and context out of open()'s parameters. */
int32_t su_base_init(su_base *base, const afd_open_params *params);

/* Record a failure for last_error() and return `code`, so callers can `return su_fail(...)`. */
int32_t su_fail(su_base *base, int32_t code, const char *fmt, ...) SU_PRINTF(3, 4);
const char *su_last_error(su_base *base);

void su_log(su_base *base, int32_t level, const char *fmt, ...) SU_PRINTF(3, 4);
/* The job option `key` as a malloc'd string (free it), or NULL when unset. */
char *su_option(su_base *base, const char *key);
/* The job option `key` as an integer, or `fallback` when unset or not a number. */
long long su_option_int(su_base *base, const char *key, long long fallback);
int su_cancelled(su_base *base);
/* 1 when the fileset includes `path`; an agent that is asked without a fileset gets 1. */
int su_included(su_base *base, const char *path);

#if AFD_TARGET_ABI >= 2
/* The reference job's state blob, malloc'd, with *len set; NULL when there is none or the host
 * is older than generation 2. */
uint8_t *su_state_get(su_base *base, uint64_t *len);
int32_t su_state_set(su_base *base, const void *data, uint64_t len);
#endif

/* afd_negotiate() for an agent that speaks generations [agent_min, agent_max] and gives the same
 * table for each (a table's abi_version is set from the chosen generation by the caller's table
 * function). */
int32_t su_negotiate(const afd_negotiate_request *request, afd_negotiate_reply *reply,
                     uint32_t agent_min, uint32_t agent_max,
                     const afd_agent_api *(*table_for)(uint32_t generation));

/* ---- portable filesystem helpers ---- */
#define SU_PATH_MAX 4096

/* Join two path parts with one '/' (Windows accepts '/' as well). Returns 0, or -1 if too long. */
int su_join(char *out, size_t cap, const char *a, const char *b);
/* mkdir -p. Returns 0 or -1 with errno set. */
int su_mkdirs(const char *path);
/* Facts of a file system entry. Returns 0, or -1 with errno set. */
typedef struct su_stat {
    int is_dir;
    int is_regular;
    int64_t size;
    int64_t mtime_ns;
    uint32_t mode;
} su_stat;
int su_stat_path(const char *path, su_stat *out);
/* Set a file's modification time. */
int su_set_mtime(const char *path, int64_t mtime_ns);
/* The names in a directory (without "." and ".."), sorted bytewise, as a malloc'd array of
 * malloc'd strings; *count receives the length. Returns NULL with errno set on failure. */
char **su_list_dir(const char *path, size_t *count);
void su_free_list(char **names, size_t count);
/* Remove a file. */
int su_remove(const char *path);
/* Open a file for binary reading or writing ("rb", "wb"). */
FILE *su_fopen(const char *path, const char *mode);

#endif /* AGENTFD_SAMPLE_UTIL_H */
