/* sample_util.c: see sample_util.h.
 *
 * Compiled once with the newest generation whatever the agent targets: node-gyp puts objects of
 * sources outside binding/ at one shared path, so every agent links the same object. The gen 2
 * helpers check the host table's struct_size at run time, so an old agent that never calls them
 * is unaffected. */
#undef AFD_TARGET_ABI
#define AFD_TARGET_ABI AFD_ABI_LATEST
#if defined(_WIN32)
/* MSVC: plain fopen() and friends, without the "consider fopen_s" deprecation warnings. */
#ifndef _CRT_SECURE_NO_WARNINGS
#define _CRT_SECURE_NO_WARNINGS
#endif
#else
#define _POSIX_C_SOURCE 200809L
#endif

#include "sample_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <direct.h>
#include <fcntl.h>
#include <io.h>
#include <wchar.h>
#include <windows.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#if defined(_WIN32)
/* Windows: the ABI's paths are UTF-8, but the "A" functions and the narrow C runtime calls
 * (fopen, _stat64, _mkdir, ...) read a char path in the ANSI code page, which mangles every
 * non-ASCII name. So every path goes through su_widen() to UTF-16 and the "W" functions, and the
 * names a directory listing finds come back as UTF-8. Times use FILETIME (100 ns steps) rather
 * than the C runtime's whole seconds. */

/* errno for a Win32 error code (GetLastError()). */
static int su_win_errno(DWORD error) {
    switch (error) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_INVALID_NAME:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME:
        return ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
        return EACCES;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
        return EEXIST;
    case ERROR_DIRECTORY:
        return ENOTDIR;
    case ERROR_DIR_NOT_EMPTY:
        return ENOTEMPTY;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return ENOMEM;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
        return ENOSPC;
    case ERROR_FILENAME_EXCED_RANGE:
        return ENAMETOOLONG;
    default:
        return EIO;
    }
}

/* UTF-8 `path` as UTF-16 into out (cap wide characters). Returns 0, or -1 with errno set:
 * ENAMETOOLONG when it does not fit, EILSEQ when it is not valid UTF-8. */
static int su_widen(const char *path, wchar_t *out, int cap) {
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, out, cap) == 0) {
        errno = GetLastError() == ERROR_INSUFFICIENT_BUFFER ? ENAMETOOLONG : EILSEQ;
        return -1;
    }
    return 0;
}

/* FILETIME counts 100 ns steps since 1601-01-01; this many of them lie before 1970-01-01. */
#define SU_FILETIME_1970 116444736000000000LL

