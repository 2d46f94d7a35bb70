/*
 * pg_restore.c: a backup unpacked into a data directory, ready for `pg_ctl start`.
 *
 * The restore target is the data directory. base.tar is unpacked into it, each <oid>.tar into
 * agentfd_tablespaces/<oid>/ below it (tablespace_map is rewritten to point there: PostgreSQL
 * makes the pg_tblspc links from it when it starts), backup_manifest is written next to them
 * (pg_verifybackup reads it there). Every file is written through the host's restore_open(), so
 * nothing is written outside the target, whatever links others plant in it (generation 3).
 * restore_finish() then writes recovery.signal and the recovery settings into
 * postgresql.auto.conf: restore_command, and the target the restore options name
 * (recovery_target_time, recovery_target_lsn, recovery_target_name or recovery_target_xid;
 * recovery_target_action defaults to promote, so the server comes up when it gets there).
 *
 * A target that already holds a data directory (PG_VERSION), or a running server's
 * (postmaster.pid), is refused before anything is written: files of another cluster left beside
 * the restored ones would corrupt it. An archive whose data the host finds bad
 * (restore_end_file(AFD_STATUS_FAILED)) has the files it wrote removed.
 */
#define _POSIX_C_SOURCE 200809L

#include "pg_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG_TABLESPACE_DIR "agentfd_tablespaces"
#define PG_CAPTURE_MAX (1024 * 1024) /* tablespace_map and postgresql.auto.conf are small */

/* The recovery target options, at most one of them may be given. */
static const char *const pg_targets[] = {"recovery_target_time", "recovery_target_lsn",
                                         "recovery_target_name", "recovery_target_xid"};

/* ------------------------------------------------------------------------------------------- */
/* writing through the host                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int pg_can_confine(afd_session *s) {
    return AFD_HAS_FIELD(s->host, afd_host_api, restore_remove) && s->host->restore_open != NULL &&
           s->host->restore_remove != NULL;
}

static int32_t pg_write_all(afd_session *s, int fd, const uint8_t *buf, size_t len, const char *rel) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            return pg_fail(s, AFD_E_IO, "cannot write %s in the restore target: %s", rel,
                           n < 0 ? pg_strerror(s, errno) : "no progress");
        }
        buf += n;
        len -= (size_t)n;
    }
    return AFD_OK;
}

/* Open `rel` below the target for writing: AFD_OK with *fd set. */
static int32_t pg_open_file(afd_session *s, const char *rel, uint32_t flags, int *fd) {
    int64_t h = s->host->restore_open(s->host_ctx, rel, flags);
    if (h < 0) {
        *fd = -1;
        return pg_fail(s, h == AFD_E_REFUSED ? AFD_E_REFUSED : AFD_E_IO,
                       "cannot write %s in the restore target (the job log says why)", rel);
    }
    *fd = (int)h;
    return AFD_OK;
}

/* A whole small file below the target. */
static int32_t pg_put_file(afd_session *s, const char *rel, const void *data, size_t len) {
    int fd;
    int32_t rc = pg_open_file(s, rel, 0600 | AFD_RESTORE_TRUNCATE, &fd);
    if (rc != AFD_OK) return rc;
    rc = pg_write_all(s, fd, data, len, rel);
    if (close(fd) != 0 && rc == AFD_OK) {
        rc = pg_fail(s, AFD_E_IO, "cannot write %s in the restore target: %s", rel, pg_strerror(s, errno));
    }
    return rc;
}

/* Remember a file written by the current archive (removed again if the archive fails). */
static int32_t pg_remember(afd_session *s, const char *rel) {
    char *copy;
    if (s->written_count == s->written_cap) {
        size_t cap = s->written_cap ? s->written_cap * 2 : 256;
        char **grown = realloc(s->written, cap * sizeof *grown);
        if (grown == NULL) return pg_fail(s, AFD_E_NOMEM, "out of memory");
        s->written = grown;
        s->written_cap = cap;
    }
    copy = malloc(strlen(rel) + 1);
    if (copy == NULL) return pg_fail(s, AFD_E_NOMEM, "out of memory");
    memcpy(copy, rel, strlen(rel) + 1);
    s->written[s->written_count++] = copy;
    return AFD_OK;
}

static void pg_forget_written(afd_session *s, int remove) {
    size_t i;
    for (i = 0; i < s->written_count; i++) {
        if (remove) (void)s->host->restore_remove(s->host_ctx, s->written[i]);
        free(s->written[i]);
    }
    s->written_count = 0;
}

