/*
 * afd_harness.c: a host for agentfd agents written in plain C, with no Node.js in the way.
 *
 * It loads an agent library, negotiates an ABI generation (host range 1..2, or 1..N with --abi N),
 * and drives a backup or a restore through the agent's function table exactly as agentfd does:
 * it is the test driver of the sample agents and the "direct C" throughput ceiling to compare the
 * daemon against.
 *
 *   afd_harness backup <agent> <dumpdir> [--level full|incremental|differential]
 *                      [--state-in F] [--state-out F] [--buf BYTES] [--discard]
 *                      [--finish ok|failed] [--abi N] [--exclude TEXT] [--cancel-after N]
 *                      [-q] [-v] [key=value ...]
 *       Writes stream i of each file to <dumpdir>/<path without its leading '/'>.s<i> and one
 *       line per file to <dumpdir>/manifest.tsv:
 *         path kind mode mtime_ns size flags stream_count {name type flags bytes}...
 *       (tab-separated; '\', tab, CR and LF in the path escaped as \\ \t \r \n). Prints the totals
 *       (files, bytes, seconds, MB/s). --discard reads every stream and writes nothing.
 *       After the last file the job is "committed": the state the agent stored is written to
 *       --state-out, then backup_finish(AFD_STATUS_OK) is called (--finish failed passes
 *       AFD_STATUS_FAILED instead).
 *
 *   afd_harness restore <agent> <dumpdir> <target> [--chunk BYTES] [--abi N] [-q] [-v]
 *                       [key=value ...]
 *       Replays manifest.tsv through restore_start_file / restore_write (64 KiB chunks unless
 *       --chunk says otherwise) / restore_end_file, then restore_finish.
 *
 * Host functions: log -> stderr (debug lines only with -v); get_option -> the key=value
 * arguments; fileset_check -> 1 (0 for paths containing --exclude TEXT); is_cancelled -> 0 (1 after
 * --cancel-after N calls); state_get/state_set -> --state-in / --state-out files.
 * Every return code is checked; on failure the agent's last_error() is printed and the exit status
 * is 1.
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif

#include "sample_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#define H_MANIFEST "manifest.tsv"
#define H_STATE_MAX (1024u * 1024u)
#define H_GUARD 32
#define H_GUARD_BYTE 0xA5

#if defined(_WIN32)
#if defined(_M_ARM64) || defined(__aarch64__)
#define H_PLATFORM "win32-arm64"
#else
#define H_PLATFORM "win32-x64"
#endif
#elif defined(__APPLE__)
#define H_PLATFORM "darwin"
#else
#define H_PLATFORM "linux"
#endif

typedef void (*h_any_fn)(void); /* a generic function pointer */
typedef const char *(AFD_CALL *h_name_fn)(void);
typedef int32_t(AFD_CALL *h_negotiate_fn)(const afd_negotiate_request *, afd_negotiate_reply *);

/* The host's context (host_ctx). */
typedef struct harness {
    char **kv; /* key=value arguments */
    int kv_count;
    const char *exclude;
    long cancel_after; /* -1: never */
    long cancel_calls;
    int verbose, quiet;
    /* state */
    int64_t state_in_len; /* -1: none */
    uint8_t *state_in;
    uint8_t *state_out;
    uint64_t state_out_len;
    int state_out_set;
} harness;

/* The loaded agent. */
typedef struct agent {
#if defined(_WIN32)
    HMODULE lib;
#else
    void *lib;
#endif
    const char *name;
    uint32_t chosen, agent_min, agent_max;
    const afd_agent_api *api;
    afd_host_api host;
    afd_session *session;
} agent;

/* ------------------------------------------------------------------------------------------- */
/* small utilities                                                                              */
/* ------------------------------------------------------------------------------------------- */

static double h_now(void) {
#if defined(_WIN32)
    LARGE_INTEGER freq, count;
    QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&count);
    return (double)count.QuadPart / (double)freq.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

static int64_t h_wall_ns(void) {
    return (int64_t)time(NULL) * 1000000000LL;
}

static const char *h_error_text(const agent *a) {
    const char *msg = a->api != NULL && a->session != NULL ? a->api->last_error(a->session) : NULL;
    return msg != NULL ? msg : "(the agent gave no message)";
}

/* Report a failed agent call. Always returns 1 (the exit status). */
static int h_failed(const agent *a, const char *call, int64_t rc) {
    fprintf(stderr, "error: %s returned %lld: %s\n", call, (long long)rc, h_error_text(a));
    return 1;
}

static int h_parse_u64(const char *text, uint64_t *out) {
    char *end = NULL;
    unsigned long long v;
    if (text == NULL || *text == '\0' || *text == '-') return 0;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') return 0;
    *out = (uint64_t)v;
    return 1;
}

/* A logical path as agentfd accepts it (sample_util's check), short enough to become a dump file name. */
static int h_valid_logical_path(const char *path) {
    return path != NULL && strlen(path) < SU_PATH_MAX - 64 && su_valid_logical_path(path);
}

