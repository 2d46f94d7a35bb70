/*
 * faulty.c: the "FaultInjector" sample agent. It misbehaves on purpose, in the way the job option
 * `fault` chooses, so that agentfd's isolation of agents can be tested: a crash, an abort, an
 * exit, an escaping C++ exception or a hang must end the job (the agent's host process), never
 * the daemon; a broken return value or a broken afd_file must be refused by the host.
 *
 * Uses native-samples/common/sample_util for the session, errors, log, options and mkdir -p.
 *
 * ABI generations 1 and 2 (one static table each). Capabilities: FULL, RESTORE, CANCEL.
 *
 * Backup: three virtual objects, /@faulty/file1.bin .. /@faulty/file3.bin (AFD_KIND_VIRTUAL),
 * each with one stream {AFD_STREAM_DATA, "data"} of `size` bytes. Byte i of file k is
 * (i * 31 + k) & 0xff. A read delivers at most min(cap, 65536) bytes. is_cancelled() is polled in
 * every backup_read and backup_next_file.
 *
 * Restore: writes each file to <target><path> (creating directories; paths with "..", "." or
 * empty components are refused); stream 0 is the file itself, a further stream i goes to
 * <target><path>.<stream name>. A target is required (virtual files have no original location).
 *
 * Job options (backup):
 *   size=BYTES        bytes per file (default 262144)
 *   fault=NAME        the one misbehaviour (default none), see fi_fault_names below
 *   fault_file=K      the file (1..3) it happens in (default 2)
 *   fault_after=BYTES read faults happen once this many bytes of that file's stream have been
 *                     delivered (default 65536; clamped to the stream's length, so a value past the
 *                     end makes the fault happen on the read that would end the stream)
 *
 *   none               behaves
 *   crash-read         backup_read writes through a NULL pointer (SIGSEGV)
 *   abort-next         backup_next_file calls abort() instead of handing out file K (SIGABRT)
 *   exit-read          backup_read calls exit(3)
 *   throw-read         backup_read throws a C++ exception nobody catches (faulty_throw.cc):
 *                      std::terminate, SIGABRT
 *   hang-read          backup_read sleeps forever, never polling is_cancelled (a hung agent)
 *   hang-cancellable   backup_read sleeps until is_cancelled() says 1, then AFD_E_CANCELLED
 *   oversize-read      backup_read returns cap + 1000 (writes no more than cap bytes)
 *   negative-read      backup_read returns -100 (no AFD_E_* code) and sets no error message
 *   more-data          file K's stream delivers size + 65536 bytes (size_hint says size)
 *   bad-path-dotdot    file K's path is "/@faulty/../../etc/passwd"
 *   bad-path-relative  file K's path is "etc/passwd"
 *   bad-utf8-path      file K's path is "/@faulty/bad\xff\xfe.bin" (not UTF-8)
 *   bad-stream-type    file K's stream has type 77
 *   bad-stream-count   file K claims 5000 streams (the host's limit is 1024); `streams` points at
 *                      the one valid entry, so a host that checks the count first reads no garbage
 *   null-path          file K's path is NULL
 * Every injected fault is announced first with a warning through the host's log.
 */
#if defined(_WIN32)
#ifndef _CRT_SECURE_NO_WARNINGS
#define _CRT_SECURE_NO_WARNINGS
#endif
#else
#define _POSIX_C_SOURCE 200809L
#endif

#include "agentfd_agent.h"
#include "sample_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <time.h>
#endif

#define FI_ABI_MIN AFD_ABI_GEN_1
#define FI_ABI_MAX AFD_ABI_GEN_2
#define FI_CAPS (AFD_CAP_BACKUP_FULL | AFD_CAP_RESTORE | AFD_CAP_CANCEL)

#define FI_FILES 3
#define FI_MAX_READ 65536
#define FI_MORE_DATA 65536            /* extra bytes of fault=more-data */
#define FI_MAX_SIZE ((int64_t)1 << 50) /* limit of size and fault_after */
#define FI_PATH_MAX SU_PATH_MAX
#define FI_MAX_STREAMS 1024 /* restore: the most streams a file may have */
#define FI_BAD_STREAM_TYPE 77u
#define FI_BAD_STREAM_COUNT 5000u
#define FI_HANG_SLEEP_MS 100

/* Implemented in faulty_throw.cc: throws std::runtime_error("injected C++ exception"). Not
 * exported (hidden visibility, no AFD_EXPORT). */