/* A directory below the target: the host makes missing parents of a file it opens, so a
 * placeholder file is opened in it and removed (the header has no "make a directory" call). */
static int32_t pg_make_dir(afd_session *s, const char *rel) {
    char placeholder[PG_PATH_CAP];
    int fd;
    int32_t rc;
    if ((size_t)snprintf(placeholder, sizeof placeholder, "%s/.agentfd-mkdir", rel) >= sizeof placeholder) {
        return pg_fail(s, AFD_E_INVALID, "a directory name in the archive is too long: %s", rel);
    }
    rc = pg_open_file(s, placeholder, 0600 | AFD_RESTORE_TRUNCATE, &fd);
    if (rc != AFD_OK) return rc;
    close(fd);
    if (s->host->restore_remove(s->host_ctx, placeholder) < 0) {
        return pg_fail(s, AFD_E_IO, "cannot remove %s in the restore target", placeholder);
    }
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* the tar reader                                                                               */
/* ------------------------------------------------------------------------------------------- */

/* A tar number field: octal text, or base-256 when the first byte's high bit is set. */
static int pg_tar_number(const uint8_t *field, size_t len, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    if (field[0] & 0x80) {
        v = field[0] & 0x7f;
        for (i = 1; i < len; i++) {
            if (v >> 56) return -1;
            v = (v << 8) | field[i];
        }
        *out = v;
        return 0;
    }
    while (i < len && field[i] == ' ') i++;
    for (; i < len && field[i] >= '0' && field[i] <= '7'; i++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(field[i] - '0');
    }
    if (i < len && field[i] != ' ' && field[i] != '\0') return -1;
    *out = v;
    return 0;
}

/* A member name safe below the target: relative, no empty, "." or ".." component. A trailing
 * '/' (a directory) is dropped. */
static int pg_safe_member(char *name) {
    size_t n = strlen(name);
    char *p = name;
    while (n > 0 && name[n - 1] == '/') name[--n] = '\0';
    while (p[0] == '.' && p[1] == '/') p += 2; /* "./x" as GNU tar writes it */
    if (p != name) memmove(name, p, strlen(p) + 1);
    if (name[0] == '\0' || name[0] == '/') return 0;
    for (p = name; *p != '\0';) {
        char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += len;
        if (*p == '/') p++;
    }
    return 1;
}

/* The header in u->header is complete: start its member. */
static int32_t pg_tar_member(afd_session *s, pg_untar *u) {
    const uint8_t *h = u->header;
    char name[256 + 2], full[PG_PATH_CAP];
    uint64_t size = 0, mode = 0, mtime = 0, sum = 0, stored = 0;
    size_t i;
    char type = (char)h[156];
    int32_t rc;

    for (i = 0; i < 512 && h[i] == 0; i++) {}
    if (i == 512) { /* a zero block: two of them end the archive */
        if (++u->zero_blocks == 2) u->ended = 1;
        return AFD_OK;
    }
    u->zero_blocks = 0;
    for (i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
    if (pg_tar_number(h + 148, 8, &stored) != 0 || stored != sum) {
        return pg_fail(s, AFD_E_IO, "%s: a tar header has a bad checksum: the archive is damaged",
                       s->rs_path);
    }
    if (pg_tar_number(h + 124, 12, &size) != 0 || pg_tar_number(h + 100, 8, &mode) != 0 ||
        pg_tar_number(h + 136, 12, &mtime) != 0) {
        return pg_fail(s, AFD_E_IO, "%s: a tar header has an unreadable number", s->rs_path);
    }
    name[0] = '\0';
    if (memcmp(h + 257, "ustar", 5) == 0 && h[345] != 0) { /* ustar's prefix field */
        snprintf(name, sizeof name, "%.155s/", (const char *)h + 345);
    }
    snprintf(name + strlen(name), sizeof name - strlen(name), "%.100s", (const char *)h);
    u->body_left = (type == '0' || type == '\0' || type == '7') ? size : 0;
    u->padding_left = (512 - size % 512) % 512;
    if (u->body_left == 0) u->padding_left = 0;
    if (!pg_safe_member(name)) {
        return pg_fail(s, AFD_E_IO, "%s: refusing the tar member \"%.200s\": not a relative path "
                                    "below the data directory", s->rs_path, name);
    }
    if ((size_t)snprintf(full, sizeof full, "%s%s", u->prefix, name) >= sizeof full) {
        return pg_fail(s, AFD_E_IO, "%s: the tar member %.200s has too long a name", s->rs_path, name);
    }
    switch (type) {
    case '5':
        return pg_make_dir(s, full);
    case '0':
    case '\0':
    case '7':
        break;
    case '2':
    case '1':
        pg_log(s, AFD_LOG_WARNING, PG_AGENT_NAME ": %s: the link %s is not restored (restores write "
                                   "no links); create it by hand if it is needed", s->rs_path, full);
        return AFD_OK;
    default:
        return pg_fail(s, AFD_E_IO, "%s: the tar member %.200s is of type '%c', which the agent "
                                    "does not restore", s->rs_path, name, type);
    }
    /* base.tar's tablespace_map and postgresql.auto.conf are kept to be rewritten at the end. */
    u->capturing = u->prefix[0] == '\0' &&
                   (strcmp(name, "tablespace_map") == 0 || strcmp(name, "postgresql.auto.conf") == 0);
    memcpy(u->member, full, strlen(full) + 1);
    if (u->capturing) {
        if (size > PG_CAPTURE_MAX) {
            return pg_fail(s, AFD_E_IO, "%s: %s is larger than %d bytes", s->rs_path, name, PG_CAPTURE_MAX);
        }
        u->capture_len = 0;
        free(u->capture);
        u->capture = malloc((size_t)size + 1);
        if (u->capture == NULL) return pg_fail(s, AFD_E_NOMEM, "out of memory");
        u->capture_cap = (size_t)size + 1;
        return AFD_OK; /* an empty one is kept by the caller at once */
    }
    rc = pg_open_file(s, full, (uint32_t)((mode & 0777) ? (mode & 0777) : 0600) | AFD_RESTORE_TRUNCATE,
                      &u->fd);
    if (rc == AFD_OK) rc = pg_remember(s, full);
    if (rc == AFD_OK && mtime > 0) {
        struct timespec times[2];
        times[0].tv_sec = times[1].tv_sec = (time_t)mtime;
        times[0].tv_nsec = times[1].tv_nsec = 0;
        (void)futimens(u->fd, times); /* the data is what counts; a time not set is harmless */
    }
    if (rc == AFD_OK && u->body_left == 0) {
        close(u->fd);
        u->fd = -1;
    }
    return rc;
}

/* The captured member is complete: keep it in the session. */
static int32_t pg_tar_captured(afd_session *s, pg_untar *u) {
    uint8_t **slot = strcmp(u->member, "tablespace_map") == 0 ? &s->tablespace_map : &s->auto_conf;
    size_t *len = slot == &s->tablespace_map ? &s->tablespace_map_len : &s->auto_conf_len;
    free(*slot);
    *slot = u->capture;
    *len = u->capture_len;
    if (slot == &s->auto_conf) s->have_auto_conf = 1;
    u->capture = NULL;
    u->capturing = 0;
    return AFD_OK;
}

/* Feed bytes of the archive to the reader. */
static int32_t pg_untar_feed(afd_session *s, pg_untar *u, const uint8_t *buf, uint64_t len) {
    int32_t rc;
    while (len > 0) {
        if (u->body_left > 0) {
            size_t n = (size_t)(len < u->body_left ? len : u->body_left);
            if (u->capturing) {
                memcpy(u->capture + u->capture_len, buf, n);
                u->capture_len += n;
            } else {
                rc = pg_write_all(s, u->fd, buf, n, u->member);
                if (rc != AFD_OK) return rc;
            }
            buf += n;
            len -= n;
            u->body_left -= n;
            if (u->body_left == 0) {
                if (u->capturing) {
                    rc = pg_tar_captured(s, u);
                    if (rc != AFD_OK) return rc;
                } else {
                    if (close(u->fd) != 0) {
                        u->fd = -1;
                        return pg_fail(s, AFD_E_IO, "cannot write %s in the restore target: %s",
                                       u->member, pg_strerror(s, errno));
                    }
                    u->fd = -1;
                }
            }
            continue;
        }
        if (u->padding_left > 0) {
            size_t n = (size_t)(len < u->padding_left ? len : u->padding_left);
            buf += n;
            len -= n;
            u->padding_left -= n;
            continue;
        }
        if (u->ended) { /* the zero blocks after the end, up to the tar record size */
            uint64_t i;
            for (i = 0; i < len; i++) {
                if (buf[i] != 0) {
                    return pg_fail(s, AFD_E_IO, "%s: data after the end of the tar archive", s->rs_path);
                }
            }
            return AFD_OK;
        }
        {
            size_t n = 512 - u->header_len;
            if (n > len) n = (size_t)len;
            memcpy(u->header + u->header_len, buf, n);
            u->header_len += n;
            buf += n;
            len -= n;
            if (u->header_len == 512) {
                u->header_len = 0;
                rc = pg_tar_member(s, u);
                if (rc != AFD_OK) return rc;
                if (u->capturing && u->body_left == 0) {
                    rc = pg_tar_captured(s, u);
                    if (rc != AFD_OK) return rc;
                }
            }
        }
    }
    return AFD_OK;
}

static void pg_untar_reset(pg_untar *u) {
    if (u->fd >= 0) close(u->fd);
    free(u->capture);
    memset(u, 0, sizeof *u);
    u->fd = -1;
}

/* ------------------------------------------------------------------------------------------- */
/* the restore                                                                                  */
/* ------------------------------------------------------------------------------------------- */

/* 1 when `name` exists in the target (read only: nothing is written by path). */
static int pg_target_has(afd_session *s, const char *name) {
    char path[PG_PATH_CAP + 32];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", s->target, name);
    return lstat(path, &st) == 0;
}

/* The recovery options: valid, at most one target. */
static int32_t pg_check_recovery_options(afd_session *s) {
    size_t i, given = 0;
    const char *first = NULL;
    for (i = 0; i < sizeof pg_targets / sizeof pg_targets[0]; i++) {
        char *v = pg_option(s, pg_targets[i]);
        if (v == NULL) continue;
        given++;
        if (first == NULL) first = pg_targets[i];
        free(v);
        if (given > 1) {
            return pg_fail(s, AFD_E_INVALID,
                           "the restore options %s and %s are both given: give one recovery "
                           "target (PostgreSQL takes at most one)",
                           first, pg_targets[i]);
        }
    }
    {
        char *action = pg_option(s, "recovery_target_action");
        int ok = action == NULL || strcmp(action, "promote") == 0 || strcmp(action, "pause") == 0 ||
                 strcmp(action, "shutdown") == 0;
        if (!ok) {
            pg_fail(s, AFD_E_INVALID,
                    "the restore option recovery_target_action=\"%.40s\" is invalid: give "
                    "promote, pause or shutdown",
                    action);
        }
        free(action);
        if (!ok) return AFD_E_INVALID;
    }
    return AFD_OK;
}

int32_t pg_restore_begin(afd_session *s, const afd_restore_params *params) {
    const char *target = params != NULL && AFD_HAS_FIELD(params, afd_restore_params, target)
                             ? params->target
                             : NULL;
    int32_t rc;
    if (!pg_can_confine(s)) {
        return pg_fail(s, AFD_E_UNSUPPORTED,
                       "this agentfd cannot confine restored files to the target (ABI generation "
                       "3): restore with --raw and unpack base.tar with tar -x");
    }
    if (target == NULL || target[0] == '\0') {
        return pg_fail(s, AFD_E_INVALID,
                       "the PostgreSQL agent restores into a new data directory: restore with "
                       "--to DIR (an empty directory)");
    }
    if (target[0] != '/') {
        return pg_fail(s, AFD_E_INVALID, "the restore target %s is not an absolute path", target);
    }
    if (strlen(target) >= sizeof s->target - 64) {
        return pg_fail(s, AFD_E_INVALID, "the restore target is too long");
    }
    memcpy(s->target, target, strlen(target) + 1);
    if (pg_target_has(s, "postmaster.pid")) {
        return pg_fail(s, AFD_E_REFUSED,
                       "%s holds a running PostgreSQL server's data directory (postmaster.pid): "
                       "refusing to write over it; restore into an empty directory, or stop the "
                       "server and move its directory away first",
                       s->target);
    }
    if (pg_target_has(s, "PG_VERSION")) {
        return pg_fail(s, AFD_E_REFUSED,
                       "%s already holds a PostgreSQL data directory (PG_VERSION): restore into "
                       "an empty directory (files of another cluster left beside the restored "
                       "ones would corrupt it)",
                       s->target);
    }
    rc = pg_check_recovery_options(s);
    if (rc != AFD_OK) return rc;
    s->restore_ready = 1;
    return AFD_OK;
}

/* A WAL segment file name: 24 upper-case hexadecimal digits. */
static int pg_segment_file(const char *name) {
    size_t i;
    if (strlen(name) != 24) return 0;
    for (i = 0; i < 24; i++) {
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'A' && name[i] <= 'F'))) return 0;
    }
    return 1;
}