static int64_t su_filetime_to_ns(FILETIME ft) {
    int64_t steps = (int64_t)(((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime);
    steps -= SU_FILETIME_1970;
    if (steps > INT64_MAX / 100) return INT64_MAX; /* after 2262: past what int64 ns can hold */
    return steps * 100;
}
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

int32_t su_session_open(const afd_open_params *params, size_t session_size, afd_session **out) {
    su_base *session;
    if (out == NULL) return AFD_E_INVALID;
    *out = NULL;
    if (session_size < sizeof(su_base)) return AFD_E_INVALID;
    session = calloc(1, session_size); /* the su_base is the session's first member */
    if (session == NULL) return AFD_E_NOMEM;
    if (su_base_init(session, params) != AFD_OK) {
        free(session);
        return AFD_E_INVALID;
    }
    *out = (afd_session *)(void *)session;
    return AFD_OK;
}

const char *AFD_CALL su_session_last_error(afd_session *session) {
    return session != NULL ? su_last_error((su_base *)(void *)session) : NULL;
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

/* su_negotiate() and su_negotiate_single(): the table comes from table_for, else it is `single`. */
static int32_t su_negotiate_table(const afd_negotiate_request *request, afd_negotiate_reply *reply,
                                  uint32_t agent_min, uint32_t agent_max,
                                  const afd_agent_api *(*table_for)(uint32_t generation),
                                  const afd_agent_api *single) {
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
    reply->api = table_for != NULL ? table_for(chosen) : single;
    return reply->api != NULL ? AFD_OK : AFD_E_VERSION;
}

int32_t su_negotiate(const afd_negotiate_request *request, afd_negotiate_reply *reply,
                     uint32_t agent_min, uint32_t agent_max,
                     const afd_agent_api *(*table_for)(uint32_t generation)) {
    return su_negotiate_table(request, reply, agent_min, agent_max, table_for, NULL);
}

int32_t su_negotiate_single(const afd_negotiate_request *request, afd_negotiate_reply *reply,
                            const afd_agent_api *api) {
    return su_negotiate_table(request, reply, api->abi_version, api->abi_version, NULL, api);
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
    wchar_t wpath[SU_PATH_MAX];
    int rc;
    if (su_widen(path, wpath, SU_PATH_MAX) != 0) return -1;
    rc = _wmkdir(wpath);
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
    wchar_t wpath[SU_PATH_MAX];
    WIN32_FILE_ATTRIBUTE_DATA data;
    DWORD attrs;
    FILETIME mtime;
    uint64_t size;
    if (su_widen(path, wpath, SU_PATH_MAX) != 0) return -1;
    if (!GetFileAttributesExW(wpath, GetFileExInfoStandard, &data)) {
        errno = su_win_errno(GetLastError());
        return -1;
    }
    attrs = data.dwFileAttributes;
    mtime = data.ftLastWriteTime;
    size = ((uint64_t)data.nFileSizeHigh << 32) | data.nFileSizeLow;
    if ((attrs & FILE_ATTRIBUTE_REPARSE_POINT) != 0) {
        /* A symbolic link or junction: the facts above are the link's own; stat() follows it. */
        BY_HANDLE_FILE_INFORMATION info;
        BOOL ok;
        HANDLE h = CreateFileW(wpath, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                               NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
        if (h == INVALID_HANDLE_VALUE) {
            errno = su_win_errno(GetLastError());
            return -1;
        }
        ok = GetFileInformationByHandle(h, &info);
        if (!ok) errno = su_win_errno(GetLastError());
        CloseHandle(h);
        if (!ok) return -1;
        attrs = info.dwFileAttributes;
        mtime = info.ftLastWriteTime;
        size = ((uint64_t)info.nFileSizeHigh << 32) | info.nFileSizeLow;
    }
    out->is_dir = (attrs & FILE_ATTRIBUTE_DIRECTORY) != 0;
    out->is_regular = !out->is_dir && (attrs & FILE_ATTRIBUTE_DEVICE) == 0;
    out->size = out->is_dir ? 0 : (int64_t)size;
    out->mtime_ns = su_filetime_to_ns(mtime);
    /* The C runtime's stat() convention: everyone may read, write unless read-only, and
     * directories are searchable. */
    out->mode = (attrs & FILE_ATTRIBUTE_READONLY) != 0 ? 0444u : 0666u;
    if (out->is_dir) out->mode |= 0111u;
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
    wchar_t wpath[SU_PATH_MAX];
    int64_t steps = mtime_ns / 100;
    FILETIME ft;
    HANDLE h;
    BOOL ok;
    if (mtime_ns % 100 < 0) steps -= 1; /* round down before 1970 too */
    if (steps < -SU_FILETIME_1970) { /* before 1601: FILETIME cannot hold it */
        errno = EINVAL;
        return -1;
    }
    steps += SU_FILETIME_1970;
    ft.dwLowDateTime = (DWORD)((uint64_t)steps & 0xFFFFFFFFu);
    ft.dwHighDateTime = (DWORD)((uint64_t)steps >> 32);
    if (su_widen(path, wpath, SU_PATH_MAX) != 0) return -1;
    h = CreateFileW(wpath, FILE_WRITE_ATTRIBUTES,
                    FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                    FILE_FLAG_BACKUP_SEMANTICS, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        errno = su_win_errno(GetLastError());
        return -1;
    }
    /* Access and modification time, as utimensat() below sets both. */
    ok = SetFileTime(h, NULL, &ft, &ft);
    if (!ok) errno = su_win_errno(GetLastError());
    CloseHandle(h);
    return ok ? 0 : -1;
#else
    struct timespec times[2];
    int64_t sec = mtime_ns / 1000000000LL, nsec = mtime_ns % 1000000000LL;
    if (nsec < 0) { /* before 1970: tv_nsec must stay in 0..999999999 */
        nsec += 1000000000LL;
        sec -= 1;
    }
    times[0].tv_sec = times[1].tv_sec = (time_t)sec;
    times[0].tv_nsec = times[1].tv_nsec = (long)nsec;
    return utimensat(AT_FDCWD, path, times, 0);
#endif
}

static int su_cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int su_grow(void **array, size_t *cap, size_t count, size_t elem) {
    void *bigger;
    size_t grown;
    if (count < *cap) return 0;
    grown = *cap ? *cap * 2 : 16;
    bigger = realloc(*array, grown * elem);
    if (bigger == NULL) return -1;
    *array = bigger;
    *cap = grown;
    return 0;
}

static int su_push_name(char ***names, size_t *count, size_t *cap, const char *name) {
    char *copy;
    if (su_grow((void **)names, cap, *count, sizeof **names) != 0) return -1;
    copy = su_strdup(name);
    if (copy == NULL) return -1;
    (*names)[(*count)++] = copy;
    return 0;
}

char **su_list_dir(const char *path, size_t *count) {
    char **names = NULL;
    size_t cap = 0;
    *count = 0;
#if defined(_WIN32)
    char pattern[SU_PATH_MAX];
    wchar_t wpattern[SU_PATH_MAX];
    /* A name of up to MAX_PATH UTF-16 units takes at most 3 UTF-8 bytes per unit. */
    char name[MAX_PATH * 3 + 1];
    WIN32_FIND_DATAW found;
    HANDLE h;
    DWORD error;
    if (su_join(pattern, sizeof pattern, path, "*") != 0) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if (su_widen(pattern, wpattern, SU_PATH_MAX) != 0) return NULL;
    h = FindFirstFileW(wpattern, &found);
    if (h == INVALID_HANDLE_VALUE) {
        su_stat st;
        error = GetLastError();
        /* Nothing matched "*" (not even "." and "..", as in the root of an empty drive): empty
         * when `path` is a directory; any other error, or no directory there, is an error. */
        if (error != ERROR_FILE_NOT_FOUND) {
            errno = su_win_errno(error);
            return NULL;
        }
        if (su_stat_path(path, &st) != 0) return NULL;
        if (!st.is_dir) {
            errno = ENOTDIR;
            return NULL;
        }
    } else {
        do {
            if (wcscmp(found.cFileName, L".") == 0 || wcscmp(found.cFileName, L"..") == 0) {
                continue;
            }
            /* An unpaired surrogate (NTFS allows one) becomes U+FFFD: the name then no longer
             * opens, which the caller reports as a file that has disappeared. */
            if (WideCharToMultiByte(CP_UTF8, 0, found.cFileName, -1, name, (int)sizeof name,
                                    NULL, NULL) == 0) {
                continue;
            }
            if (su_push_name(&names, count, &cap, name) != 0) {
                FindClose(h);
                su_free_list(names, *count);
                errno = ENOMEM;
                return NULL;
            }
        } while (FindNextFileW(h, &found));
        error = GetLastError();
        FindClose(h);
        if (error != ERROR_NO_MORE_FILES) {
            su_free_list(names, *count);
            *count = 0;
            errno = su_win_errno(error);
            return NULL;
        }
    }
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
#if defined(_WIN32)
    wchar_t wpath[SU_PATH_MAX];
    if (su_widen(path, wpath, SU_PATH_MAX) != 0) return -1;
    return _wremove(wpath);
#else
    return remove(path);
#endif
}

FILE *su_fopen(const char *path, const char *mode) {
#if defined(_WIN32)
    wchar_t wpath[SU_PATH_MAX];
    wchar_t wmode[8];
    if (su_widen(path, wpath, SU_PATH_MAX) != 0 || su_widen(mode, wmode, 8) != 0) return NULL;
    return _wfopen(wpath, wmode);
#else
    return fopen(path, mode);
#endif
}

char *su_strdup(const char *s) {
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy != NULL) memcpy(copy, s, len);
    return copy;
}

int su_mkdirs_parent(const char *path) {
    char buf[SU_PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    while (len > 0 && buf[len - 1] != '/' && buf[len - 1] != '\\') len--;
    while (len > 1 && (buf[len - 1] == '/' || buf[len - 1] == '\\')) len--;
    if (len == 0) return 0; /* a bare name: the current directory */
    buf[len] = '\0';
    return su_mkdirs(buf);
}

int su_replace(const char *from, const char *to) {
#if defined(_WIN32)
    /* rename() does not replace an existing file on Windows; MoveFileExW does, in one step. */
    wchar_t wfrom[SU_PATH_MAX], wto[SU_PATH_MAX];
    if (su_widen(from, wfrom, SU_PATH_MAX) != 0 || su_widen(to, wto, SU_PATH_MAX) != 0) return -1;
    if (!MoveFileExW(wfrom, wto, MOVEFILE_REPLACE_EXISTING)) {
        errno = su_win_errno(GetLastError());
        return -1;
    }
    return 0;
#else
    return rename(from, to);
#endif
}

const char *su_strerror(su_base *base, int err) {
#if defined(_WIN32)
    if (strerror_s(base->errtext, sizeof base->errtext, err) != 0) {
        snprintf(base->errtext, sizeof base->errtext, "error %d", err);
    }
#else
    if (strerror_r(err, base->errtext, sizeof base->errtext) != 0) {
        snprintf(base->errtext, sizeof base->errtext, "error %d", err);
    }
#endif
    return base->errtext;
}

/* ---- names and logical paths ---- */

/* Length of the UTF-8 sequence at s (at most n bytes available), or 0 when it is not valid UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF are refused). */
static size_t su_utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len, i;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

int su_valid_name_n(const char *name, size_t len) {
    const unsigned char *s = (const unsigned char *)name;
    size_t i = 0;
    if (len == 0 || len > SU_NAME_MAX) return 0;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return 0;
    while (i < len) {
        size_t step;
        if (s[i] < 0x20 || s[i] == 0x7F || s[i] == '/' || s[i] == '\\' || s[i] == ':') return 0;
        step = su_utf8_len(s + i, len - i);
        if (step == 0) return 0;
        i += step;
    }
    return 1;
}

int su_valid_name(const char *name) {
    return name != NULL && su_valid_name_n(name, strlen(name));
}

const char *su_logical_rest(const char *path, const char *prefix) {
    size_t plen = strlen(prefix);
    const char *rest, *p;
    if (path == NULL || strlen(path) >= SU_PATH_MAX || strncmp(path, prefix, plen) != 0) {
        return NULL;
    }
    rest = path + plen;
    p = rest;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (!su_valid_name_n(p, n)) return NULL; /* also refuses empty, ".", ".." */
        if (slash == NULL) break;
        p = slash + 1;
    }
    return rest;
}

int su_valid_logical_path(const char *path) {
    const char *p;
    if (path == NULL || path[0] != '/' || strchr(path, '\\') != NULL) return 0;
    p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        if (slash == NULL) return 1;
        p = slash + 1;
    }
}

int su_valid_stream_name(const char *name) {
    const char *p;
    if (name == NULL || name[0] == '\0') return 0;
    for (p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

int su_split_path(const char *rest, char (*parts)[SU_NAME_MAX + 1], int max) {
    int count = 0;
    const char *p = rest;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (count == max || n > SU_NAME_MAX) return -1;
        memcpy(parts[count], p, n);
        parts[count][n] = '\0';
        count++;
        if (slash == NULL) return count;
        p = slash + 1;
    }
}

int su_has_suffix(const char *name, const char *suffix) {
    size_t ln = strlen(name), ls = strlen(suffix), i;
    if (ln < ls) return 0;
    name += ln - ls;
    for (i = 0; i < ls; i++) {
        char a = name[i], b = suffix[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
        if (a != b) return 0;
    }
    return 1;
}

/* ---- cancellation ---- */

int32_t su_cancel_point(su_base *base, uint32_t *counter, const char *what) {
    if (counter != NULL && ++*counter % 64u != 0) return AFD_OK;
    if (!su_cancelled(base)) return AFD_OK;
    return su_fail(base, AFD_E_CANCELLED, "the job was cancelled while %s", what);
}

/* ---- backup: the checks and steps every backup entry point starts with ---- */

int32_t su_backup_prepare_once(su_base *base, int *prepare_called,
                               const afd_backup_params *params) {
    if (*prepare_called) {
        return su_fail(base, AFD_E_INVALID, "backup_prepare was already called");
    }
    *prepare_called = 1;
    if (params == NULL || !AFD_HAS_FIELD(params, afd_backup_params, level)) {
        return su_fail(base, AFD_E_INVALID, "backup_prepare: missing parameters");
    }
    return AFD_OK;
}

int32_t su_full_backup_only(su_base *base, const afd_backup_params *params, const char *agent) {
    if (params->level == AFD_LEVEL_FULL) return AFD_OK;
    return su_fail(base, AFD_E_UNSUPPORTED,
                   "%s makes full backups only (level %lu asked); use a full backup", agent,
                   (unsigned long)params->level);
}

int32_t su_option_dir(su_base *base, const su_dir_option *option, char **value) {
    su_stat st;
    const char *dir;
    *value = su_option(base, option->key);
    dir = *value;
    if (dir == NULL || dir[0] == '\0') {
        return su_fail(base, AFD_E_INVALID, "the job option %s is not set; set it to %s",
                       option->key, option->set_it_to);
    }
    if (strlen(dir) >= option->max_len) {
        return su_fail(base, AFD_E_INVALID, "the job option %s is too long", option->key);
    }
    if (su_stat_path(dir, &st) != 0) {
        int err = errno;
        return su_fail(base, AFD_E_INVALID, "cannot use %s %s: %s; check the job option %s",
                       option->label, dir, su_strerror(base, err), option->key);
    }
    if (!st.is_dir) {
        return su_fail(base, AFD_E_INVALID, "%s %s is not a directory; %s", option->label, dir,
                       option->not_a_dir_hint);
    }
    return AFD_OK;
}

int32_t su_next_file_begin(su_base *base, const afd_file **out, int prepared, int file_active,
                           const char *active_path, const char *listing_what) {
    *out = NULL;
    if (!prepared) {
        return su_fail(base, AFD_E_INVALID, "backup_next_file before backup_prepare");
    }
    if (file_active) {
        return su_fail(base, AFD_E_INVALID, "backup_next_file before backup_end_file of %s",
                       active_path);
    }
    return su_cancel_point(base, NULL, listing_what);
}

int32_t su_stat_to_save(su_base *base, const char *fs_path, const char *readable_what,
                        su_stat *st) {
    int err;
    if (su_stat_path(fs_path, st) == 0) return AFD_OK;
    err = errno;
    if (err == ENOENT) {
        su_log(base, AFD_LOG_WARNING, "%s disappeared during the backup; skipping it", fs_path);
        return SU_GONE;
    }
    return su_fail(base, AFD_E_IO, "cannot stat %s: %s; check that agentfd may read %s", fs_path,
                   su_strerror(base, err), readable_what);
}

/* ---- restore: the checks and steps every restore entry point starts with ---- */

int32_t su_restore_prepare(su_base *base, int *restore_ready, const afd_restore_params *params,
                           const su_dir_option *dir, char *target) {
    const char *chosen = NULL;
    char *option = NULL;
    int n;
    if (*restore_ready) {
        return su_fail(base, AFD_E_INVALID, "restore_prepare was already called");
    }
    if (params != NULL && AFD_HAS_FIELD(params, afd_restore_params, target)) {
        chosen = params->target;
    }
    if (chosen == NULL || chosen[0] == '\0') {
        option = su_option(base, dir->key);
        chosen = option;
    }
    if (chosen == NULL || chosen[0] == '\0') {
        free(option);
        return su_fail(base, AFD_E_INVALID,
                       "no restore target: give a target directory or set the job option %s",
                       dir->key);
    }
    n = snprintf(target, SU_PATH_MAX, "%s", chosen);
    free(option);
    if (n < 0 || (size_t)n >= dir->max_len) {
        return su_fail(base, AFD_E_INVALID, "the restore target is too long");
    }
    if (su_mkdirs(target) != 0) {
        int err = errno;
        return su_fail(base, AFD_E_IO,
                       "cannot create the restore target %s: %s; choose another target", target,
                       su_strerror(base, err));
    }
    if (params != NULL && AFD_HAS_FIELD(params, afd_restore_params, target) &&
        params->target != NULL && params->target[0] != '\0') {
        su_confine(base, target);
    }
    *restore_ready = 1;
    return AFD_OK;
}

void su_confine(su_base *base, const char *target) {
    size_t len = strlen(target);
    base->confined = 0;
    if (!AFD_HAS_FIELD(base->host, afd_host_api, restore_remove) || base->abi < AFD_ABI_GEN_3 ||
        base->host->restore_open == NULL || len >= sizeof base->target) {
        return;
    }
    while (len > 1 && (target[len - 1] == '/' || target[len - 1] == '\\')) len--;
    memcpy(base->target, target, len);
    base->target[len] = '\0';
    base->confined = 1;
}

/* `path` relative to the confined target (it was built with su_join(target, ...)), or NULL. */
static const char *su_relative(su_base *base, const char *path) {
    size_t len = strlen(base->target);
    if (strncmp(path, base->target, len) != 0 || (path[len] != '/' && path[len] != '\\')) {
        return NULL;
    }
    path += len;
    while (*path == '/' || *path == '\\') path++;
    return *path != '\0' ? path : NULL;
}

/* Set the times of the open file `fp` (flushed first, so that no later write changes them). */
static int su_set_mtime_fp(FILE *fp, int64_t mtime_ns) {
    int64_t sec = mtime_ns / 1000000000LL, nsec = mtime_ns % 1000000000LL;
    if (fflush(fp) != 0) return -1;
    if (nsec < 0) {
        nsec += 1000000000LL;
        sec -= 1;
    }
#if defined(_WIN32)
    {
        int64_t steps = sec * 10000000LL + nsec / 100 + SU_FILETIME_1970;
        FILETIME ft;
        HANDLE h = (HANDLE)_get_osfhandle(_fileno(fp));
        if (steps < 0) {
            errno = EINVAL;
            return -1;
        }
        ft.dwLowDateTime = (DWORD)((uint64_t)steps & 0xFFFFFFFFu);
        ft.dwHighDateTime = (DWORD)((uint64_t)steps >> 32);
        if (!SetFileTime(h, NULL, &ft, &ft)) {
            errno = su_win_errno(GetLastError());
            return -1;
        }
        return 0;
    }
#else
    {
        struct timespec times[2];
        times[0].tv_sec = times[1].tv_sec = (time_t)sec;
        times[0].tv_nsec = times[1].tv_nsec = (long)nsec;
        return futimens(fileno(fp), times);
    }
#endif
}

/* restore_open() of `rel` as a stdio stream for binary writing; NULL with *code set on failure. */
static FILE *su_confined_fopen(su_base *base, const char *rel, int32_t *code) {
    int64_t fd = base->host->restore_open(base->host_ctx, rel, AFD_RESTORE_TRUNCATE | 0644u);
    FILE *fp;
    if (fd < 0) {
        *code = (int32_t)fd;
        return NULL;
    }
#if defined(_WIN32)
    {
        int cfd = _open_osfhandle((intptr_t)fd, _O_WRONLY | _O_BINARY);
        if (cfd < 0) {
            CloseHandle((HANDLE)(intptr_t)fd);
            *code = AFD_E_IO;
            return NULL;
        }
        fp = _fdopen(cfd, "wb");
        if (fp == NULL) _close(cfd);
    }
#else
    fp = fdopen((int)fd, "wb");
    if (fp == NULL) close((int)fd);
#endif
    if (fp == NULL) *code = AFD_E_IO;
    return fp;
}

int32_t su_restore_start_allowed(su_base *base, int restore_ready, const afd_file *file) {
    if (!restore_ready) {
        return su_fail(base, AFD_E_INVALID, "restore_start_file before restore_prepare");
    }
    if (file == NULL || !AFD_HAS_FIELD(file, afd_file, streams)) {
        return su_fail(base, AFD_E_INVALID, "restore_start_file: missing or short afd_file");
    }
    return AFD_OK;
}

int32_t su_refuse_path(su_base *base, const afd_file *file, const char *what_it_should_be) {
    return su_fail(base, AFD_E_INVALID, "refusing to restore \"%.300s\": not %s",
                   file->path != NULL ? file->path : "(null)", what_it_should_be);
}

/* ---- su_reader ---- */

int32_t su_reader_open(su_base *base, su_reader *r, const char *path) {
    size_t len = strlen(path);
    r->fp = NULL;
    if (len >= sizeof r->path) {
        return su_fail(base, AFD_E_INVALID, "path too long: %.200s...", path);
    }
    memcpy(r->path, path, len + 1);
    r->fp = su_fopen(path, "rb");
    if (r->fp == NULL) {
        int err = errno;
        return su_fail(base, AFD_E_IO,
                       "cannot open %s: %s; check that it exists and that agentfd may read it",
                       path, su_strerror(base, err));
    }
    return AFD_OK;
}

int64_t su_reader_read(su_base *base, su_reader *r, uint8_t *buf, uint64_t cap) {
    size_t want, got;
    if (r->fp == NULL) return su_fail(base, AFD_E_INVALID, "no file is open for reading");
    want = cap > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)cap;
    if ((uint64_t)want > (uint64_t)INT64_MAX) want = (size_t)INT64_MAX;
    if (want == 0) return 0;
    errno = 0;
    got = fread(buf, 1, want, r->fp);
    if (got == 0 && ferror(r->fp)) {
        int err = errno != 0 ? errno : EIO;
        return su_fail(base, AFD_E_IO, "cannot read %s: %s; check the disk and run the job again",
                       r->path, su_strerror(base, err));
    }
    return (int64_t)got;
}

int su_reader_at_end(su_reader *r) {
    return r->fp == NULL || fgetc(r->fp) == EOF;
}

void su_reader_close(su_reader *r) {
    if (r->fp != NULL) fclose(r->fp);
    r->fp = NULL;
}

/* ---- su_part ---- */

int32_t su_part_open(su_base *base, su_part *p, const char *final_path) {
    int n;
    p->fp = NULL;
    p->part_path[0] = '\0';
    p->base = base;
    p->final_rel[0] = p->part_rel[0] = '\0';
    p->mtime_ns = 0;
    n = snprintf(p->final_path, sizeof p->final_path, "%s", final_path);
    if (n < 0 || (size_t)n >= sizeof p->final_path || (size_t)n + 5 >= sizeof p->part_path) {
        p->final_path[0] = '\0';
        return su_fail(base, AFD_E_INVALID, "restore path too long: %.200s...", final_path);
    }
    snprintf(p->part_path, sizeof p->part_path, "%s.part", final_path);
    if (base->confined) {
        /* The host creates the parents and the file beneath the target, never through a link. */
        const char *rel = su_relative(base, final_path);
        int32_t code = AFD_E_IO;
        if (rel == NULL) {
            p->part_path[0] = '\0';
            return su_fail(base, AFD_E_INVALID, "%s is not below the restore target %s", final_path,
                           base->target);
        }
        snprintf(p->final_rel, sizeof p->final_rel, "%s", rel);
        snprintf(p->part_rel, sizeof p->part_rel, "%s.part", rel);
        p->fp = su_confined_fopen(base, p->part_rel, &code);
        if (p->fp == NULL) {
            p->part_path[0] = p->part_rel[0] = '\0';
            if (code == AFD_E_REFUSED) {
                return su_fail(base, code,
                               "cannot create %s.part: agentfd refused it, the path leads through "
                               "a symbolic link or a non-directory, and a restore never writes "
                               "outside its target; restore into an empty target",
                               final_path);
            }
            return su_fail(base, code, "cannot create %s.part: the job log says why", final_path);
        }
        return AFD_OK;
    }
    if (su_mkdirs_parent(final_path) != 0) {
        int err = errno;
        p->part_path[0] = '\0';
        return su_fail(base, AFD_E_IO,
                       "cannot create the directory for %s: %s; check the restore target",
                       final_path, su_strerror(base, err));
    }
    p->fp = su_fopen(p->part_path, "wb");
    if (p->fp == NULL) {
        int err = errno;
        p->part_path[0] = '\0';
        return su_fail(base, AFD_E_IO,
                       "cannot create %s.part: %s; check that agentfd may write to the target",
                       final_path, su_strerror(base, err));
    }
    return AFD_OK;
}

int32_t su_part_write(su_base *base, su_part *p, const uint8_t *buf, uint64_t len) {
    if (p->fp == NULL) return su_fail(base, AFD_E_INVALID, "no restored file is open");
    while (len > 0) {
        size_t chunk = len > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)len;
        errno = 0;
        if (fwrite(buf, 1, chunk, p->fp) != chunk) {
            int err = errno != 0 ? errno : EIO;
            return su_fail(base, AFD_E_IO,
                           "cannot write %s: %s; check the free space of the restore target",
                           p->part_path, su_strerror(base, err));
        }
        buf += chunk;
        len -= chunk;
    }
    return AFD_OK;
}

int32_t su_part_close(su_base *base, su_part *p) {
    int failed;
    if (p->fp == NULL) return AFD_OK;
    errno = 0;
    failed = fflush(p->fp) != 0 || ferror(p->fp);
    if (!failed && p->part_rel[0] != '\0' && p->mtime_ns != 0 &&
        su_set_mtime_fp(p->fp, p->mtime_ns) != 0) {
        int err = errno;
        su_log(base, AFD_LOG_WARNING, "cannot set the modification time of %s: %s", p->final_path,
               su_strerror(base, err));
    }
    if (fclose(p->fp) != 0) failed = 1;
    p->fp = NULL;
    if (failed) {
        int err = errno != 0 ? errno : EIO;
        return su_fail(base, AFD_E_IO,
                       "cannot write %s: %s; check the free space of the restore target",
                       p->part_path, su_strerror(base, err));
    }
    return AFD_OK;
}

int32_t su_part_commit(su_base *base, su_part *p, int64_t mtime_ns) {
    int32_t rc;
    if (p->fp != NULL) p->mtime_ns = mtime_ns; /* confined: set through the file as it closes */
    rc = su_part_close(base, p);
    if (rc != AFD_OK) return rc;
    if (p->part_path[0] == '\0') return su_fail(base, AFD_E_INVALID, "no restored file is open");
    if (p->part_rel[0] != '\0') {
        rc = base->host->restore_rename(base->host_ctx, p->part_rel, p->final_rel);
        if (rc != AFD_OK) {
            return su_fail(base, rc, "cannot rename %s to %s: the job log says why", p->part_path,
                           p->final_path);
        }
        p->part_path[0] = p->part_rel[0] = '\0';
        return AFD_OK;
    }
    if (su_replace(p->part_path, p->final_path) != 0) {
        int err = errno;
        return su_fail(base, AFD_E_IO,
                       "cannot rename %s to %s: %s; check that the target file is not in use",
                       p->part_path, p->final_path, su_strerror(base, err));
    }
    p->part_path[0] = '\0'; /* renamed: nothing left to abort */
    if (mtime_ns != 0 && su_set_mtime(p->final_path, mtime_ns) != 0) {
        int err = errno;
        su_log(base, AFD_LOG_WARNING, "cannot set the modification time of %s: %s", p->final_path,
               su_strerror(base, err));
    }
    return AFD_OK;
}

void su_part_abort(su_part *p) {
    if (p->fp != NULL) fclose(p->fp);
    p->fp = NULL;
    if (p->part_rel[0] != '\0' && p->part_path[0] != '\0') {
        p->base->host->restore_remove(p->base->host_ctx, p->part_rel);
    } else if (p->part_path[0] != '\0') {
        su_remove(p->part_path);
    }
    p->part_path[0] = p->part_rel[0] = '\0';
}

/* ---- su_file_out ---- */

void su_file_out_set(su_file_out *o, uint32_t kind, const su_stat *st, int with_stream) {
    memset(&o->stream, 0, sizeof o->stream);
    o->stream.struct_size = sizeof o->stream;
    o->stream.type = AFD_STREAM_DATA;
    o->stream.name = "data";
    o->stream.size_hint = st->size;
    memset(&o->file, 0, sizeof o->file);
    o->file.struct_size = sizeof o->file;
    o->file.kind = kind;
    o->file.path = o->path;
    o->file.mode = st->mode;
    o->file.mtime_ns = st->mtime_ns;
    o->file.size = st->size;
    o->file.flags = with_stream ? 0u : AFD_FILE_SEEN;
    o->file.stream_count = with_stream ? 1u : 0u;
    o->file.streams = with_stream ? &o->stream : NULL;
    o->active = 1;
    o->stream_active = 0;
}

int32_t su_file_out_start_stream(su_base *base, su_file_out *o, uint32_t index) {
    int32_t rc;
    if (!o->active || o->stream_active) {
        return su_fail(base, AFD_E_INVALID, "backup_start_stream out of order");
    }
    if (index >= o->file.stream_count) {
        return su_fail(base, AFD_E_INVALID, "%s has no stream %lu", o->path, (unsigned long)index);
    }
    rc = su_reader_open(base, &o->reader, o->fs_path);
    if (rc != AFD_OK) return rc;
    o->read_calls = 0;
    o->stream_active = 1;
    return AFD_OK;
}

int64_t su_file_out_read(su_base *base, su_file_out *o, uint8_t *buf, uint64_t cap,
                         const char *what) {
    int32_t rc;
    if (!o->stream_active) {
        return su_fail(base, AFD_E_INVALID, "backup_read without a started stream");
    }
    if (buf == NULL && cap > 0) return su_fail(base, AFD_E_INVALID, "backup_read: no buffer");
    rc = su_cancel_point(base, &o->read_calls, what);
    if (rc != AFD_OK) return rc;
    return su_reader_read(base, &o->reader, buf, cap);
}

int32_t su_file_out_end_stream(su_base *base, su_file_out *o) {
    if (!o->stream_active) {
        return su_fail(base, AFD_E_INVALID, "backup_end_stream without a started stream");
    }
    su_reader_close(&o->reader);
    o->stream_active = 0;
    return AFD_OK;
}

int32_t su_file_out_end_file(su_base *base, su_file_out *o) {
    if (!o->active) return su_fail(base, AFD_E_INVALID, "backup_end_file without a file");
    su_file_out_close(o);
    return AFD_OK;
}

void su_file_out_close(su_file_out *o) {
    su_reader_close(&o->reader);
    o->stream_active = 0;
    o->active = 0;
}

/* ---- su_file_in ---- */

int32_t su_file_in_start(su_base *base, su_file_in *in, const afd_file *file,
                         const char *final_path) {
    int32_t rc;
    if (in->active) {
        return su_fail(base, AFD_E_INVALID, "restore_start_file before restore_end_file");
    }
    in->mtime_ns = file->mtime_ns;
    in->write_calls = 0;
    if ((file->flags & AFD_FILE_SEEN) != 0 || file->stream_count == 0) {
        in->skip = 1; /* nothing was saved for it: acknowledge it, write nothing */
        in->active = 1;
        return AFD_OK;
    }
    rc = su_part_open(base, &in->part, final_path);
    if (rc != AFD_OK) return rc;
    in->skip = 0;
    in->active = 1;
    return AFD_OK;
}

int32_t su_file_in_write(su_base *base, su_file_in *in, uint32_t stream_index, const uint8_t *buf,
                         uint64_t len, const char *what) {
    int32_t rc;
    if (!in->active) {
        return su_fail(base, AFD_E_INVALID, "restore_write without restore_start_file");
    }
    if (stream_index != 0) {
        return su_fail(base, AFD_E_INVALID,
                       "restore_write to stream %lu: this object has a single stream (0)",
                       (unsigned long)stream_index);
    }
    if (in->skip) {
        return su_fail(base, AFD_E_INVALID, "restore_write to a file that has no streams");
    }
    if (buf == NULL && len > 0) return su_fail(base, AFD_E_INVALID, "restore_write: no buffer");
    rc = su_cancel_point(base, &in->write_calls, what);
    if (rc != AFD_OK) return rc;
    return su_part_write(base, &in->part, buf, len);
}

int32_t su_file_in_end(su_base *base, su_file_in *in, int32_t status, int *committed) {
    int32_t rc;
    *committed = 0;
    if (!in->active) {
        if (status != AFD_STATUS_OK) return AFD_OK; /* start_file failed: nothing to discard */
        return su_fail(base, AFD_E_INVALID, "restore_end_file without restore_start_file");
    }
    in->active = 0;
    if (in->skip) return AFD_OK;
    if (status != AFD_STATUS_OK) {
        su_part_abort(&in->part);
        return AFD_OK;
    }
    rc = su_part_commit(base, &in->part, in->mtime_ns);
    if (rc != AFD_OK) {
        su_part_abort(&in->part);
        return rc;
    }
    *committed = 1;
    return AFD_OK;
}

void su_file_in_abort(su_file_in *in) {
    su_part_abort(&in->part);
    in->active = 0;
}

int32_t su_file_in_finish(su_base *base, su_file_in *in, int restore_ready) {
    if (!restore_ready) {
        return su_fail(base, AFD_E_INVALID, "restore_finish before restore_prepare");
    }
    if (in->active) {
        su_file_in_abort(in);
        return su_fail(base, AFD_E_INVALID, "restore_finish while a file is still open");
    }
    return AFD_OK;
}