void faulty_throw_injected(void);

typedef enum fi_fault {
    FI_NONE,
    FI_CRASH_READ,
    FI_ABORT_NEXT,
    FI_EXIT_READ,
    FI_THROW_READ,
    FI_HANG_READ,
    FI_HANG_CANCELLABLE,
    FI_OVERSIZE_READ,
    FI_NEGATIVE_READ,
    FI_MORE_DATA_FAULT,
    FI_BAD_PATH_DOTDOT,
    FI_BAD_PATH_RELATIVE,
    FI_BAD_UTF8_PATH,
    FI_BAD_STREAM_TYPE_FAULT,
    FI_BAD_STREAM_COUNT_FAULT,
    FI_NULL_PATH,
    FI_FAULT_COUNT
} fi_fault;

/* The values of the job option `fault`, in fi_fault order. */
static const char *const fi_fault_names[FI_FAULT_COUNT] = {
    "none",          "crash-read",       "abort-next",        "exit-read",
    "throw-read",    "hang-read",        "hang-cancellable",  "oversize-read",
    "negative-read", "more-data",        "bad-path-dotdot",   "bad-path-relative",
    "bad-utf8-path", "bad-stream-type",  "bad-stream-count",  "null-path",
};

static const char *const fi_paths[FI_FILES] = {
    "/@faulty/file1.bin",
    "/@faulty/file2.bin",
    "/@faulty/file3.bin",
};

struct afd_session {
    su_base base; /* host table, context and the last error (first member: su_session_open) */

    /* ---- backup ---- */
    int prepared;
    fi_fault fault;
    int fault_file;      /* 1..FI_FILES */
    int64_t fault_after; /* bytes of the stream before a read fault */
    int64_t size;        /* bytes per file */
    int handed_out;      /* files considered so far (0..FI_FILES) */
    int current;         /* the file being saved (1..FI_FILES), 0 between files */
    int streaming;       /* between backup_start_stream and backup_end_stream */
    int64_t delivered;   /* bytes of the current stream delivered */
    int64_t stream_total;
    int64_t fault_point; /* the byte of the current stream where the read fault fires, or -1 */
    afd_stream stream;   /* the current file's stream, valid until backup_end_file */
    afd_file file;       /* the current file, valid until backup_end_file */

    /* ---- restore ---- */
    int restore_ready;
    char *target;           /* without trailing separators */
    int in_file;            /* between restore_start_file and restore_end_file */
    int is_file;            /* the current file takes stream data */
    char path[FI_PATH_MAX]; /* <target><path> of the current file */
    uint32_t stream_count;
    char **stream_names; /* copies of the current file's stream names */
    uint32_t out_index;  /* the stream `out` receives */
    FILE *out;
    int write_failed;
    uint64_t restored_files, restored_bytes;
};

/* ------------------------------------------------------------------------------------------- */
/* errors, log, host functions                                                                  */
/* ------------------------------------------------------------------------------------------- */

static void fi_clear(afd_session *s) { s->base.error[0] = '\0'; }

/* 1 include, 0 exclude, negative: the host failed. A host without fileset_check includes all.
 * (su_included() cannot tell a failure from an exclusion.) */
static int32_t fi_included(afd_session *s, const char *path) {
    const afd_host_api *host = s->base.host;
    if (!AFD_HAS_FIELD(host, afd_host_api, fileset_check) || host->fileset_check == NULL) return 1;
    return host->fileset_check(s->base.host_ctx, path);
}

/* The job option `key` into buf: 1 when set, 0 when not set, -1 when longer than cap - 1. */
static int fi_option(afd_session *s, const char *key, char *buf, size_t cap) {
    char *value = su_option(&s->base, key);
    size_t len;
    buf[0] = '\0';
    if (value == NULL) return 0;
    len = strlen(value);
    if (len >= cap) {
        free(value);
        return -1;
    }
    memcpy(buf, value, len + 1);
    free(value);
    return 1;
}