/* The name of a file of the agent's namespace: /@postgresql/<cluster>/<name>, or
 * /@postgresql/<cluster>/wal/<segment> (*wal set). */
static int pg_split_path(const char *path, char *cluster, char *name, int *wal) {
    const char *rest, *slash;
    *wal = 0;
    if (strncmp(path, PG_PREFIX, strlen(PG_PREFIX)) != 0) return 0;
    rest = path + strlen(PG_PREFIX);
    slash = strchr(rest, '/');
    if (slash == NULL || (size_t)(slash - rest) >= PG_NAME_CAP) return 0;
    memcpy(cluster, rest, (size_t)(slash - rest));
    cluster[slash - rest] = '\0';
    rest = slash + 1;
    if (strncmp(rest, "wal/", 4) == 0) {
        rest += 4;
        *wal = 1;
    }
    if (strlen(rest) >= PG_NAME_CAP) return 0;
    memcpy(name, rest, strlen(rest) + 1);
    return pg_valid_name(cluster) && (*wal ? pg_segment_file(name) : pg_valid_name(name));
}

/* "<oid>.tar": *oid_len is the length of the oid. */
static int pg_tablespace_archive(const char *name, size_t *oid_len) {
    size_t n = strlen(name), i;
    if (n <= 4 || strcmp(name + n - 4, ".tar") != 0) return 0;
    for (i = 0; i < n - 4; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
    }
    *oid_len = n - 4;
    return 1;
}

