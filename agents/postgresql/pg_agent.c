/*
 * pg_agent.c: the PostgreSQL agent's entry points (see pg_agent.h for what it does).
 *
 * It speaks generations 2 and 3 of agentfd_agent.h and is built against the latest one: backups
 * need generation 2 (backup_finish: the connection is kept until the host has committed or given
 * up the job), restores need generation 3's confined writes (restore_open and its kin), since a
 * data directory is written file by file below a target others may write to. A generation 2 host
 * (one that cannot confine writes) can back up, and restores with --raw.
 */
#define _POSIX_C_SOURCE 200809L

#include "pg_agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const afd_kv pg_info[] = {
    {"vendor", "agentfd"},
    {"version", PG_AGENT_VERSION},
    {"description", "PostgreSQL clusters through the replication protocol (BASE_BACKUP with its "
                    "WAL and manifest, one tar per tablespace), restored into a data directory"},
    {"license", "MIT"},
};

/* ------------------------------------------------------------------------------------------- */
/* helpers shared by the agent's files                                                          */
/* ------------------------------------------------------------------------------------------- */

int32_t pg_fail(afd_session *s, int32_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    return code;
}

void pg_log(afd_session *s, int32_t level, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    if (s->host == NULL || s->host->log == NULL) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->host->log(s->host_ctx, level, line);
}

char *pg_option(afd_session *s, const char *key) {
    char small[256];
    int64_t n;
    char *value;
    if (s->host == NULL || s->host->get_option == NULL) return NULL;
    n = s->host->get_option(s->host_ctx, key, small, sizeof small);
    if (n < 0) return NULL;
    value = malloc((size_t)n + 1);
    if (value == NULL) return NULL;
    if ((uint64_t)n < sizeof small) {
        memcpy(value, small, (size_t)n + 1);
        return value;
    }
    if (s->host->get_option(s->host_ctx, key, value, (uint64_t)n + 1) != n) {
        free(value); /* changed between the two calls: treat as unset rather than guess */
        return NULL;
    }
    return value;
}

int pg_cancelled(afd_session *s) {
    return s->host != NULL && s->host->is_cancelled != NULL && s->host->is_cancelled(s->host_ctx) == 1;
}

const char *pg_strerror(afd_session *s, int err) {
    if (strerror_r(err, s->errtext, sizeof s->errtext) != 0) {
        snprintf(s->errtext, sizeof s->errtext, "error %d", err);
    }
    return s->errtext;
}