/* The job option `key` as a whole number in [min, max] (min >= 0), `fallback` when not set. */
static int32_t fi_option_int(afd_session *s, const char *key, int64_t fallback, int64_t min,
                             int64_t max, int64_t *out) {
    char buf[64];
    char *end = NULL;
    unsigned long long v;
    int rc = fi_option(s, key, buf, sizeof buf);
    if (rc == 0) {
        *out = fallback;
        return AFD_OK;
    }
    if (rc > 0 && buf[0] >= '0' && buf[0] <= '9') {
        errno = 0;
        v = strtoull(buf, &end, 10);
        if (errno == 0 && *end == '\0' && v >= (unsigned long long)min &&
            v <= (unsigned long long)max) {
            *out = (int64_t)v;
            return AFD_OK;
        }
    }
    return su_fail(&s->base, AFD_E_INVALID,
                   "job option %s=%s is invalid: give a whole number of %lld to %lld", key,
                   rc > 0 ? buf : "(too long)", (long long)min, (long long)max);
}

/* ------------------------------------------------------------------------------------------- */
/* portable file system helpers                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* mkdir -p (su_mkdirs), with ENOTDIR when a component exists but is not a directory. */
static int fi_mkdirs(const char *path) {
    if (su_mkdirs(path) == 0) return 0;
    if (errno == EEXIST) errno = ENOTDIR;
    return -1;
}

static int fi_mkdirs_parent(const char *path) {
    if (su_mkdirs_parent(path) == 0) return 0;
    if (errno == EEXIST) errno = ENOTDIR;
    return -1;
}

static void fi_sleep_ms(unsigned ms) {
#if defined(_WIN32)
    Sleep(ms);
#else
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000u);
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    (void)nanosleep(&ts, NULL);
#endif
}