int32_t pg_restore_file(afd_session *s, const afd_file *file) {
    char cluster[PG_NAME_CAP], name[PG_NAME_CAP];
    char rel[PG_PATH_CAP];
    size_t oid_len = 0;
    int wal = 0;
    int32_t rc;
    if (!pg_split_path(file->path, cluster, name, &wal)) {
        return pg_fail(s, AFD_E_INVALID,
                       "refusing to restore \"%.300s\": not a file of the PostgreSQL agent "
                       "(/@postgresql/<cluster>/base.tar, <oid>.tar, backup_manifest or "
                       "wal/<segment>)",
                       file->path);
    }
    if (s->cluster[0] == '\0') {
        memcpy(s->cluster, cluster, strlen(cluster) + 1);
    } else if (strcmp(s->cluster, cluster) != 0) {
        return pg_fail(s, AFD_E_INVALID,
                       "refusing to restore %s into the data directory of cluster %s: restore "
                       "each cluster into its own directory (--include '/@postgresql/%s/**')",
                       file->path, s->cluster, cluster);
    }
    snprintf(s->rs_path, sizeof s->rs_path, "%s", file->path);
    pg_untar_reset(&s->untar);
    s->rs_is_manifest = 0;
    s->rs_failed = 0;
    if (wal || strcmp(name, "backup_manifest") == 0) {
        /* Written as it is: the manifest next to the data, WAL where restore_command reads it. */
        snprintf(rel, sizeof rel, "%s%s", wal ? "agentfd_wal/" : "", name);
        rc = pg_open_file(s, rel, 0600 | AFD_RESTORE_TRUNCATE, &s->manifest_fd);
        if (rc == AFD_OK) rc = pg_remember(s, rel);
        if (rc != AFD_OK) return rc;
        s->rs_is_manifest = 1;
    } else if (strcmp(name, "base.tar") == 0) {
        s->untar.prefix[0] = '\0';
    } else if (pg_tablespace_archive(name, &oid_len)) {
        if (s->tablespace_count == s->tablespace_cap) {
            size_t cap = s->tablespace_cap ? s->tablespace_cap * 2 : 8;
            char(*grown)[PG_NAME_CAP] = realloc(s->tablespaces, cap * sizeof *grown);
            if (grown == NULL) return pg_fail(s, AFD_E_NOMEM, "out of memory");
            s->tablespaces = grown;
            s->tablespace_cap = cap;
        }
        memcpy(s->tablespaces[s->tablespace_count], name, oid_len);
        s->tablespaces[s->tablespace_count++][oid_len] = '\0';
        snprintf(s->untar.prefix, sizeof s->untar.prefix, PG_TABLESPACE_DIR "/%.*s/", (int)oid_len, name);
    } else {
        return pg_fail(s, AFD_E_INVALID,
                       "refusing to restore \"%.300s\": the PostgreSQL agent saves base.tar, "
                       "<oid>.tar and backup_manifest only",
                       file->path);
    }
    s->rs_active = 1;
    if (strcmp(name, "base.tar") == 0) s->restored_base = 1;
    return AFD_OK;
}