int pg_valid_name(const char *name) {
    size_t i, n = strlen(name);
    if (n == 0 || n >= PG_NAME_CAP || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
    for (i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------- */
/* session                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL pg_open(const afd_open_params *params, afd_session **out) {
    afd_session *s;
    if (out == NULL) return AFD_E_INVALID;
    *out = NULL;
    if (params == NULL || !AFD_HAS_FIELD(params, afd_open_params, host_ctx) || params->host == NULL) {
        return AFD_E_INVALID;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) return AFD_E_NOMEM;
    s->host = params->host;
    s->host_ctx = params->host_ctx;
    s->abi = params->abi_version;
    s->job_id = AFD_HAS_FIELD(params, afd_open_params, job_id) ? params->job_id : 0;
    s->untar.fd = -1;
    s->manifest_fd = -1;
    *out = s;
    return AFD_OK;
}

static void AFD_CALL pg_close(afd_session *s) {
    if (s == NULL) return;
    pg_backup_release(s);
    pg_restore_release(s);
    free(s);
}

static const char *AFD_CALL pg_last_error(afd_session *s) {
    return s != NULL && s->error[0] != '\0' ? s->error : NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* backup                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL pg_backup_prepare(afd_session *s, afd_backup_params *params) {
    if (s == NULL) return AFD_E_INVALID;
    if (s->prepare_called) return pg_fail(s, AFD_E_INVALID, "backup_prepare was already called");
    s->prepare_called = 1;
    if (params == NULL || !AFD_HAS_FIELD(params, afd_backup_params, delivered_level)) {
        return pg_fail(s, AFD_E_INVALID, "backup_prepare: missing or short parameters");
    }
    if (params->level != AFD_LEVEL_FULL && params->level != AFD_LEVEL_INCREMENTAL &&
        params->level != AFD_LEVEL_DIFFERENTIAL) {
        return pg_fail(s, AFD_E_UNSUPPORTED, PG_AGENT_NAME " cannot make a backup of level %lu",
                       (unsigned long)params->level);
    }
    return pg_backup_begin(s, params);
}

static int32_t AFD_CALL pg_backup_next_file(afd_session *s, const afd_file **out) {
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    *out = NULL;
    if (!s->prepared) return pg_fail(s, AFD_E_INVALID, "backup_next_file before backup_prepare");
    if (s->file_active) {
        return pg_fail(s, AFD_E_INVALID, "backup_next_file before backup_end_file of %s", s->path);
    }
    {
        int32_t rc = pg_backup_first(s);
        if (rc != AFD_OK) return rc;
    }
    return s->incremental ? pg_wal_next(s, out) : pg_backup_next(s, out);
}

static int32_t AFD_CALL pg_backup_start_stream(afd_session *s, uint32_t index) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->file_active || s->stream_active) {
        return pg_fail(s, AFD_E_INVALID, "backup_start_stream out of order");
    }
    if (index != 0) {
        return pg_fail(s, AFD_E_INVALID, "%s has no stream %lu", s->path, (unsigned long)index);
    }
    s->stream_active = 1;
    return AFD_OK;
}

static int64_t AFD_CALL pg_backup_read_entry(afd_session *s, uint8_t *buf, uint64_t cap) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->stream_active) return pg_fail(s, AFD_E_INVALID, "backup_read without a started stream");
    if (buf == NULL || cap == 0) return pg_fail(s, AFD_E_INVALID, "backup_read: no buffer");
    return s->incremental ? pg_wal_read(s, buf, cap) : pg_backup_read(s, buf, cap);
}

static int32_t AFD_CALL pg_backup_end_stream(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->stream_active) {
        return pg_fail(s, AFD_E_INVALID, "backup_end_stream without a started stream");
    }
    s->stream_active = 0;
    return AFD_OK;
}

static int32_t AFD_CALL pg_backup_end_file(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->file_active) return pg_fail(s, AFD_E_INVALID, "backup_end_file without a file");
    s->file_active = s->stream_active = 0;
    return AFD_OK;
}

/* The host has committed the job or given it up. A backup that did not reach its end (a failed
 * or cancelled job) is ended on the server by closing the connection. */
static int32_t AFD_CALL pg_backup_finish(afd_session *s, int32_t status) {
    if (s == NULL) return AFD_E_INVALID;
    if (status == AFD_STATUS_OK) {
        pg_log(s, AFD_LOG_INFO,
               PG_AGENT_NAME ": cluster %s (system identifier %s, PostgreSQL %s) saved%s: %llu "
               "files, %llu bytes, WAL %s to %s on timeline %lu",
               s->cluster, s->system_id, s->server_version, s->incremental ? " (incremental)" : "",
               (unsigned long long)s->files, (unsigned long long)s->bytes, s->start_lsn,
               s->end_lsn, (unsigned long)s->timeline);
    } else if (s->copy == PG_COPY_RUNNING) {
        pg_log(s, AFD_LOG_INFO,
               PG_AGENT_NAME ": the job was not committed; ending the base backup on the server");
    }
    pg_backup_release(s);
    /* Only now may the slot let go of the WAL this job saved (with keep_wal=since_full, only
     * a full lets go: differentials need the WAL since the last full). */
    if (status == AFD_STATUS_OK && (!s->incremental || !s->keep_since_full)) pg_slot_advance(s);
    return AFD_OK;
}

/* How much the backup would save; nothing was started on the server (see pg_backup_begin). */
static int32_t AFD_CALL pg_estimate_entry(afd_session *s, afd_estimate *out) {
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    if (!s->prepared || s->started) return pg_fail(s, AFD_E_INVALID, "estimate out of order");
    return pg_estimate(s, out);
}

/* ------------------------------------------------------------------------------------------- */
/* restore                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL pg_restore_prepare(afd_session *s, const afd_restore_params *params) {
    if (s == NULL) return AFD_E_INVALID;
    if (s->restore_ready) return pg_fail(s, AFD_E_INVALID, "restore_prepare was already called");
    return pg_restore_begin(s, params);
}

static int32_t AFD_CALL pg_restore_start_file(afd_session *s, const afd_file *file) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->restore_ready) return pg_fail(s, AFD_E_INVALID, "restore_start_file before restore_prepare");
    if (s->rs_active) {
        return pg_fail(s, AFD_E_INVALID, "restore_start_file before restore_end_file of %s", s->rs_path);
    }
    if (file == NULL || !AFD_HAS_FIELD(file, afd_file, streams) || file->path == NULL) {
        return pg_fail(s, AFD_E_INVALID, "restore_start_file: missing or short afd_file");
    }
    return pg_restore_file(s, file);
}

static int32_t AFD_CALL pg_restore_write(afd_session *s, uint32_t stream_index, const uint8_t *buf,
                                         uint64_t len) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->rs_active) return pg_fail(s, AFD_E_INVALID, "restore_write without restore_start_file");
    if (stream_index != 0) {
        return pg_fail(s, AFD_E_INVALID, "restore_write to stream %lu: %s has one stream",
                       (unsigned long)stream_index, s->rs_path);
    }
    if (buf == NULL && len > 0) return pg_fail(s, AFD_E_INVALID, "restore_write: no buffer");
    return pg_restore_data(s, buf, len);
}

static int32_t AFD_CALL pg_restore_end_file(afd_session *s, int32_t status) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->rs_active) {
        if (status != AFD_STATUS_OK) return AFD_OK; /* start_file failed: nothing to discard */
        return pg_fail(s, AFD_E_INVALID, "restore_end_file without restore_start_file");
    }
    return pg_restore_file_end(s, status);
}

static int32_t AFD_CALL pg_restore_finish(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->restore_ready) return pg_fail(s, AFD_E_INVALID, "restore_finish before restore_prepare");
    if (s->rs_active) return pg_fail(s, AFD_E_INVALID, "restore_finish while %s is open", s->rs_path);
    return pg_restore_end(s);
}

