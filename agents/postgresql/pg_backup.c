/*
 * pg_backup.c: a full backup through the replication protocol, streamed file by file.
 *
 * backup_prepare connects (replication=true), identifies the cluster (IDENTIFY_SYSTEM), checks
 * the server and chooses the level; nothing starts on the server yet, so an estimate costs no
 * checkpoint. The first backup_next_file makes sure the agent's replication slot exists (it keeps
 * the WAL for the next incremental, pg_wal.c) and starts BASE_BACKUP with a fast checkpoint, the
 * WAL the copy needs (inside base.tar's pg_wal), the tablespace map and a manifest. PostgreSQL 15
 * answers with one COPY stream whose CopyData messages start with a type byte:
 *   'n' name NUL location NUL   a new archive ("base.tar", "<oid>.tar") begins
 *   'd' bytes                   data of the current archive, or of the manifest
 *   'm'                         the manifest begins
 *   'p' int64                   progress (ignored)
 * Each 'n' or 'm' starts a file of the backup; its 'd' messages are its stream, handed to the
 * host as they arrive (one message held at a time, never a whole archive). After the COPY the
 * server sends the backup's end position. BASE_BACKUP runs with WAIT false: the WAL is in the
 * backup itself, so nothing waits for archive_command (there need not be one).
 */
#define _POSIX_C_SOURCE 200809L

#include "pg_agent.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* is_cancelled() is a call into the host: asked once per PG_POLL_MESSAGES CopyData messages
 * (about 2 MiB) while data flows, and every PG_WAIT_MS while the server is silent. */
#define PG_POLL_MESSAGES 64u
#define PG_WAIT_MS 200

/* Wait until the connection has input, asking the host about cancellation meanwhile. AFD_OK when
 * there is input (consumed into libpq's buffer), AFD_E_CANCELLED, or AFD_E_IO. */
int32_t pg_wait_input(afd_session *s, const char *what) {
    struct pollfd pfd;
    int rc;
    for (;;) {
        if (pg_cancelled(s)) {
            pg_abort_connection(&s->conn);
            s->copy = PG_COPY_NONE;
            return pg_fail(s, AFD_E_CANCELLED, "the job was cancelled while %s; the base backup "
                                               "was ended on the server", what);
        }
        pfd.fd = PQsocket(s->conn);
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (pfd.fd < 0) return pg_command_failed(s, s->conn, NULL, what);
        rc = poll(&pfd, 1, PG_WAIT_MS);
        if (rc < 0 && errno != EINTR) {
            return pg_fail(s, AFD_E_IO, "%s: poll failed: %s", what, pg_strerror(s, errno));
        }
        if (rc > 0) {
            if (!PQconsumeInput(s->conn)) return pg_command_failed(s, s->conn, NULL, what);
            return AFD_OK;
        }
    }
}

/* The next result of the command running, waiting without blocking cancellation. *out is NULL
 * when the command has no more results. */
int32_t pg_next_result(afd_session *s, const char *what, PGresult **out) {
    int32_t rc;
    *out = NULL;
    while (PQisBusy(s->conn)) {
        rc = pg_wait_input(s, what);
        if (rc != AFD_OK) return rc;
    }
    *out = PQgetResult(s->conn);
    return AFD_OK;
}

/* A one-row result of a command (IDENTIFY_SYSTEM, SHOW): AFD_OK with *out set (PQclear it). */
int32_t pg_query_row(afd_session *s, const char *command, int columns, PGresult **out) {
    PGresult *res = PQexec(s->conn, command);
    *out = NULL;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        PQnfields(res) < columns) {
        int32_t rc = pg_command_failed(s, s->conn, res, command);
        PQclear(res);
        return rc;
    }
    *out = res;
    return AFD_OK;
}

uint64_t pg_parse_lsn(const char *text) {
    unsigned int hi = 0, lo = 0;
    char tail;
    if (text == NULL || sscanf(text, "%X/%X%c", &hi, &lo, &tail) != 2) return 0;
    return ((uint64_t)hi << 32) | lo;
}