int32_t pg_restore_data(afd_session *s, const uint8_t *buf, uint64_t len) {
    int32_t rc;
    if (s->rs_failed) return AFD_E_IO;
    if (s->rs_is_manifest) {
        rc = pg_write_all(s, s->manifest_fd, buf, (size_t)len, s->rs_path);
    } else {
        rc = pg_untar_feed(s, &s->untar, buf, len);
    }
    if (rc != AFD_OK) s->rs_failed = 1;
    return rc;
}

int32_t pg_restore_file_end(afd_session *s, int32_t status) {
    int32_t rc = AFD_OK;
    pg_untar *u = &s->untar;
    s->rs_active = 0;
    if (s->rs_is_manifest) {
        if (close(s->manifest_fd) != 0 && status == AFD_STATUS_OK) {
            rc = pg_fail(s, AFD_E_IO, "cannot write %s: %s", s->rs_path, pg_strerror(s, errno));
        }
        s->manifest_fd = -1;
    } else if (status == AFD_STATUS_OK && !s->rs_failed &&
               (u->header_len != 0 || u->body_left != 0 || u->padding_left != 0)) {
        rc = pg_fail(s, AFD_E_IO, "%s ends in the middle of a tar member: the archive is cut short",
                     s->rs_path);
    }
    if (status != AFD_STATUS_OK || s->rs_failed || rc != AFD_OK) {
        if (u->fd >= 0) {
            close(u->fd);
            u->fd = -1;
        }
        pg_forget_written(s, 1);
        if (strcmp(s->rs_path + strlen(s->rs_path) - strlen("/base.tar"), "/base.tar") == 0) {
            s->restored_base = 0;
        }
        pg_log(s, AFD_LOG_WARNING, PG_AGENT_NAME ": %s was not restored whole: the files it wrote "
                                   "were removed", s->rs_path);
        pg_untar_reset(u);
        return status != AFD_STATUS_OK ? AFD_OK : (rc != AFD_OK ? rc : AFD_E_IO);
    }
    pg_forget_written(s, 0);
    pg_untar_reset(u);
    return AFD_OK;
}

