/* sample_util.c: see sample_util.h.
 *
 * Compiled once with the newest generation whatever the agent targets: node-gyp puts objects of
 * sources outside binding/ at one shared path, so every agent links the same object. The gen 2
 * helpers check the host table's struct_size at run time, so an old agent that never calls them
 * is unaffected. */
#undef AFD_TARGET_ABI
#define AFD_TARGET_ABI AFD_ABI_LATEST
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif

#include "sample_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <direct.h>
#include <io.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utime.h>
#include <windows.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#endif

int32_t su_base_init(su_base *base, const afd_open_params *params) {
    memset(base, 0, sizeof *base);
    if (params == NULL || !AFD_HAS_FIELD(params, afd_open_params, host_ctx)) {
        return AFD_E_INVALID;
    }
    base->host = params->host;
    base->host_ctx = params->host_ctx;
    base->abi = params->abi_version;
    return AFD_OK;
}

int32_t su_fail(su_base *base, int32_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base->error, sizeof base->error, fmt, ap);
    va_end(ap);
    return code;
}

const char *su_last_error(su_base *base) {
    return base->error[0] ? base->error : NULL;
}

void su_log(su_base *base, int32_t level, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    if (!AFD_HAS_FIELD(base->host, afd_host_api, log) || base->host->log == NULL) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    base->host->log(base->host_ctx, level, line);
}

char *su_option(su_base *base, const char *key) {
    char small[256];
    int64_t len;
    char *value;
    if (!AFD_HAS_FIELD(base->host, afd_host_api, get_option) || base->host->get_option == NULL) {
        return NULL;
    }
    len = base->host->get_option(base->host_ctx, key, small, sizeof small);
    if (len < 0) return NULL;
    value = malloc((size_t)len + 1);
    if (value == NULL) return NULL;
    if ((uint64_t)len < sizeof small) {
        memcpy(value, small, (size_t)len + 1);
    } else if (base->host->get_option(base->host_ctx, key, value, (uint64_t)len + 1) != len) {
        free(value);
        return NULL;
    }
    return value;
}

long long su_option_int(su_base *base, const char *key, long long fallback) {
    char *text = su_option(base, key);
    char *end = NULL;
    long long value;
    if (text == NULL) return fallback;
    value = strtoll(text, &end, 10);
    if (end == text || *end != '\0') value = fallback;
    free(text);
    return value;
}

int su_cancelled(su_base *base) {
    if (!AFD_HAS_FIELD(base->host, afd_host_api, is_cancelled) || base->host->is_cancelled == NULL) {
        return 0;
    }
    return base->host->is_cancelled(base->host_ctx) == 1;
}

int su_included(su_base *base, const char *path) {
    if (!AFD_HAS_FIELD(base->host, afd_host_api, fileset_check) || base->host->fileset_check == NULL) {
        return 1;
    }
    return base->host->fileset_check(base->host_ctx, path) == 1;
}

uint8_t *su_state_get(su_base *base, uint64_t *len) {
    int64_t size;
    uint8_t *blob;
    *len = 0;
    if (!AFD_HAS_FIELD(base->host, afd_host_api, state_get) || base->host->state_get == NULL) {
        return NULL;
    }
    size = base->host->state_get(base->host_ctx, NULL, 0);
    if (size < 0) return NULL;
    blob = malloc(size > 0 ? (size_t)size : 1);
    if (blob == NULL) return NULL;
    if (size > 0 && base->host->state_get(base->host_ctx, blob, (uint64_t)size) != size) {
        free(blob);
        return NULL;
    }
    *len = (uint64_t)size;
    return blob;
}

int32_t su_state_set(su_base *base, const void *data, uint64_t len) {
    if (!AFD_HAS_FIELD(base->host, afd_host_api, state_set) || base->host->state_set == NULL) {
        return AFD_E_UNSUPPORTED;
    }
    return base->host->state_set(base->host_ctx, (const uint8_t *)data, len);
}

int32_t su_negotiate(const afd_negotiate_request *request, afd_negotiate_reply *reply,
                     uint32_t agent_min, uint32_t agent_max,
                     const afd_agent_api *(*table_for)(uint32_t generation)) {
    uint32_t chosen;
    if (reply == NULL || !AFD_HAS_FIELD(reply, afd_negotiate_reply, agent_max_abi)) {
        return AFD_E_INVALID;
    }
    reply->agent_min_abi = agent_min;
    reply->agent_max_abi = agent_max;
    if (request == NULL || !AFD_HAS_FIELD(request, afd_negotiate_request, host_max_abi) ||
        !AFD_HAS_FIELD(reply, afd_negotiate_reply, api)) {
        return AFD_E_INVALID;
    }
    chosen = request->host_max_abi < agent_max ? request->host_max_abi : agent_max;
    if (chosen < agent_min || chosen < request->host_min_abi) {
        reply->chosen_abi = 0;
        reply->api = NULL;
        return AFD_E_VERSION;
    }
    reply->chosen_abi = chosen;
    reply->api = table_for(chosen);
    return reply->api != NULL ? AFD_OK : AFD_E_VERSION;
}