/* A replication slot name: 1..63 of [a-z0-9_]. */
static int pg_valid_slot(const char *name) {
    size_t i, n = strlen(name);
    if (n == 0 || n > 63) return 0;
    for (i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

/* Read the job options the backup uses. */
static int32_t pg_backup_options(afd_session *s) {
    char *cluster = pg_option(s, "cluster");
    char *rate = pg_option(s, "max_rate");
    char *slot = pg_option(s, "slot");
    char *keep = pg_option(s, "keep_wal");
    int32_t rc = AFD_OK;
    if (keep != NULL) {
        if (strcmp(keep, "since_full") == 0) {
            s->keep_since_full = 1;
        } else if (strcmp(keep, "since_last") != 0) {
            rc = pg_fail(s, AFD_E_INVALID,
                         "the job option keep_wal=\"%.40s\" is invalid: give since_last (the slot "
                         "keeps the WAL since the last backup: incrementals) or since_full (since "
                         "the last full: differentials too)",
                         keep);
        }
        free(keep);
        if (rc != AFD_OK) {
            free(slot);
            free(cluster);
            free(rate);
            return rc;
        }
    }
    if (slot != NULL) {
        if (!pg_valid_slot(slot)) {
            rc = pg_fail(s, AFD_E_INVALID,
                         "the job option slot=\"%.64s\" is invalid: give a replication slot name, "
                         "1 to 63 lower-case letters, digits or '_'",
                         slot);
        } else {
            memcpy(s->slot, slot, strlen(slot) + 1);
        }
        free(slot);
        if (rc != AFD_OK) {
            free(cluster);
            free(rate);
            return rc;
        }
    }
    if (cluster != NULL) {
        if (!pg_valid_name(cluster)) {
            rc = pg_fail(s, AFD_E_INVALID,
                         "the job option cluster=\"%.64s\" is invalid: give 1 to 64 letters, "
                         "digits, '.', '_' or '-' (it names the backup's files, /@postgresql/"
                         "<cluster>/...)",
                         cluster);
        } else {
            memcpy(s->cluster, cluster, strlen(cluster) + 1);
        }
    }
    if (rc == AFD_OK && rate != NULL) {
        char *end = NULL;
        long v = rate[0] >= '0' && rate[0] <= '9' ? strtol(rate, &end, 10) : -1;
        if (v < 32 || v > 1048576 || end == NULL || *end != '\0') {
            rc = pg_fail(s, AFD_E_INVALID,
                         "the job option max_rate=\"%.40s\" is invalid: give the most the server "
                         "may send, in kB/s, from 32 to 1048576 (as pg_basebackup --max-rate)",
                         rate);
        } else {
            s->max_rate_kb = (int)v;
        }
    }
    free(cluster);
    free(rate);
    return rc;
}

/* Who the server is, and whether it can make a base backup. */
static int32_t pg_identify(afd_session *s) {
    PGresult *res;
    const char *level;
    int version = PQserverVersion(s->conn);
    int32_t rc;
    const char *shown = PQparameterStatus(s->conn, "server_version");
    snprintf(s->server_version, sizeof s->server_version, "%s", shown != NULL ? shown : "?");
    if (version < 150000) {
        return pg_fail(s, AFD_E_UNSUPPORTED,
                       "PostgreSQL %s is not supported: the agent needs PostgreSQL 15 or newer "
                       "(its BASE_BACKUP protocol); back this server up with pg_basebackup",
                       s->server_version);
    }
    rc = pg_query_row(s, "IDENTIFY_SYSTEM", 3, &res);
    if (rc != AFD_OK) return rc;
    snprintf(s->system_id, sizeof s->system_id, "%s", PQgetvalue(res, 0, 0));
    s->timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    rc = pg_query_row(s, "SHOW wal_level", 1, &res);
    if (rc != AFD_OK) return rc;
    level = PQgetvalue(res, 0, 0);
    if (strcmp(level, "minimal") == 0) {
        PQclear(res);
        return pg_fail(s, AFD_E_IO,
                       "the server's wal_level is minimal, too low for a base backup: set "
                       "wal_level = replica in postgresql.conf and restart the server");
    }
    PQclear(res);
    rc = pg_query_row(s, "SHOW wal_segment_size", 1, &res);
    if (rc != AFD_OK) return rc;
    {
        /* "16MB", "1GB", "512kB" */
        char unit[8] = "";
        unsigned long long n = 0;
        if (sscanf(PQgetvalue(res, 0, 0), "%llu%7s", &n, unit) >= 1) {
            s->seg_size = n * (strcmp(unit, "GB") == 0   ? 1024ull * 1024 * 1024
                               : strcmp(unit, "MB") == 0 ? 1024ull * 1024
                               : strcmp(unit, "kB") == 0 ? 1024ull
                                                         : 1ull);
        }
        PQclear(res);
        if (s->seg_size < 1024 * 1024 || (s->seg_size & (s->seg_size - 1)) != 0) {
            return pg_fail(s, AFD_E_IO, "the server's wal_segment_size is not one the agent knows");
        }
    }
    if (s->cluster[0] == '\0') memcpy(s->cluster, s->system_id, strlen(s->system_id) + 1);
    if (s->slot[0] == '\0') {
        /* agentfd_<cluster>, lower-cased, other characters as '_' */
        size_t i, n = strlen(s->cluster);
        if (n > 63 - 8) n = 63 - 8;
        memcpy(s->slot, "agentfd_", 8);
        for (i = 0; i < n; i++) {
            char c = s->cluster[i];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            s->slot[8 + i] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : '_';
        }
        s->slot[8 + n] = '\0';
    }
    return AFD_OK;
}

/* Send BASE_BACKUP and read what comes before its COPY stream. */
static int32_t pg_start_base_backup(afd_session *s) {
    char command[512], rate[48] = "";
    PGresult *res;
    int32_t rc;
    int results = 0;
    if (s->max_rate_kb > 0) snprintf(rate, sizeof rate, ", MAX_RATE %d", s->max_rate_kb);
    snprintf(command, sizeof command,
             "BASE_BACKUP (LABEL 'agentfd job %llu', CHECKPOINT 'fast', WAL true, WAIT false, "
             "TABLESPACE_MAP true, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C'%s)",
             (unsigned long long)s->job_id, rate);
    if (!PQsendQuery(s->conn, command)) return pg_command_failed(s, s->conn, NULL, "BASE_BACKUP");
    for (;;) {
        rc = pg_next_result(s, "starting the base backup", &res);
        if (rc != AFD_OK) return rc;
        if (res == NULL) {
            return pg_fail(s, AFD_E_IO, "BASE_BACKUP ended before sending its data");
        }
        if (PQresultStatus(res) == PGRES_COPY_OUT) {
            PQclear(res);
            break;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            rc = pg_command_failed(s, s->conn, res, "BASE_BACKUP");
            if (state != NULL && strcmp(state, "55000") == 0 &&
                strstr(s->error, "WAL level") != NULL) {
                size_t n = strlen(s->error);
                snprintf(s->error + n, sizeof s->error - n,
                         "; set wal_level = replica in postgresql.conf and restart the server");
            }
            PQclear(res);
            return rc;
        }
        /* First the start position (recptr, tli), then the tablespaces. */
        if (results++ == 0 && PQntuples(res) == 1) {
            snprintf(s->start_lsn, sizeof s->start_lsn, "%s", PQgetvalue(res, 0, 0));
        }
        PQclear(res);
    }
    s->copy = PG_COPY_RUNNING;
    return AFD_OK;
}

/* backup_prepare: connect, identify the cluster, and choose the level; nothing starts on the
 * server yet (an estimate stops here). */
int32_t pg_backup_begin(afd_session *s, afd_backup_params *params) {
    int fallback = 0;
    int32_t rc = pg_backup_options(s);
    if (rc == AFD_OK) rc = pg_connect(s, 1, &s->conn);
    if (rc == AFD_OK) rc = pg_identify(s);
    if (rc == AFD_OK && params->level != AFD_LEVEL_FULL) {
        s->differential = params->level == AFD_LEVEL_DIFFERENTIAL;
        rc = pg_incremental_check(s, &fallback);
        if (rc == AFD_OK && fallback) params->delivered_level = AFD_LEVEL_FULL;
        if (rc == AFD_OK && !fallback) s->incremental = 1;
    }
    if (rc != AFD_OK) {
        pg_abort_connection(&s->conn);
        return rc;
    }
    s->prepared = 1;
    return AFD_OK;
}

/* The first backup_next_file: the slot and BASE_BACKUP, or the WAL stream. */
static int32_t pg_backup_start(afd_session *s) {
    int32_t rc;
    s->started = 1;
    if (s->incremental) return pg_incremental_start(s);
    rc = pg_slot_ensure(s);
    if (rc == AFD_OK) rc = pg_start_base_backup(s);
    if (rc != AFD_OK) {
        pg_abort_connection(&s->conn);
        s->copy = PG_COPY_NONE;
        return rc;
    }
    pg_log(s, AFD_LOG_INFO,
           PG_AGENT_NAME ": base backup of cluster %s (system identifier %s, PostgreSQL %s) "
           "started at WAL %s on timeline %lu",
           s->cluster, s->system_id, s->server_version, s->start_lsn, (unsigned long)s->timeline);
    return AFD_OK;
}

int32_t pg_backup_first(afd_session *s) {
    return s->started ? AFD_OK : pg_backup_start(s);
}

/* After the COPY stream: the end position, then the command's end. */
static int32_t pg_finish_copy(afd_session *s) {
    PGresult *res;
    int32_t rc;
    for (;;) {
        rc = pg_next_result(s, "ending the base backup", &res);
        if (rc != AFD_OK) return rc;
        if (res == NULL) break;
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            if (PQntuples(res) == 1) {
                snprintf(s->end_lsn, sizeof s->end_lsn, "%s", PQgetvalue(res, 0, 0));
                s->timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
            }
        } else if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = pg_command_failed(s, s->conn, res, "BASE_BACKUP");
            PQclear(res);
            return rc;
        }
        PQclear(res);
    }
    if (s->end_lsn[0] == '\0') return pg_fail(s, AFD_E_IO, "BASE_BACKUP sent no end position");
    s->copy = PG_COPY_FINISHED;
    /* The next incremental starts where this backup's WAL ends. */
    s->slot_advance_to = pg_parse_lsn(s->end_lsn);
    pg_store_state(s, s->slot_advance_to);
    return AFD_OK;
}