/* ------------------------------------------------------------------------------------------- */
/* entry points                                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* No global state, and libpq is thread-safe: sessions may run on separate threads. */
#define PG_CAPS                                                                                    \
    (AFD_CAP_BACKUP_FULL | AFD_CAP_BACKUP_INCREMENTAL | AFD_CAP_BACKUP_DIFFERENTIAL |              \
     AFD_CAP_RESTORE | AFD_CAP_OWN_STATE |                                                         \
     AFD_CAP_RAW_RESTORABLE | AFD_CAP_THREAD_SAFE | AFD_CAP_CANCEL | AFD_CAP_ESTIMATE)

#define PG_TABLE(generation)                                                                       \
    {                                                                                              \
        sizeof(afd_agent_api), generation, PG_CAPS, pg_info,                                       \
            (uint32_t)(sizeof pg_info / sizeof pg_info[0]), 0, pg_open, pg_close, pg_last_error,   \
            pg_backup_prepare, pg_backup_next_file, pg_backup_start_stream, pg_backup_read_entry,  \
            pg_backup_end_stream, pg_backup_end_file, pg_restore_prepare, pg_restore_start_file,   \
            pg_restore_write, pg_restore_end_file, pg_restore_finish, pg_backup_finish,            \
            pg_estimate_entry,                                                                     \
    }

#if AFD_TARGET_ABI < 3
#error "the PostgreSQL agent is built against generation 3 (its restores write through restore_open)"
#endif
static const afd_agent_api pg_api_gen2 = PG_TABLE(AFD_ABI_GEN_2);
static const afd_agent_api pg_api_gen3 = PG_TABLE(AFD_ABI_GEN_3);

static const char AGENT_NAME[] = PG_AGENT_NAME;

AFD_EXPORT const char *AFD_CALL Name(void) {
    return AGENT_NAME;
}

AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply) {
    uint32_t chosen;
    if (reply == NULL || !AFD_HAS_FIELD(reply, afd_negotiate_reply, agent_max_abi)) {
        return AFD_E_INVALID;
    }
    reply->agent_min_abi = AFD_ABI_GEN_2;
    reply->agent_max_abi = AFD_ABI_GEN_3;
    if (request == NULL || !AFD_HAS_FIELD(request, afd_negotiate_request, host_max_abi) ||
        !AFD_HAS_FIELD(reply, afd_negotiate_reply, api)) {
        return AFD_E_INVALID;
    }
    chosen = request->host_max_abi < AFD_ABI_GEN_3 ? request->host_max_abi : AFD_ABI_GEN_3;
    if (chosen < AFD_ABI_GEN_2 || chosen < request->host_min_abi) {
        reply->chosen_abi = 0;
        reply->api = NULL;
        return AFD_E_VERSION;
    }
    reply->chosen_abi = chosen;
    reply->api = chosen == AFD_ABI_GEN_3 ? &pg_api_gen3 : &pg_api_gen2;
    return AFD_OK;
}