/* ------------------------------------------------------------------------------------------- */
/* session                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL fi_open(const afd_open_params *params, afd_session **out) {
    afd_session *s;
    int32_t rc;
    if (out == NULL) return AFD_E_INVALID;
    *out = NULL;
    if (!AFD_HAS_FIELD(params, afd_open_params, host_ctx) || params->host == NULL) {
        return AFD_E_INVALID;
    }
    rc = su_session_open(params, sizeof *s, &s);
    if (rc != AFD_OK) return rc;
    s->fault = FI_NONE;
    s->fault_file = 2;
    s->fault_point = -1;
    *out = s;
    return AFD_OK;
}

static void fi_free_stream_names(afd_session *s) {
    uint32_t i;
    if (s->stream_names != NULL) {
        for (i = 0; i < s->stream_count; i++) free(s->stream_names[i]);
        free(s->stream_names);
    }
    s->stream_names = NULL;
    s->stream_count = 0;
}

/* <target><path>.<name of stream index> (stream 0: <target><path>). Returns 0, or -1 if too long. */
static int fi_stream_path(const afd_session *s, uint32_t index, char *out, size_t cap) {
    int n;
    if (index == 0) {
        n = snprintf(out, cap, "%s", s->path);
    } else {
        n = snprintf(out, cap, "%s.%s", s->path, s->stream_names[index]);
    }
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Throw away what the current restored file wrote: its file and its extra stream files. */
static void fi_discard_restored(afd_session *s) {
    char path[FI_PATH_MAX];
    uint32_t i;
    if (!s->is_file) return;
    for (i = 0; i <= s->out_index && i < (s->stream_count > 0 ? s->stream_count : 1); i++) {
        if (fi_stream_path(s, i, path, sizeof path) == 0) (void)su_remove(path);
    }
}

static void AFD_CALL fi_close(afd_session *s) {
    if (s == NULL) return;
    if (s->out != NULL) fclose(s->out);
    s->out = NULL;
    if (s->in_file) fi_discard_restored(s); /* a restore that never finished this file */
    fi_free_stream_names(s);
    free(s->target);
    free(s);
}

/* ------------------------------------------------------------------------------------------- */
/* backup                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static int fi_is_read_fault(fi_fault f) {
    return f == FI_CRASH_READ || f == FI_EXIT_READ || f == FI_THROW_READ || f == FI_HANG_READ ||
           f == FI_HANG_CANCELLABLE || f == FI_OVERSIZE_READ || f == FI_NEGATIVE_READ;
}

static int32_t fi_unknown_fault(afd_session *s, const char *value) {
    char list[512];
    size_t used = 0;
    int i;
    list[0] = '\0';
    for (i = 0; i < FI_FAULT_COUNT; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", i > 0 ? ", " : "",
                         fi_fault_names[i]);
        if (n < 0 || (size_t)n >= sizeof list - used) break;
        used += (size_t)n;
    }
    return su_fail(&s->base, AFD_E_INVALID, "unknown fault \"%s\" (job option fault); valid values: %s",
                   value, list);
}

static int32_t AFD_CALL fi_backup_prepare(afd_session *s, afd_backup_params *params) {
    char value[64];
    int64_t v;
    int32_t rc;
    int i, found;
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (s->prepared) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_prepare was already called in this session");
    }
    if (!AFD_HAS_FIELD(params, afd_backup_params, level)) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_prepare: missing parameters");
    }
    if (params->level != AFD_LEVEL_FULL) {
        return su_fail(&s->base, AFD_E_UNSUPPORTED,
                       "FaultInjector makes full backups only (level %lu was asked)",
                       (unsigned long)params->level);
    }
    if (AFD_HAS_FIELD(params, afd_backup_params, delivered_level)) {
        params->delivered_level = AFD_LEVEL_FULL;
    }

    s->fault = FI_NONE;
    found = fi_option(s, "fault", value, sizeof value);
    if (found < 0) return fi_unknown_fault(s, "(a value too long to be one)");
    if (found > 0) {
        for (i = 0; i < FI_FAULT_COUNT; i++) {
            if (strcmp(value, fi_fault_names[i]) == 0) break;
        }
        if (i == FI_FAULT_COUNT) return fi_unknown_fault(s, value);
        s->fault = (fi_fault)i;
    }
    rc = fi_option_int(s, "fault_file", 2, 1, FI_FILES, &v);
    if (rc != AFD_OK) return rc;
    s->fault_file = (int)v;
    rc = fi_option_int(s, "fault_after", FI_MAX_READ, 0, FI_MAX_SIZE, &s->fault_after);
    if (rc != AFD_OK) return rc;
    rc = fi_option_int(s, "size", 262144, 0, FI_MAX_SIZE, &s->size);
    if (rc != AFD_OK) return rc;

    s->prepared = 1;
    s->handed_out = 0;
    s->current = 0;
    if (s->fault == FI_NONE) {
        su_log(&s->base, AFD_LOG_INFO, "FaultInjector: fault=none, %d files of %lld bytes", FI_FILES,
               (long long)s->size);
    } else if (fi_is_read_fault(s->fault)) {
        su_log(&s->base, AFD_LOG_WARNING,
               "FaultInjector: fault=%s in %s after %lld bytes (%d files of %lld bytes)",
               fi_fault_names[s->fault], fi_paths[s->fault_file - 1], (long long)s->fault_after,
               FI_FILES, (long long)s->size);
    } else {
        su_log(&s->base, AFD_LOG_WARNING, "FaultInjector: fault=%s in %s (%d files of %lld bytes)",
               fi_fault_names[s->fault], fi_paths[s->fault_file - 1], FI_FILES,
               (long long)s->size);
    }
    return AFD_OK;
}

static int32_t AFD_CALL fi_backup_next_file(afd_session *s, const afd_file **out) {
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (!s->prepared) return su_fail(&s->base, AFD_E_INVALID, "backup_next_file before backup_prepare");
    if (s->current != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_next_file before backup_end_file of %s",
                       fi_paths[s->current - 1]);
    }
    for (;;) {
        int k;
        int32_t included;
        if (su_cancelled(&s->base)) {
            return su_fail(&s->base, AFD_E_CANCELLED, "the job was cancelled after %d of %d files",
                           s->handed_out, FI_FILES);
        }
        if (s->handed_out >= FI_FILES) return AFD_DONE;
        k = ++s->handed_out;
        included = fi_included(s, fi_paths[k - 1]);
        if (included < 0) {
            return su_fail(&s->base, AFD_E_FAIL, "the host's fileset_check failed for %s (%ld)",
                           fi_paths[k - 1], (long)included);
        }
        if (included == 0) {
            su_log(&s->base, AFD_LOG_DEBUG, "%s is excluded by the fileset", fi_paths[k - 1]);
            continue;
        }
        if (s->fault == FI_ABORT_NEXT && k == s->fault_file) {
            su_log(&s->base, AFD_LOG_WARNING, "fault=abort-next: calling abort() instead of handing out %s",
                   fi_paths[k - 1]);
            abort();
        }

        memset(&s->stream, 0, sizeof s->stream);
        s->stream.struct_size = (uint32_t)sizeof s->stream;
        s->stream.type = AFD_STREAM_DATA;
        s->stream.name = "data";
        s->stream.size_hint = s->size;
        memset(&s->file, 0, sizeof s->file);
        s->file.struct_size = (uint32_t)sizeof s->file;
        s->file.kind = AFD_KIND_VIRTUAL;
        s->file.path = fi_paths[k - 1];
        s->file.link_target = NULL;
        s->file.mode = 0644;
        s->file.mtime_ns = 0;
        s->file.size = s->size;
        s->file.stream_count = 1;
        s->file.streams = &s->stream;
        if (k == s->fault_file) {
            switch (s->fault) {
            case FI_BAD_PATH_DOTDOT: s->file.path = "/@faulty/../../etc/passwd"; break;
            case FI_BAD_PATH_RELATIVE: s->file.path = "etc/passwd"; break;
            case FI_BAD_UTF8_PATH: s->file.path = "/@faulty/bad\xff\xfe.bin"; break;
            case FI_NULL_PATH: s->file.path = NULL; break;
            case FI_BAD_STREAM_TYPE_FAULT: s->stream.type = FI_BAD_STREAM_TYPE; break;
            case FI_BAD_STREAM_COUNT_FAULT: s->file.stream_count = FI_BAD_STREAM_COUNT; break;
            default: break;
            }
            if (s->file.path != fi_paths[k - 1] || s->stream.type != AFD_STREAM_DATA ||
                s->file.stream_count != 1) {
                su_log(&s->base, AFD_LOG_WARNING, "fault=%s: handing out a broken afd_file for %s",
                       fi_fault_names[s->fault], fi_paths[k - 1]);
            }
        }
        s->current = k;
        s->streaming = 0;
        *out = &s->file;
        return AFD_OK;
    }
}

static int32_t AFD_CALL fi_backup_start_stream(afd_session *s, uint32_t index) {
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (s->current == 0) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_start_stream without a file (call next_file)");
    }
    if (s->streaming) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_start_stream before backup_end_stream");
    }
    if (index != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "%s has one stream (0, \"data\"); there is no stream %lu",
                       fi_paths[s->current - 1], (unsigned long)index);
    }
    s->streaming = 1;
    s->delivered = 0;
    s->stream_total = s->size;
    s->fault_point = -1;
    if (s->current == s->fault_file) {
        if (s->fault == FI_MORE_DATA_FAULT) {
            s->stream_total += FI_MORE_DATA;
            su_log(&s->base, AFD_LOG_WARNING,
                   "fault=more-data: %s will deliver %lld bytes, its size_hint says %lld",
                   fi_paths[s->current - 1], (long long)s->stream_total, (long long)s->size);
        } else if (fi_is_read_fault(s->fault)) {
            s->fault_point = s->fault_after < s->stream_total ? s->fault_after : s->stream_total;
        }
    }
    return AFD_OK;
}

/* Byte i of file k is (i * 31 + k) & 0xff; fill n bytes starting at byte `offset`. */
static void fi_fill(uint8_t *buf, uint64_t n, int64_t offset, int k) {
    uint8_t v = (uint8_t)(((uint64_t)offset * 31u + (uint64_t)k) & 0xffu);
    uint64_t i;
    for (i = 0; i < n; i++) {
        buf[i] = v;
        v = (uint8_t)(v + 31u);
    }
}

/* The read fault, at s->fault_point of the fault file. Most of them never return. */
static int64_t fi_inject_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    const char *path = fi_paths[s->current - 1];
    su_log(&s->base, AFD_LOG_WARNING, "fault=%s: injecting it in backup_read of %s at byte %lld",
           fi_fault_names[s->fault], path, (long long)s->delivered);
    switch (s->fault) {
    case FI_CRASH_READ: {
        /* The pointer itself is volatile so the compiler cannot see it is NULL and replace the
         * store with a trap instruction (SIGILL): this is a real write to address 0. */
        volatile int *volatile p = NULL;
        *p = 1;
        break;
    }
    case FI_EXIT_READ:
        exit(3);
    case FI_THROW_READ:
        faulty_throw_injected();
        break;
    case FI_HANG_READ:
        for (;;) fi_sleep_ms(FI_HANG_SLEEP_MS); /* never asks is_cancelled: a hung agent */
    case FI_HANG_CANCELLABLE:
        for (;;) {
            if (su_cancelled(&s->base)) {
                return su_fail(&s->base, AFD_E_CANCELLED,
                               "the job was cancelled while %s was stalled at byte %lld", path,
                               (long long)s->delivered);
            }
            fi_sleep_ms(FI_HANG_SLEEP_MS);
        }
    case FI_OVERSIZE_READ: {
        /* Writes what fits (never past cap), claims 1000 bytes more than the buffer holds. */
        uint64_t n = cap < FI_MAX_READ ? cap : FI_MAX_READ;
        uint64_t remaining = (uint64_t)(s->stream_total - s->delivered);
        if (n > remaining) n = remaining;
        fi_fill(buf, n, s->delivered, s->current);
        return cap > (uint64_t)INT64_MAX - 1000u ? INT64_MAX : (int64_t)cap + 1000;
    }
    case FI_NEGATIVE_READ:
        s->base.error[0] = '\0'; /* no message either */
        return -100;
    default:
        break;
    }
    return su_fail(&s->base, AFD_E_FAIL, "fault=%s did not happen in backup_read of %s",
                   fi_fault_names[s->fault], path);
}