int su_join(char *out, size_t cap, const char *a, const char *b) {
    size_t la = strlen(a);
    int n;
    while (la > 1 && (a[la - 1] == '/' || a[la - 1] == '\\')) la--;
    while (*b == '/' || *b == '\\') b++;
    n = snprintf(out, cap, "%.*s/%s", (int)la, a, b);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static int su_mkdir_one(const char *path) {
#if defined(_WIN32)
    int rc = _mkdir(path);
#else
    int rc = mkdir(path, 0755);
#endif
    if (rc != 0 && errno == EEXIST) {
        su_stat st;
        if (su_stat_path(path, &st) == 0 && st.is_dir) return 0;
        errno = EEXIST;
    }
    return rc;
}

int su_mkdirs(const char *path) {
    char buf[SU_PATH_MAX];
    size_t i, len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (i = 1; i < len; i++) {
        if (buf[i] == '/' || buf[i] == '\\') {
            char saved = buf[i];
            /* Skip a drive root like "C:" on Windows. */
            if (i == 2 && buf[1] == ':') continue;
            buf[i] = '\0';
            if (su_mkdir_one(buf) != 0 && errno != EEXIST) return -1;
            buf[i] = saved;
        }
    }
    return su_mkdir_one(buf);
}

int su_stat_path(const char *path, su_stat *out) {
#if defined(_WIN32)
    struct _stat64 st;
    if (_stat64(path, &st) != 0) return -1;
    out->is_dir = (st.st_mode & _S_IFDIR) != 0;
    out->is_regular = (st.st_mode & _S_IFREG) != 0;
    out->size = (int64_t)st.st_size;
    out->mtime_ns = (int64_t)st.st_mtime * 1000000000LL;
    out->mode = (uint32_t)(st.st_mode & 0777);
#else
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    out->is_dir = S_ISDIR(st.st_mode);
    out->is_regular = S_ISREG(st.st_mode);
    out->size = (int64_t)st.st_size;
    out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    out->mode = (uint32_t)(st.st_mode & 07777);
#endif
    return 0;
}

int su_set_mtime(const char *path, int64_t mtime_ns) {
#if defined(_WIN32)
    struct __utimbuf64 times;
    times.actime = times.modtime = (__time64_t)(mtime_ns / 1000000000LL);
    return _utime64(path, &times);
#else
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = (time_t)(mtime_ns / 1000000000LL);
    times[0].tv_nsec = times[1].tv_nsec = (long)(mtime_ns % 1000000000LL);
    return utimensat(AT_FDCWD, path, times, 0);
#endif
}

static int su_cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int su_push_name(char ***names, size_t *count, size_t *cap, const char *name) {
    char *copy;
    if (*count == *cap) {
        size_t grown = *cap ? *cap * 2 : 16;
        char **bigger = realloc(*names, grown * sizeof **names);
        if (bigger == NULL) return -1;
        *names = bigger;
        *cap = grown;
    }
    copy = malloc(strlen(name) + 1);
    if (copy == NULL) return -1;
    strcpy(copy, name);
    (*names)[(*count)++] = copy;
    return 0;
}

char **su_list_dir(const char *path, size_t *count) {
    char **names = NULL;
    size_t cap = 0;
    *count = 0;
#if defined(_WIN32)
    char pattern[SU_PATH_MAX];
    WIN32_FIND_DATAA found;
    HANDLE h;
    if (su_join(pattern, sizeof pattern, path, "*") != 0) return NULL;
    h = FindFirstFileA(pattern, &found);
    if (h == INVALID_HANDLE_VALUE) {
        errno = ENOENT;
        return NULL;
    }
    do {
        if (strcmp(found.cFileName, ".") == 0 || strcmp(found.cFileName, "..") == 0) continue;
        if (su_push_name(&names, count, &cap, found.cFileName) != 0) {
            FindClose(h);
            su_free_list(names, *count);
            errno = ENOMEM;
            return NULL;
        }
    } while (FindNextFileA(h, &found));
    FindClose(h);
#else
    DIR *dir = opendir(path);
    struct dirent *entry;
    if (dir == NULL) return NULL;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        if (su_push_name(&names, count, &cap, entry->d_name) != 0) {
            closedir(dir);
            su_free_list(names, *count);
            errno = ENOMEM;
            return NULL;
        }
    }
    closedir(dir);
#endif
    if (names == NULL) {
        names = malloc(sizeof *names); /* an empty but non-NULL list */
        if (names == NULL) return NULL;
    }
    qsort(names, *count, sizeof *names, su_cmp_names);
    return names;
}

void su_free_list(char **names, size_t count) {
    size_t i;
    if (names == NULL) return;
    for (i = 0; i < count; i++) free(names[i]);
    free(names);
}

int su_remove(const char *path) {
    return remove(path);
}

FILE *su_fopen(const char *path, const char *mode) {
    return fopen(path, mode);
}