/* The next CopyData message into s->msg (1), or 0 at the end of the stream. */
static int32_t pg_next_message(afd_session *s) {
    int32_t rc;
    if (s->msg != NULL) {
        PQfreemem(s->msg);
        s->msg = NULL;
    }
    if (s->copy != PG_COPY_RUNNING) return 0;
    if (++s->polls % PG_POLL_MESSAGES == 0 && pg_cancelled(s)) {
        pg_abort_connection(&s->conn);
        s->copy = PG_COPY_NONE;
        return pg_fail(s, AFD_E_CANCELLED,
                       "the job was cancelled while reading the base backup; the base backup was "
                       "ended on the server");
    }
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(s->conn, &buf, 1);
        if (n > 0) {
            s->msg = buf;
            s->msg_len = n;
            s->msg_off = 1;
            return 1;
        }
        if (n == -1) {
            rc = pg_finish_copy(s);
            return rc == AFD_OK ? 0 : rc;
        }
        if (n == -2) return pg_command_failed(s, s->conn, NULL, "reading the base backup");
        rc = pg_wait_input(s, "reading the base backup");
        if (rc != AFD_OK) return rc;
    }
}

/* A 'n' or 'm' message in s->msg: remember the file it starts. */
static int32_t pg_take_header(afd_session *s) {
    if (s->msg[0] == 'm') {
        s->next_kind = PG_ITEM_MANIFEST;
        memcpy(s->next_name, "backup_manifest", sizeof "backup_manifest");
    } else {
        const char *name = s->msg + 1;
        size_t n = strnlen(name, (size_t)(s->msg_len - 1));
        if (n == (size_t)(s->msg_len - 1) || !pg_valid_name(name)) {
            return pg_fail(s, AFD_E_IO, "the server announced an archive with an unusable name");
        }
        s->next_kind = PG_ITEM_ARCHIVE;
        memcpy(s->next_name, name, n + 1);
    }
    s->next_ready = 1;
    return AFD_OK;
}