static int64_t AFD_CALL fi_backup_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    uint64_t n, remaining;
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (!s->streaming) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_read without a stream (call start_stream)");
    }
    if (buf == NULL || cap == 0) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_read needs a buffer of at least one byte");
    }
    if (su_cancelled(&s->base)) {
        return su_fail(&s->base, AFD_E_CANCELLED, "the job was cancelled while saving %s at byte %lld",
                       fi_paths[s->current - 1], (long long)s->delivered);
    }
    if (s->fault_point >= 0 && s->delivered >= s->fault_point) return fi_inject_read(s, buf, cap);
    remaining = (uint64_t)(s->stream_total - s->delivered);
    if (remaining == 0) return 0;
    n = cap < FI_MAX_READ ? cap : FI_MAX_READ;
    if (n > remaining) n = remaining;
    /* Stop exactly at the fault point, so the fault fires after fault_after bytes. */
    if (s->fault_point >= 0 && n > (uint64_t)(s->fault_point - s->delivered)) {
        n = (uint64_t)(s->fault_point - s->delivered);
    }
    fi_fill(buf, n, s->delivered, s->current);
    s->delivered += (int64_t)n;
    return (int64_t)n;
}

static int32_t AFD_CALL fi_backup_end_stream(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (!s->streaming) return su_fail(&s->base, AFD_E_INVALID, "backup_end_stream without a stream");
    s->streaming = 0;
    return AFD_OK;
}