static void h_write_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\\': fputs("\\\\", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Unescape in place. Returns 0, or -1 on a bad escape. */
static int h_unescape(char *s) {
    char *w = s;
    for (; *s; s++) {
        if (*s != '\\') {
            *w++ = *s;
            continue;
        }
        s++;
        switch (*s) {
        case '\\': *w++ = '\\'; break;
        case 't': *w++ = '\t'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        default: return -1;
        }
    }
    *w = '\0';
    return 0;
}

/* "<dumpdir>/<path without '/'>.s<i>" */
static int h_stream_file(char *out, size_t cap, const char *dumpdir, const char *path,
                         uint32_t index) {
    char rel[SU_PATH_MAX];
    int n = snprintf(rel, sizeof rel, "%s.s%lu", path + 1, (unsigned long)index);
    if (n < 0 || (size_t)n >= sizeof rel) return -1;
    return su_join(out, cap, dumpdir, rel);
}

/* Read a whole file (the state). Returns 0 or -1. */
static int h_read_file(const char *path, uint8_t **data, int64_t *len) {
    FILE *f = su_fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t used = 0, cap = 0, n;
    if (f == NULL) return -1;
    for (;;) {
        if (used == cap) {
            uint8_t *bigger;
            cap = cap ? cap * 2 : 4096;
            bigger = realloc(buf, cap);
            if (bigger == NULL) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return -1;
            }
            buf = bigger;
        }
        n = fread(buf + used, 1, cap - used, f);
        used += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        errno = EIO;
        return -1;
    }
    fclose(f);
    *data = buf;
    *len = (int64_t)used;
    return 0;
}

static int h_write_file(const char *path, const uint8_t *data, uint64_t len) {
    FILE *f;
    int failed;
    if (su_mkdirs_parent(path) != 0) return -1;
    f = su_fopen(path, "wb");
    if (f == NULL) return -1;
    failed = len > 0 && fwrite(data, 1, (size_t)len, f) != (size_t)len;
    if (fclose(f) != 0) failed = 1;
    return failed ? -1 : 0;
}

/* A line of any length; NULL at the end of the file. The caller frees it. */
static char *h_read_line(FILE *f) {
    size_t cap = 256, used = 0;
    char *line = malloc(cap);
    int c;
    if (line == NULL) return NULL;
    while ((c = fgetc(f)) != EOF) {
        if (c == '\n') break;
        if (used + 1 >= cap) {
            char *bigger = realloc(line, cap * 2);
            if (bigger == NULL) {
                free(line);
                return NULL;
            }
            line = bigger;
            cap *= 2;
        }
        line[used++] = (char)c;
    }
    if (c == EOF && used == 0) {
        free(line);
        return NULL;
    }
    if (used > 0 && line[used - 1] == '\r') used--;
    line[used] = '\0';
    return line;
}