int32_t pg_backup_next(afd_session *s, const afd_file **out) {
    int32_t rc;
    for (;;) {
        if (s->next_ready) {
            s->next_ready = 0;
            snprintf(s->path, sizeof s->path, PG_PREFIX "%s/%s", s->cluster, s->next_name);
            if (s->host->fileset_check != NULL &&
                s->host->fileset_check(s->host_ctx, s->path) == 0) {
                pg_log(s, AFD_LOG_WARNING,
                       PG_AGENT_NAME ": %s is excluded by the job's fileset: not saved (a restore "
                       "needs every archive of a backup)",
                       s->path);
                continue; /* its data messages are read and dropped below */
            }
            s->stream_done = 0;
            *out = pg_data_file(s, -1);
            return AFD_OK;
        }
        /* Data still unread of the file before (its stream was ended early) or of an excluded
         * one is dropped by reading on: the stream is sequential. */
        rc = pg_next_message(s);
        if (rc < 0) return rc;
        if (rc == 0) return AFD_DONE;
        if (s->msg[0] == 'n' || s->msg[0] == 'm') {
            rc = pg_take_header(s);
            PQfreemem(s->msg);
            s->msg = NULL;
            if (rc != AFD_OK) return rc;
        }
    }
}

int64_t pg_backup_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    int32_t rc;
    for (;;) {
        if (s->stream_done) return 0;
        if (s->msg != NULL && s->msg[0] == 'd' && s->msg_off < s->msg_len) {
            uint64_t n = (uint64_t)(s->msg_len - s->msg_off);
            if (n > cap) n = cap;
            memcpy(buf, s->msg + s->msg_off, (size_t)n);
            s->msg_off += (int)n;
            s->bytes += n;
            return (int64_t)n;
        }
        rc = pg_next_message(s);
        if (rc < 0) return rc;
        if (rc == 0) {
            s->stream_done = 1;
            return 0;
        }
        if (s->msg[0] == 'n' || s->msg[0] == 'm') {
            rc = pg_take_header(s);
            PQfreemem(s->msg);
            s->msg = NULL;
            if (rc != AFD_OK) return rc;
            s->stream_done = 1;
            return 0;
        }
        if (s->msg[0] != 'd') { /* 'p' progress, or a type a later server may add */
            PQfreemem(s->msg);
            s->msg = NULL;
        }
    }
}