static int32_t AFD_CALL fi_backup_end_file(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (s->current == 0) return su_fail(&s->base, AFD_E_INVALID, "backup_end_file without a file");
    s->current = 0;
    s->streaming = 0;
    return AFD_OK;
}

static int32_t AFD_CALL fi_backup_finish(afd_session *s, int32_t status) {
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    su_log(&s->base, AFD_LOG_DEBUG, "backup_finish: the job was %s",
           status == AFD_STATUS_OK ? "committed" : "given up");
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* restore                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL fi_restore_prepare(afd_session *s, const afd_restore_params *params) {
    size_t len;
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (s->restore_ready) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_prepare was already called in this session");
    }
    if (!AFD_HAS_FIELD(params, afd_restore_params, target)) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_prepare: missing parameters");
    }
    if (params->target == NULL || params->target[0] == '\0') {
        return su_fail(&s->base, AFD_E_UNSUPPORTED,
                       "FaultInjector's files are virtual and have no original location: "
                       "restore them to a target directory");
    }
    len = strlen(params->target);
    if (len >= FI_PATH_MAX - 64) {
        return su_fail(&s->base, AFD_E_INVALID, "the restore target is too long (%lu bytes)",
                       (unsigned long)len);
    }
    s->target = malloc(len + 1);
    if (s->target == NULL) return su_fail(&s->base, AFD_E_NOMEM, "out of memory");
    memcpy(s->target, params->target, len + 1);
    while (len > 1 && (s->target[len - 1] == '/' || s->target[len - 1] == '\\')) {
        s->target[--len] = '\0';
    }
    if (len == 1 && s->target[0] == '/') s->target[0] = '\0'; /* "/" + "/@faulty/..." */
    s->restore_ready = 1;
    s->restored_files = 0;
    s->restored_bytes = 0;
    return AFD_OK;
}