/* `value` as a quoted postgresql.conf string ('...' with ' and \ doubled or escaped). */
static int pg_conf_quote(char *out, size_t cap, const char *value) {
    size_t n = 0;
    const char *p;
    if (cap < 3) return -1;
    out[n++] = '\'';
    for (p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) return -1; /* a newline would end the setting */
        if (n + 4 >= cap) return -1;
        if (*p == '\'' || *p == '\\') out[n++] = *p == '\'' ? '\'' : '\\';
        out[n++] = *p;
    }
    out[n++] = '\'';
    out[n] = '\0';
    return 0;
}

/* The settings restore_finish appends to postgresql.auto.conf (malloc'd text). */
static int32_t pg_recovery_settings(afd_session *s, char **out) {
    char command[PG_PATH_CAP * 2 + 64], quoted[PG_PATH_CAP * 2 + 128], value_q[1024];
    size_t cap = sizeof quoted * 2 + 4096, n = 0, i;
    char *text = malloc(cap);
    char *action;
    *out = NULL;
    if (text == NULL) return pg_fail(s, AFD_E_NOMEM, "out of memory");
    /* WAL the backup holds is in pg_wal already; later WAL is read from agentfd_wal/. */
    snprintf(command, sizeof command, "cp \"%s/agentfd_wal/%%f\" \"%%p\"", s->target);
    if (strchr(s->target, '"') != NULL || pg_conf_quote(quoted, sizeof quoted, command) != 0) {
        free(text);
        return pg_fail(s, AFD_E_INVALID, "the restore target's path cannot be written into "
                                         "restore_command (a quote or a control character)");
    }
    n += (size_t)snprintf(text + n, cap - n,
                          "\n# Added by agentfd's PostgreSQL agent: recover from the restored "
                          "backup (remove these lines once the server is up)\nrestore_command = %s\n",
                          quoted);
    for (i = 0; i < sizeof pg_targets / sizeof pg_targets[0]; i++) {
        char *v = pg_option(s, pg_targets[i]);
        if (v == NULL) continue;
        if (pg_conf_quote(value_q, sizeof value_q, v) != 0) {
            free(v);
            free(text);
            return pg_fail(s, AFD_E_INVALID, "the restore option %s is too long or holds a control "
                                             "character", pg_targets[i]);
        }
        free(v);
        n += (size_t)snprintf(text + n, cap - n, "%s = %s\n", pg_targets[i], value_q);
    }
    action = pg_option(s, "recovery_target_action");
    n += (size_t)snprintf(text + n, cap - n, "recovery_target_action = '%s'\n",
                          action != NULL ? action : "promote");
    free(action);
    *out = text;
    return AFD_OK;
}