void pg_backup_release(afd_session *s) {
    if (s->msg != NULL) {
        PQfreemem(s->msg);
        s->msg = NULL;
    }
    pg_abort_connection(&s->conn);
    s->copy = PG_COPY_NONE;
    s->streaming = 0;
}

int32_t pg_estimate(afd_session *s, afd_estimate *out) {
    PGconn *conn = NULL;
    PGresult *res;
    int32_t rc;
    if (!AFD_HAS_FIELD(out, afd_estimate, bytes)) {
        return pg_fail(s, AFD_E_INVALID, "estimate: the host's afd_estimate is too short");
    }
    out->files = out->bytes = -1;
    if (s->incremental) { /* the segments from the reference job's end to the flush position */
        uint64_t segs = s->wal_end > s->wal_pos ? (s->wal_end - s->wal_pos + s->seg_size - 1) / s->seg_size : 0;
        out->files = (int64_t)segs;
        out->bytes = (int64_t)(segs * s->seg_size);
        return AFD_OK;
    }
    /* A full: the databases' sizes, asked on an ordinary connection (a replication connection
     * runs no SQL), and one archive per tablespace plus the manifest. */
    rc = pg_connect(s, 0, &conn);
    if (rc == AFD_OK) {
        res = PQexec(conn, "SELECT (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN "
                           "('pg_default', 'pg_global')), (SELECT sum(pg_database_size(oid)) FROM "
                           "pg_database WHERE has_database_privilege(oid, 'CONNECT'))::bigint");
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            out->files = 2 + strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            out->bytes = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        } else {
            rc = pg_command_failed(s, conn, res, "measuring the databases");
        }
        PQclear(res);
        PQfinish(conn);
    }
    if (rc != AFD_OK) {
        pg_log(s, AFD_LOG_WARNING,
               PG_AGENT_NAME ": the size of a full backup is unknown: %s (the estimate needs an "
               "ordinary connection to the database of the job option dbname, postgres by default)",
               s->error);
    }
    return AFD_OK;
}

const afd_file *pg_data_file(afd_session *s, int64_t size) {
    memset(&s->stream, 0, sizeof s->stream);
    s->stream.struct_size = sizeof s->stream;
    s->stream.type = AFD_STREAM_DATA;
    s->stream.name = "data";
    s->stream.size_hint = size;
    /* An archive or a WAL segment written as a plain file is what tar and PostgreSQL read. */
    s->stream.flags = AFD_STREAM_RAW_RESTORABLE;
    memset(&s->file, 0, sizeof s->file);
    s->file.struct_size = sizeof s->file;
    s->file.kind = AFD_KIND_REGULAR;
    s->file.path = s->path;
    s->file.mode = 0600;
    s->file.mtime_ns = (int64_t)time(NULL) * 1000000000ll;
    s->file.size = size;
    s->file.stream_count = 1;
    s->file.streams = &s->stream;
    s->file_active = 1;
    s->files++;
    return &s->file;
}