static int32_t AFD_CALL fi_restore_start_file(afd_session *s, const afd_file *file) {
    uint32_t i, count;
    int n, err;
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (!s->restore_ready) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_start_file before restore_prepare");
    }
    if (s->in_file) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_start_file before restore_end_file of %s",
                       s->path);
    }
    if (!AFD_HAS_FIELD(file, afd_file, streams)) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_start_file: missing or short afd_file");
    }
    if (!su_valid_logical_path(file->path)) {
        return su_fail(&s->base, AFD_E_INVALID,
                       "refusing to restore \"%s\": not an absolute '/'-separated path without "
                       "'..', '.' or empty components",
                       file->path != NULL ? file->path : "(null)");
    }
    count = file->stream_count;
    if (count > FI_MAX_STREAMS || (count > 0 && file->streams == NULL)) {
        return su_fail(&s->base, AFD_E_INVALID, "%s: invalid stream list (%lu streams)", file->path,
                       (unsigned long)count);
    }
    n = snprintf(s->path, sizeof s->path, "%s%s", s->target, file->path);
    if (n < 0 || (size_t)n >= sizeof s->path - 80) { /* room for ".<stream name>" */
        return su_fail(&s->base, AFD_E_INVALID, "%s: the restored path would be too long", file->path);
    }

    /* Keep the stream names: the afd_file is only valid during this call. */
    fi_free_stream_names(s);
    if (count > 0) {
        s->stream_names = calloc(count, sizeof *s->stream_names);
        if (s->stream_names == NULL) return su_fail(&s->base, AFD_E_NOMEM, "out of memory");
        s->stream_count = count;
        for (i = 0; i < count; i++) {
            const afd_stream *st = &file->streams[i];
            size_t len;
            if (!AFD_HAS_FIELD(st, afd_stream, name) || !su_valid_stream_name(st->name) ||
                strlen(st->name) > 64) {
                fi_free_stream_names(s);
                return su_fail(&s->base, AFD_E_INVALID, "%s: stream %lu has no valid name", file->path,
                               (unsigned long)i);
            }
            len = strlen(st->name);
            s->stream_names[i] = malloc(len + 1);
            if (s->stream_names[i] == NULL) {
                fi_free_stream_names(s);
                return su_fail(&s->base, AFD_E_NOMEM, "out of memory");
            }
            memcpy(s->stream_names[i], st->name, len + 1);
        }
    }

    s->out_index = 0;
    s->write_failed = 0;
    s->is_file = 0;
    if (file->kind == AFD_KIND_DIRECTORY) {
        if (fi_mkdirs(s->path) != 0) {
            err = errno;
            fi_free_stream_names(s);
            return su_fail(&s->base, AFD_E_IO, "cannot create the directory %s: %s", s->path,
                           su_strerror(&s->base, err));
        }
    } else if (file->kind == AFD_KIND_SYMLINK) {
        su_log(&s->base, AFD_LOG_WARNING, "%s is a symbolic link; FaultInjector does not restore links",
               file->path);
    } else {
        if (fi_mkdirs_parent(s->path) != 0 || (s->out = su_fopen(s->path, "wb")) == NULL) {
            err = errno;
            fi_free_stream_names(s);
            return su_fail(&s->base, AFD_E_IO,
                           "cannot create %s: %s; check that the restore target is writable",
                           s->path, su_strerror(&s->base, err));
        }
        s->is_file = 1;
    }
    s->in_file = 1;
    return AFD_OK;
}

static int32_t AFD_CALL fi_restore_write(afd_session *s, uint32_t stream_index, const uint8_t *buf,
                                         uint64_t len) {
    char path[FI_PATH_MAX];
    int err;
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (!s->in_file) return su_fail(&s->base, AFD_E_INVALID, "restore_write without restore_start_file");
    if (!s->is_file || stream_index >= s->stream_count) {
        return su_fail(&s->base, AFD_E_INVALID, "%s has no stream %lu to write", s->path,
                       (unsigned long)stream_index);
    }
    if (stream_index < s->out_index) {
        return su_fail(&s->base, AFD_E_INVALID, "%s: stream %lu written after stream %lu", s->path,
                       (unsigned long)stream_index, (unsigned long)s->out_index);
    }
    if ((len > 0 && buf == NULL) || len > (uint64_t)(size_t)-1) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_write: invalid buffer");
    }
    if (stream_index != s->out_index || s->out == NULL) {
        /* The next stream: <target><path>.<stream name>. */
        if (s->out != NULL && fclose(s->out) != 0) {
            err = errno;
            s->out = NULL;
            s->write_failed = 1;
            return su_fail(&s->base, AFD_E_IO, "cannot write %s: %s", s->path, su_strerror(&s->base, err));
        }
        s->out = NULL;
        s->out_index = stream_index;
        if (fi_stream_path(s, stream_index, path, sizeof path) != 0 ||
            (s->out = su_fopen(path, "wb")) == NULL) {
            err = errno;
            s->write_failed = 1;
            return su_fail(&s->base, AFD_E_IO, "cannot create %s.%s: %s", s->path,
                           s->stream_names[stream_index], su_strerror(&s->base, err));
        }
    }
    if (len > 0 && fwrite(buf, 1, (size_t)len, s->out) != (size_t)len) {
        err = errno;
        s->write_failed = 1;
        return su_fail(&s->base, AFD_E_IO, "cannot write %s: %s", s->path, su_strerror(&s->base, err));
    }
    s->restored_bytes += len;
    return AFD_OK;
}