/* Split on tabs in place. Returns the number of fields (at most max). */
static int h_split_tabs(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        char *tab = strchr(p, '\t');
        fields[n++] = p;
        if (tab == NULL) break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------- */
/* host functions                                                                               */
/* ------------------------------------------------------------------------------------------- */

static void AFD_CALL h_log(void *ctx, int32_t level, const char *message) {
    harness *h = ctx;
    const char *tag = level == AFD_LOG_ERROR     ? "error"
                      : level == AFD_LOG_WARNING ? "warning"
                      : level == AFD_LOG_INFO    ? "info"
                                                 : "debug";
    if (level >= AFD_LOG_DEBUG && !h->verbose) return;
    fprintf(stderr, "[agent %s] %s\n", tag, message != NULL ? message : "(null)");
}

static int32_t AFD_CALL h_fileset_check(void *ctx, const char *path) {
    harness *h = ctx;
    if (path == NULL) return -1;
    if (h->exclude != NULL && strstr(path, h->exclude) != NULL) return 0;
    return 1;
}

static int64_t AFD_CALL h_get_option(void *ctx, const char *key, char *buf, uint64_t cap) {
    harness *h = ctx;
    size_t klen;
    int i;
    if (key == NULL) return -1;
    klen = strlen(key);
    for (i = h->kv_count - 1; i >= 0; i--) { /* the last one given wins */
        const char *kv = h->kv[i];
        if (strncmp(kv, key, klen) == 0 && kv[klen] == '=') {
            const char *value = kv + klen + 1;
            size_t vlen = strlen(value);
            if (buf != NULL && (uint64_t)vlen < cap) memcpy(buf, value, vlen + 1);
            return (int64_t)vlen;
        }
    }
    return -1;
}

static int32_t AFD_CALL h_is_cancelled(void *ctx) {
    harness *h = ctx;
    if (h->cancel_after < 0) return 0;
    return ++h->cancel_calls > h->cancel_after ? 1 : 0;
}

static int64_t AFD_CALL h_state_get(void *ctx, uint8_t *buf, uint64_t cap) {
    harness *h = ctx;
    if (h->state_in_len < 0) return -1;
    if (buf != NULL && (uint64_t)h->state_in_len <= cap && h->state_in_len > 0) {
        memcpy(buf, h->state_in, (size_t)h->state_in_len);
    }
    return h->state_in_len;
}

static int32_t AFD_CALL h_state_set(void *ctx, const uint8_t *data, uint64_t len) {
    harness *h = ctx;
    uint8_t *copy;
    if (len > H_STATE_MAX) return AFD_E_INVALID;
    if (data == NULL && len > 0) return AFD_E_INVALID;
    copy = malloc(len > 0 ? (size_t)len : 1);
    if (copy == NULL) return AFD_E_NOMEM;
    if (len > 0) memcpy(copy, data, (size_t)len);
    free(h->state_out);
    h->state_out = copy;
    h->state_out_len = len;
    h->state_out_set = 1;
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* loading                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static h_any_fn h_symbol(agent *a, const char *name) {
#if defined(_WIN32)
    return (h_any_fn)GetProcAddress(a->lib, name);
#else
    void *p = dlsym(a->lib, name); /* POSIX: a data pointer that holds a function's address */
    h_any_fn f;
    memcpy(&f, &p, sizeof f);
    return f;
#endif
}

static void h_unload(agent *a) {
    if (a->session != NULL) a->api->close(a->session);
    a->session = NULL;
#if defined(_WIN32)
    if (a->lib != NULL) FreeLibrary(a->lib);
#else
    if (a->lib != NULL) dlclose(a->lib);
#endif
    a->lib = NULL;
}

static void h_print_caps(uint64_t caps) {
    static const struct {
        uint64_t bit;
        const char *name;
    } names[] = {
        {AFD_CAP_BACKUP_FULL, "FULL"},
        {AFD_CAP_BACKUP_INCREMENTAL, "INCREMENTAL"},
        {AFD_CAP_BACKUP_DIFFERENTIAL, "DIFFERENTIAL"},
        {AFD_CAP_RESTORE, "RESTORE"},
        {AFD_CAP_OWN_STATE, "OWN_STATE"},
        {AFD_CAP_RAW_RESTORABLE, "RAW_RESTORABLE"},
        {AFD_CAP_ACCURATE, "ACCURATE"},
        {AFD_CAP_THREAD_SAFE, "THREAD_SAFE"},
        {AFD_CAP_CANCEL, "CANCEL"},
        {AFD_CAP_ESTIMATE, "ESTIMATE"},
    };
    size_t i;
    printf("capabilities:");
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (caps & names[i].bit) printf(" %s", names[i].name);
    }
    printf("\n");
}

static const char *h_info(const afd_agent_api *api, const char *key) {
    uint32_t i;
    for (i = 0; api->info != NULL && i < api->info_count; i++) {
        if (api->info[i].key != NULL && strcmp(api->info[i].key, key) == 0) {
            return api->info[i].value;
        }
    }
    return NULL;
}

static int h_load(agent *a, harness *h, const char *path, uint32_t host_max) {
    h_name_fn name_fn;
    h_negotiate_fn negotiate_fn;
    h_any_fn sym;
    afd_negotiate_request req;
    afd_negotiate_reply reply;
    afd_open_params op;
    int32_t rc;
    uint32_t i;

    memset(a, 0, sizeof *a);
#if defined(_WIN32)
    a->lib = LoadLibraryA(path);
    if (a->lib == NULL) {
        fprintf(stderr, "error: cannot load %s (Windows error %lu)\n", path,
                (unsigned long)GetLastError());
        return 1;
    }
#else
    a->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (a->lib == NULL) {
        fprintf(stderr, "error: cannot load %s: %s\n", path, dlerror());
        return 1;
    }
#endif
    sym = h_symbol(a, AFD_SYMBOL_NAME);
    if (sym == NULL) {
        fprintf(stderr, "error: %s does not export %s\n", path, AFD_SYMBOL_NAME);
        return 1;
    }
    name_fn = (h_name_fn)sym;
    sym = h_symbol(a, AFD_SYMBOL_NEGOTIATE);
    if (sym == NULL) {
        fprintf(stderr, "error: %s does not export %s\n", path, AFD_SYMBOL_NEGOTIATE);
        return 1;
    }
    negotiate_fn = (h_negotiate_fn)sym;
    a->name = name_fn();
    if (a->name == NULL || a->name[0] == '\0' || strlen(a->name) > 64) {
        fprintf(stderr, "error: %s: Name() returned no valid name\n", path);
        return 1;
    }

    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.host_min_abi = AFD_ABI_GEN_1;
    req.host_max_abi = host_max;
    req.host_name = "afd_harness";
    req.host_version = "1.0.0";
    req.host_platform = H_PLATFORM;
    memset(&reply, 0, sizeof reply);
    reply.struct_size = sizeof reply;
    rc = negotiate_fn(&req, &reply);
    a->agent_min = reply.agent_min_abi;
    a->agent_max = reply.agent_max_abi;
    if (rc != AFD_OK || reply.api == NULL || reply.chosen_abi < AFD_ABI_GEN_1 ||
        reply.chosen_abi > host_max) {
        fprintf(stderr,
                "error: %s: afd_negotiate returned %ld (agent speaks %lu..%lu, host %lu..%lu)\n",
                a->name, (long)rc, (unsigned long)reply.agent_min_abi,
                (unsigned long)reply.agent_max_abi, (unsigned long)AFD_ABI_GEN_1,
                (unsigned long)host_max);
        return 1;
    }
    a->chosen = reply.chosen_abi;
    a->api = reply.api;
    if (!AFD_HAS_FIELD(a->api, afd_agent_api, restore_finish) || a->api->abi_version != a->chosen ||
        a->api->open == NULL || a->api->close == NULL || a->api->last_error == NULL) {
        fprintf(stderr,
                "error: %s: the function table is invalid (struct_size %lu, abi_version %lu)\n",
                a->name, (unsigned long)a->api->struct_size, (unsigned long)a->api->abi_version);
        a->api = NULL;
        return 1;
    }
    printf(
        "agent: %s, ABI generation %lu (agent speaks %lu..%lu, host %lu..%lu), table %lu bytes\n",
        a->name, (unsigned long)a->chosen, (unsigned long)a->agent_min, (unsigned long)a->agent_max,
        (unsigned long)AFD_ABI_GEN_1, (unsigned long)host_max, (unsigned long)a->api->struct_size);
    printf("info:");
    for (i = 0; a->api->info != NULL && i < a->api->info_count; i++) {
        printf(" %s=\"%s\"", a->api->info[i].key, a->api->info[i].value);
    }
    printf("\n");
    h_print_caps(a->api->capabilities);

    /* The host table as a host of the chosen generation hands it out. */
    memset(&a->host, 0, sizeof a->host);
    a->host.struct_size = a->chosen >= AFD_ABI_GEN_2 ? (uint32_t)sizeof a->host
                                                     : (uint32_t)offsetof(afd_host_api, state_get);
    a->host.abi_version = a->chosen;
    a->host.log = h_log;
    a->host.fileset_check = h_fileset_check;
    a->host.get_option = h_get_option;
    a->host.is_cancelled = h_is_cancelled;
    a->host.state_get = h_state_get;
    a->host.state_set = h_state_set;

    memset(&op, 0, sizeof op);
    op.struct_size = sizeof op;
    op.abi_version = a->chosen;
    op.host = &a->host;
    op.host_ctx = h;
    op.job_name = "afd_harness";
    op.job_id = 0;
    rc = a->api->open(&op, &a->session);
    if (rc != AFD_OK || a->session == NULL) {
        fprintf(stderr, "error: open returned %ld\n", (long)rc);
        a->session = NULL;
        return 1;
    }
    return 0;
}

static int h_has_gen2(const agent *a, int which) {
    if (a->chosen < AFD_ABI_GEN_2) return 0;
    if (which == 0) {
        return AFD_HAS_FIELD(a->api, afd_agent_api, backup_finish) && a->api->backup_finish != NULL;
    }
    return AFD_HAS_FIELD(a->api, afd_agent_api, estimate) && a->api->estimate != NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* backup                                                                                       */
/* ------------------------------------------------------------------------------------------- */

typedef struct backup_opts {
    const char *dumpdir;
    uint32_t level;
    const char *state_out;
    uint64_t buf_size;
    int discard;
    int finish_status;
} backup_opts;

static const char *h_level_name(uint32_t level) {
    return level == AFD_LEVEL_FULL           ? "full"
           : level == AFD_LEVEL_INCREMENTAL  ? "incremental"
           : level == AFD_LEVEL_DIFFERENTIAL ? "differential"
                                             : "?";
}

/* Read every stream of `file`; write them unless discarding. Adds to *bytes. */
static int h_backup_streams(agent *a, const backup_opts *o, const afd_file *file, uint8_t *buf,
                            uint64_t *bytes, uint64_t *stream_bytes) {
    uint32_t i;
    for (i = 0; i < file->stream_count; i++) {
        const afd_stream *st = &file->streams[i];
        char out_path[SU_PATH_MAX];
        FILE *out = NULL;
        int32_t rc;
        int g;
        stream_bytes[i] = 0;
        if (st->struct_size < offsetof(afd_stream, reserved) || !su_valid_stream_name(st->name)) {
            fprintf(stderr, "error: %s: stream %lu has a short struct or an invalid name\n",
                    file->path, (unsigned long)i);
            return 1;
        }
        if (!o->discard) {
            if (h_stream_file(out_path, sizeof out_path, o->dumpdir, file->path, i) != 0 ||
                su_mkdirs_parent(out_path) != 0 || (out = su_fopen(out_path, "wb")) == NULL) {
                fprintf(stderr, "error: cannot create the dump file for %s stream %lu: %s\n",
                        file->path, (unsigned long)i, strerror(errno));
                return 1;
            }
        }
        rc = a->api->backup_start_stream(a->session, i);
        if (rc != AFD_OK) {
            if (out != NULL) fclose(out);
            return h_failed(a, "backup_start_stream", rc);
        }
        for (;;) {
            int64_t n;
            memset(buf + (size_t)o->buf_size, H_GUARD_BYTE, H_GUARD);
            n = a->api->backup_read(a->session, buf, o->buf_size);
            for (g = 0; g < H_GUARD; g++) {
                if (buf[(size_t)o->buf_size + (size_t)g] != H_GUARD_BYTE) {
                    fprintf(stderr, "error: backup_read wrote past the end of the buffer (%s)\n",
                            file->path);
                    if (out != NULL) fclose(out);
                    return 1;
                }
            }
            if (n < 0) {
                if (out != NULL) fclose(out);
                return h_failed(a, "backup_read", n);
            }
            if ((uint64_t)n > o->buf_size) {
                fprintf(stderr, "error: backup_read returned %lld bytes for a %llu-byte buffer\n",
                        (long long)n, (unsigned long long)o->buf_size);
                if (out != NULL) fclose(out);
                return 1;
            }
            if (n == 0) break;
            if (out != NULL && fwrite(buf, 1, (size_t)n, out) != (size_t)n) {
                fprintf(stderr, "error: cannot write %s: %s\n", out_path, strerror(errno));
                fclose(out);
                return 1;
            }
            stream_bytes[i] += (uint64_t)n;
        }
        if (out != NULL && fclose(out) != 0) {
            fprintf(stderr, "error: cannot write %s: %s\n", out_path, strerror(errno));
            return 1;
        }
        rc = a->api->backup_end_stream(a->session);
        if (rc != AFD_OK) return h_failed(a, "backup_end_stream", rc);
        if (st->size_hint >= 0 && (uint64_t)st->size_hint != stream_bytes[i]) {
            fprintf(stderr, "warning: %s stream %s: size_hint %lld, delivered %llu bytes\n",
                    file->path, st->name, (long long)st->size_hint,
                    (unsigned long long)stream_bytes[i]);
        }
        *bytes += stream_bytes[i];
    }
    return 0;
}

static void h_manifest_line(FILE *m, const afd_file *file, const uint64_t *stream_bytes) {
    uint32_t i;
    h_write_escaped(m, file->path);
    fprintf(m, "\t%lu\t0%lo\t%lld\t%lld\t%lu\t%lu", (unsigned long)file->kind,
            (unsigned long)file->mode, (long long)file->mtime_ns, (long long)file->size,
            (unsigned long)file->flags, (unsigned long)file->stream_count);
    for (i = 0; i < file->stream_count; i++) {
        const afd_stream *st = &file->streams[i];
        fprintf(m, "\t%s\t%lu\t%lu\t%llu", st->name, (unsigned long)st->type,
                (unsigned long)st->flags, (unsigned long long)stream_bytes[i]);
    }
    fputc('\n', m);
}

static int h_backup_files(agent *a, harness *h, const backup_opts *o, FILE *manifest,
                          uint64_t *files, uint64_t *saved, uint64_t *bytes) {
    uint8_t *buf = malloc((size_t)o->buf_size + H_GUARD);
    int status = 0;
    if (buf == NULL) {
        fprintf(stderr, "error: cannot allocate a %llu-byte buffer\n",
                (unsigned long long)o->buf_size);
        return 1;
    }
    for (;;) {
        const afd_file *file = NULL;
        uint64_t *stream_bytes;
        uint64_t before = *bytes;
        int32_t rc = a->api->backup_next_file(a->session, &file);
        if (rc == AFD_DONE) break;
        if (rc != AFD_OK) {
            status = h_failed(a, "backup_next_file", rc);
            break;
        }
        if (file == NULL || !AFD_HAS_FIELD(file, afd_file, streams) ||
            !h_valid_logical_path(file->path) ||
            (file->stream_count > 0 && file->streams == NULL) || file->stream_count > 1024) {
            fprintf(stderr, "error: backup_next_file handed out an invalid file (%s)\n",
                    file != NULL && file->path != NULL ? file->path : "no path");
            status = 1;
            break;
        }
        stream_bytes =
            calloc(file->stream_count > 0 ? file->stream_count : 1, sizeof *stream_bytes);
        if (stream_bytes == NULL) {
            status = 1;
            break;
        }
        status = h_backup_streams(a, o, file, buf, bytes, stream_bytes);
        if (status == 0) {
            /* Written before backup_end_file: the agent's afd_file must still be valid here. */
            if (manifest != NULL) h_manifest_line(manifest, file, stream_bytes);
            if (!h->quiet) {
                if (file->flags & AFD_FILE_SEEN) {
                    printf("  seen  %s\n", file->path);
                } else {
                    printf("  saved %s (%llu bytes)\n", file->path,
                           (unsigned long long)(*bytes - before));
                }
            }
            (*files)++;
            if (file->stream_count > 0) (*saved)++;
        }
        free(stream_bytes);
        if (status != 0) break;
        rc = a->api->backup_end_file(a->session);
        if (rc != AFD_OK) {
            status = h_failed(a, "backup_end_file", rc);
            break;
        }
    }
    free(buf);
    return status;
}

static int h_backup(agent *a, harness *h, const backup_opts *o) {
    afd_backup_params bp;
    FILE *manifest = NULL;
    uint64_t files = 0, saved = 0, bytes = 0;
    double start, seconds;
    int32_t rc;
    int status;
    uint64_t level_cap = o->level == AFD_LEVEL_FULL          ? AFD_CAP_BACKUP_FULL
                         : o->level == AFD_LEVEL_INCREMENTAL ? AFD_CAP_BACKUP_INCREMENTAL
                                                             : AFD_CAP_BACKUP_DIFFERENTIAL;
    if ((a->api->capabilities & level_cap) == 0) {
        fprintf(stderr, "error: the agent does not declare %s backups at generation %lu\n",
                h_level_name(o->level), (unsigned long)a->chosen);
        return 1;
    }
    if (!o->discard) {
        char path[SU_PATH_MAX];
        if (su_mkdirs(o->dumpdir) != 0 || su_join(path, sizeof path, o->dumpdir, H_MANIFEST) != 0 ||
            (manifest = su_fopen(path, "wb")) == NULL) {
            fprintf(stderr, "error: cannot create %s/%s: %s\n", o->dumpdir, H_MANIFEST,
                    strerror(errno));
            return 1;
        }
        fprintf(manifest, "# afd_harness manifest 1\n# agent\t%s\t%lu\t%s\n", a->name,
                (unsigned long)a->chosen,
                h_info(a->api, "version") != NULL ? h_info(a->api, "version") : "");
    }
    start = h_now();
    memset(&bp, 0, sizeof bp);
    bp.struct_size = sizeof bp;
    bp.level = o->level;
    bp.since_ns = 0;
    bp.job_start_ns = h_wall_ns();
    bp.delivered_level = o->level;
    rc = a->api->backup_prepare(a->session, &bp);
    if (rc != AFD_OK) {
        status = h_failed(a, "backup_prepare", rc);
        goto fail;
    }
    printf("level: %s asked, %s delivered\n", h_level_name(o->level),
           h_level_name(bp.delivered_level));
    if (h_has_gen2(a, 1)) {
        afd_estimate est;
        memset(&est, 0, sizeof est);
        est.struct_size = sizeof est;
        est.files = est.bytes = -1;
        rc = a->api->estimate(a->session, &est);
        if (rc != AFD_OK) {
            status = h_failed(a, "estimate", rc);
            goto fail;
        }
        printf("estimate: %lld files, %lld bytes\n", (long long)est.files, (long long)est.bytes);
    }
    status = h_backup_files(a, h, o, manifest, &files, &saved, &bytes);
    if (status != 0) goto fail;
    seconds = h_now() - start;
    if (manifest != NULL) {
        int failed = fclose(manifest) != 0;
        manifest = NULL;
        if (failed) {
            fprintf(stderr, "error: cannot write the manifest: %s\n", strerror(errno));
            status = 1;
            goto fail;
        }
    }
    /* The job is committed: keep the agent's state, then tell the agent. */
    if (o->state_out != NULL) {
        if (!h->state_out_set) {
            printf("state: the agent stored no state; %s not written\n", o->state_out);
        } else if (h_write_file(o->state_out, h->state_out, h->state_out_len) != 0) {
            fprintf(stderr, "error: cannot write the state to %s: %s\n", o->state_out,
                    strerror(errno));
            status = 1;
            goto fail;
        } else {
            printf("state: %llu bytes written to %s\n", (unsigned long long)h->state_out_len,
                   o->state_out);
        }
    }
    if (h_has_gen2(a, 0)) {
        rc = a->api->backup_finish(a->session, o->finish_status);
        if (rc != AFD_OK) return h_failed(a, "backup_finish", rc);
    }
    printf("totals: %llu files (%llu saved, %llu seen), %llu bytes, %.3f seconds, %.1f MB/s%s\n",
           (unsigned long long)files, (unsigned long long)saved,
           (unsigned long long)(files - saved), (unsigned long long)bytes, seconds,
           seconds > 0 ? (double)bytes / 1e6 / seconds : 0.0, o->discard ? " (discarded)" : "");
    return 0;
fail:
    if (manifest != NULL) fclose(manifest);
    if (h_has_gen2(a, 0)) {
        rc = a->api->backup_finish(a->session, AFD_STATUS_FAILED);
        if (rc != AFD_OK) h_failed(a, "backup_finish(FAILED)", rc);
    }
    return status != 0 ? status : 1;
}

/* ------------------------------------------------------------------------------------------- */
/* restore                                                                                      */
/* ------------------------------------------------------------------------------------------- */

#define H_MAX_FIELDS (7 + 4 * 64)

/* Restore the file of one manifest line. */
static int h_restore_line(agent *a, const char *dumpdir, char *line, uint64_t chunk, uint8_t *buf,
                          uint64_t *bytes) {
    char *f[H_MAX_FIELDS];
    afd_stream streams[64];
    uint64_t stream_len[64];
    afd_file file;
    uint32_t i, count;
    int n = h_split_tabs(line, f, H_MAX_FIELDS);
    int32_t rc;
    if (n < 7 || h_unescape(f[0]) != 0 || !h_valid_logical_path(f[0])) {
        fprintf(stderr, "error: bad manifest line (%s)\n", f[0]);
        return 1;
    }
    count = (uint32_t)strtoul(f[6], NULL, 10);
    if (count > 64 || n != 7 + 4 * (int)count) {
        fprintf(stderr, "error: bad manifest line for %s (stream count)\n", f[0]);
        return 1;
    }
    memset(&file, 0, sizeof file);
    file.struct_size = sizeof file;
    file.kind = (uint32_t)strtoul(f[1], NULL, 10);
    file.path = f[0];
    file.mode = (uint32_t)strtoul(f[2], NULL, 0);
    file.mtime_ns = (int64_t)strtoll(f[3], NULL, 10);
    file.size = (int64_t)strtoll(f[4], NULL, 10);
    file.flags = (uint32_t)strtoul(f[5], NULL, 10);
    file.stream_count = count;
    file.streams = count > 0 ? streams : NULL;
    for (i = 0; i < count; i++) {
        memset(&streams[i], 0, sizeof streams[i]);
        streams[i].struct_size = sizeof streams[i];
        streams[i].name = f[7 + 4 * i];
        streams[i].type = (uint32_t)strtoul(f[8 + 4 * i], NULL, 10);
        streams[i].flags = (uint32_t)strtoul(f[9 + 4 * i], NULL, 10);
        if (!h_parse_u64(f[10 + 4 * i], &stream_len[i])) {
            fprintf(stderr, "error: bad manifest line for %s (stream size)\n", f[0]);
            return 1;
        }
        streams[i].size_hint = (int64_t)stream_len[i];
    }
    rc = a->api->restore_start_file(a->session, &file);
    if (rc != AFD_OK) return h_failed(a, "restore_start_file", rc);
    for (i = 0; i < count; i++) {
        char path[SU_PATH_MAX];
        uint64_t done = 0;
        FILE *in;
        if (h_stream_file(path, sizeof path, dumpdir, f[0], i) != 0 ||
            (in = su_fopen(path, "rb")) == NULL) {
            fprintf(stderr, "error: cannot open the dump of %s stream %lu: %s\n", f[0],
                    (unsigned long)i, strerror(errno));
            a->api->restore_end_file(a->session, AFD_STATUS_FAILED);
            return 1;
        }
        for (;;) {
            size_t got = fread(buf, 1, (size_t)chunk, in);
            if (got == 0) break;
            rc = a->api->restore_write(a->session, i, buf, got);
            if (rc != AFD_OK) {
                fclose(in);
                h_failed(a, "restore_write", rc);
                rc = a->api->restore_end_file(a->session, AFD_STATUS_FAILED);
                if (rc != AFD_OK) h_failed(a, "restore_end_file(FAILED)", rc);
                return 1;
            }
            done += got;
        }
        fclose(in);
        if (done != stream_len[i]) {
            fprintf(stderr,
                    "error: the dump of %s stream %lu has %llu bytes, the manifest says %llu\n",
                    f[0], (unsigned long)i, (unsigned long long)done,
                    (unsigned long long)stream_len[i]);
            a->api->restore_end_file(a->session, AFD_STATUS_FAILED);
            return 1;
        }
        *bytes += done;
    }
    rc = a->api->restore_end_file(a->session, AFD_STATUS_OK);
    if (rc != AFD_OK) return h_failed(a, "restore_end_file", rc);
    return 0;
}

static int h_restore(agent *a, harness *h, const char *dumpdir, const char *target,
                     uint64_t chunk) {
    char path[SU_PATH_MAX];
    char version[256] = "";
    uint32_t source_abi = a->chosen;
    afd_restore_params rp;
    FILE *m;
    char *line;
    uint8_t *buf;
    uint64_t files = 0, bytes = 0;
    double start = h_now(), seconds;
    int32_t rc;
    int status = 0;
    if (su_join(path, sizeof path, dumpdir, H_MANIFEST) != 0 ||
        (m = su_fopen(path, "rb")) == NULL) {
        fprintf(stderr, "error: cannot open %s/%s: %s\n", dumpdir, H_MANIFEST, strerror(errno));
        return 1;
    }
    buf = malloc((size_t)chunk);
    if (buf == NULL) {
        fclose(m);
        return 1;
    }
    /* The header names the agent that saved the dump. */
    while ((line = h_read_line(m)) != NULL) {
        char *f[4];
        if (line[0] != '#') break;
        if (strncmp(line, "# agent\t", 8) == 0 && h_split_tabs(line + 8, f, 3) == 3) {
            if (strcmp(f[0], a->name) != 0) {
                fprintf(stderr, "warning: the dump was made by %s, restoring with %s\n", f[0],
                        a->name);
            }
            source_abi = (uint32_t)strtoul(f[1], NULL, 10);
            snprintf(version, sizeof version, "%s", f[2]);
        }
        free(line);
    }
    memset(&rp, 0, sizeof rp);
    rp.struct_size = sizeof rp;
    rp.source_abi = source_abi;
    rp.target = target;
    rp.source_agent_version = version;
    rc = a->api->restore_prepare(a->session, &rp);
    if (rc != AFD_OK) {
        free(line);
        line = NULL;
        status = h_failed(a, "restore_prepare", rc);
    }
    while (status == 0 && line != NULL) {
        if (line[0] != '\0' && line[0] != '#') {
            status = h_restore_line(a, dumpdir, line, chunk, buf, &bytes);
            if (status == 0) {
                files++;
                if (!h->quiet) printf("  restored %s\n", line);
            }
        }
        free(line);
        line = status == 0 ? h_read_line(m) : NULL;
    }
    free(line);
    fclose(m);
    free(buf);
    if (status != 0) return status;
    rc = a->api->restore_finish(a->session);
    if (rc != AFD_OK) return h_failed(a, "restore_finish", rc);
    seconds = h_now() - start;
    printf("totals: %llu files restored, %llu bytes, %.3f seconds, %.1f MB/s\n",
           (unsigned long long)files, (unsigned long long)bytes, seconds,
           seconds > 0 ? (double)bytes / 1e6 / seconds : 0.0);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* main                                                                                         */
/* ------------------------------------------------------------------------------------------- */

static int h_usage(void) {
    fputs("usage:\n"
          "  afd_harness backup <agent> <dumpdir> [--level full|incremental|differential]\n"
          "      [--state-in F] [--state-out F] [--buf BYTES] [--discard] [--finish ok|failed]\n"
          "      [--abi N] [--exclude TEXT] [--cancel-after N] [-q] [-v] [key=value ...]\n"
          "  afd_harness restore <agent> <dumpdir> <target> [--chunk BYTES] [--abi N] [-q] [-v]\n"
          "      [key=value ...]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv) {
    harness h;
    agent a;
    backup_opts bo;
    const char *cmd, *lib, *dumpdir, *target = NULL, *state_in = NULL;
    uint64_t chunk = 64 * 1024, value, host_max = AFD_ABI_LATEST;
    int i, first, status;

    setvbuf(stdout, NULL, _IOLBF, BUFSIZ); /* keep stdout in step with the agent's log on stderr */
    if (argc < 4) return h_usage();
    cmd = argv[1];
    lib = argv[2];
    dumpdir = argv[3];
    first = 4;
    if (strcmp(cmd, "restore") == 0) {
        if (argc < 5) return h_usage();
        target = argv[4];
        first = 5;
    } else if (strcmp(cmd, "backup") != 0) {
        return h_usage();
    }
    memset(&h, 0, sizeof h);
    h.cancel_after = -1;
    h.state_in_len = -1;
    h.kv = calloc((size_t)argc, sizeof *h.kv);
    if (h.kv == NULL) return 1;
    memset(&bo, 0, sizeof bo);
    bo.dumpdir = dumpdir;
    bo.level = AFD_LEVEL_FULL;
    bo.buf_size = 1024 * 1024;
    bo.finish_status = AFD_STATUS_OK;

    for (i = first; i < argc; i++) {
        const char *arg = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--level") == 0 && next != NULL) {
            i++;
            if (strcmp(next, "full") == 0) {
                bo.level = AFD_LEVEL_FULL;
            } else if (strcmp(next, "incremental") == 0) {
                bo.level = AFD_LEVEL_INCREMENTAL;
            } else if (strcmp(next, "differential") == 0) {
                bo.level = AFD_LEVEL_DIFFERENTIAL;
            } else {
                goto bad;
            }
        } else if (strcmp(arg, "--state-in") == 0 && next != NULL) {
            state_in = argv[++i];
        } else if (strcmp(arg, "--state-out") == 0 && next != NULL) {
            bo.state_out = argv[++i];
        } else if (strcmp(arg, "--buf") == 0 && next != NULL && h_parse_u64(next, &value) &&
                   value > 0 && value <= (uint64_t)1 << 30) {
            bo.buf_size = value;
            i++;
        } else if (strcmp(arg, "--chunk") == 0 && next != NULL && h_parse_u64(next, &value) &&
                   value > 0 && value <= (uint64_t)1 << 30) {
            chunk = value;
            i++;
        } else if (strcmp(arg, "--abi") == 0 && next != NULL && h_parse_u64(next, &value) &&
                   value >= 1 && value <= AFD_ABI_LATEST) {
            host_max = value;
            i++;
        } else if (strcmp(arg, "--cancel-after") == 0 && next != NULL &&
                   h_parse_u64(next, &value)) {
            h.cancel_after = (long)value;
            i++;
        } else if (strcmp(arg, "--exclude") == 0 && next != NULL) {
            h.exclude = argv[++i];
        } else if (strcmp(arg, "--finish") == 0 && next != NULL) {
            i++;
            if (strcmp(next, "ok") == 0) {
                bo.finish_status = AFD_STATUS_OK;
            } else if (strcmp(next, "failed") == 0) {
                bo.finish_status = AFD_STATUS_FAILED;
            } else {
                goto bad;
            }
        } else if (strcmp(arg, "--discard") == 0) {
            bo.discard = 1;
        } else if (strcmp(arg, "-q") == 0) {
            h.quiet = 1;
        } else if (strcmp(arg, "-v") == 0) {
            h.verbose = 1;
        } else if (arg[0] != '-' && strchr(arg, '=') != NULL && arg[0] != '=') {
            h.kv[h.kv_count++] = argv[i];
        } else {
            goto bad;
        }
    }
    if (state_in != NULL) {
        if (h_read_file(state_in, &h.state_in, &h.state_in_len) != 0) {
            fprintf(stderr, "error: cannot read the state %s: %s\n", state_in, strerror(errno));
            free(h.kv);
            return 1;
        }
    }

    status = h_load(&a, &h, lib, (uint32_t)host_max);
    if (status == 0) {
        if (target == NULL) {
            status = h_backup(&a, &h, &bo);
        } else {
            status = h_restore(&a, &h, dumpdir, target, chunk);
        }
    }
    h_unload(&a);
    free(h.state_in);
    free(h.state_out);
    free(h.kv);
    return status;
bad:
    fprintf(stderr, "error: bad argument: %s\n", argv[i]);
    free(h.kv);
    return h_usage();
}