/* tablespace_map with each restored tablespace pointing below the target. */
static int32_t pg_rewrite_tablespace_map(afd_session *s) {
    size_t cap = s->tablespace_count * (PG_PATH_CAP + 32) + 1, n = 0, i;
    char *text;
    int32_t rc;
    if (s->tablespace_map == NULL) return AFD_OK;
    text = malloc(cap);
    if (text == NULL) return pg_fail(s, AFD_E_NOMEM, "out of memory");
    for (i = 0; i < s->tablespace_count; i++) {
        n += (size_t)snprintf(text + n, cap - n, "%s %s/" PG_TABLESPACE_DIR "/%s\n",
                              s->tablespaces[i], s->target, s->tablespaces[i]);
    }
    rc = pg_put_file(s, "tablespace_map", text, n);
    free(text);
    if (rc == AFD_OK && s->tablespace_count > 0) {
        pg_log(s, AFD_LOG_INFO, PG_AGENT_NAME ": %lu tablespaces restored below %s/" PG_TABLESPACE_DIR,
               (unsigned long)s->tablespace_count, s->target);
    }
    return rc;
}

int32_t pg_restore_end(afd_session *s) {
    char *settings = NULL;
    uint8_t *conf;
    size_t len;
    int32_t rc;
    if (!s->restored_base) {
        return pg_fail(s, AFD_E_INVALID,
                       "no base.tar was restored: a data directory needs the cluster's base.tar "
                       "(restore the whole job, or --include '/@postgresql/<cluster>/**')");
    }
    rc = pg_rewrite_tablespace_map(s);
    if (rc == AFD_OK) rc = pg_recovery_settings(s, &settings);
    if (rc != AFD_OK) return rc;
    len = s->auto_conf_len + strlen(settings);
    conf = malloc(len + 1);
    if (conf == NULL) {
        free(settings);
        return pg_fail(s, AFD_E_NOMEM, "out of memory");
    }
    if (s->auto_conf_len > 0) memcpy(conf, s->auto_conf, s->auto_conf_len);
    memcpy(conf + s->auto_conf_len, settings, strlen(settings));
    free(settings);
    rc = pg_put_file(s, "postgresql.auto.conf", conf, len);
    free(conf);
    if (rc == AFD_OK) rc = pg_put_file(s, "recovery.signal", "", 0);
    if (rc == AFD_OK) rc = pg_make_dir(s, "agentfd_wal");
    if (rc != AFD_OK) return rc;
    pg_log(s, AFD_LOG_INFO,
           PG_AGENT_NAME ": cluster %s restored into %s, with recovery.signal and the recovery "
           "settings in postgresql.auto.conf; before starting PostgreSQL on it: chown -R "
           "postgres:postgres %s && chmod 700 %s",
           s->cluster, s->target, s->target, s->target);
    return AFD_OK;
}

void pg_restore_release(afd_session *s) {
    if (s->manifest_fd >= 0) close(s->manifest_fd);
    s->manifest_fd = -1;
    pg_untar_reset(&s->untar);
    /* An archive cut off by close() (a failed restore) has its files removed. */
    pg_forget_written(s, s->rs_active && s->host != NULL && pg_can_confine(s));
    free(s->written);
    s->written = NULL;
    s->written_cap = 0;
    free(s->tablespace_map);
    free(s->auto_conf);
    s->tablespace_map = s->auto_conf = NULL;
    free(s->tablespaces);
    s->tablespaces = NULL;
}