static int32_t AFD_CALL fi_restore_end_file(afd_session *s, int32_t status) {
    int32_t rc = AFD_OK;
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (!s->in_file) return su_fail(&s->base, AFD_E_INVALID, "restore_end_file without a file");
    if (s->out != NULL) {
        if (fclose(s->out) != 0 && status == AFD_STATUS_OK && !s->write_failed) {
            int err = errno;
            rc = su_fail(&s->base, AFD_E_IO, "cannot write %s: %s", s->path, su_strerror(&s->base, err));
        }
        s->out = NULL;
    }
    if (status != AFD_STATUS_OK || rc != AFD_OK || s->write_failed) {
        fi_discard_restored(s);
        su_log(&s->base, AFD_LOG_WARNING, "%s discarded (%s)", s->path,
               status != AFD_STATUS_OK ? "the host reported the file as failed"
                                       : "it could not be written");
    } else {
        s->restored_files++;
    }
    fi_free_stream_names(s);
    s->in_file = 0;
    s->is_file = 0;
    return rc;
}

static int32_t AFD_CALL fi_restore_finish(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    fi_clear(s);
    if (!s->restore_ready) return su_fail(&s->base, AFD_E_INVALID, "restore_finish before restore_prepare");
    if (s->in_file) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_finish before restore_end_file of %s", s->path);
    }
    su_log(&s->base, AFD_LOG_INFO, "FaultInjector restored %llu files, %llu bytes",
           (unsigned long long)s->restored_files, (unsigned long long)s->restored_bytes);
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* tables and entry points                                                                      */
/* ------------------------------------------------------------------------------------------- */

static const afd_kv fi_info[] = {SU_SAMPLE_INFO(
    "1.0.0", "Misbehaves on purpose, as chosen by the job option fault, to test agentfd's isolation")};

#define FI_GEN1_FUNCTIONS                                                                        \
    .capabilities = FI_CAPS, .info = fi_info,                                                    \
    .info_count = (uint32_t)(sizeof fi_info / sizeof fi_info[0]), .reserved = 0,                 \
    .open = fi_open, .close = fi_close, .last_error = su_session_last_error,                             \
    .backup_prepare = fi_backup_prepare, .backup_next_file = fi_backup_next_file,                \
    .backup_start_stream = fi_backup_start_stream, .backup_read = fi_backup_read,                \
    .backup_end_stream = fi_backup_end_stream, .backup_end_file = fi_backup_end_file,            \
    .restore_prepare = fi_restore_prepare, .restore_start_file = fi_restore_start_file,          \
    .restore_write = fi_restore_write, .restore_end_file = fi_restore_end_file,                  \
    .restore_finish = fi_restore_finish

/* Generation 1: the table ends before the generation-2 fields. */
static const afd_agent_api fi_api_gen1 = {
    .struct_size = (uint32_t)offsetof(afd_agent_api, backup_finish),
    .abi_version = AFD_ABI_GEN_1,
    FI_GEN1_FUNCTIONS,
};

/* Generation 2: backup_finish (a log line); no estimate. */
static const afd_agent_api fi_api_gen2 = {
    .struct_size = (uint32_t)sizeof(afd_agent_api),
    .abi_version = AFD_ABI_GEN_2,
    FI_GEN1_FUNCTIONS,
    .backup_finish = fi_backup_finish,
    .estimate = NULL,
};

AFD_EXPORT const char *AFD_CALL Name(void) { return "FaultInjector"; }

static const afd_agent_api *fi_table_for(uint32_t generation) {
    return generation == AFD_ABI_GEN_1 ? &fi_api_gen1 : &fi_api_gen2;
}

AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply) {
    return su_negotiate(request, reply, FI_ABI_MIN, FI_ABI_MAX, fi_table_for);
}
