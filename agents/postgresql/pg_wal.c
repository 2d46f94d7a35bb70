/*
 * pg_wal.c: incrementals and differentials from WAL, through a physical replication slot the
 * agent owns.
 *
 * A full backup creates the slot (agentfd_<cluster>, or the job option slot) before BASE_BACKUP,
 * so the server keeps every WAL segment from then on, and stores its state with state_set():
 * the system identifier, the timeline, the last LSN saved, the slot and the major version. An
 * incremental reads the reference job's state, checks that the same cluster answers on the same
 * timeline and major version and that the slot still holds the WAL since that LSN (otherwise it
 * delivers a full, saying why), and streams the WAL from there to the server's flush position at
 * the job's start (START_REPLICATION on the slot), one file per WAL segment:
 *   /@postgresql/<cluster>/wal/<segment name>   (the last one zero-filled past its end)
 * A restore puts them in agentfd_wal/, where restore_command reads them. While streaming, the
 * agent reports no flush position, so the slot does not move; once the host has committed the
 * job (backup_finish(AFD_STATUS_OK)) the slot is advanced to the job's end, and the server may
 * recycle what the job saved. A failed or cancelled job leaves the slot where it was: the next
 * job finds its WAL still there. A differential is the same stream from its reference job (the
 * last full): it needs the slot to keep the WAL since that full, which the job option
 * keep_wal=since_full asks for (then only a full advances the slot); with the default,
 * since_last, a differential after an incremental finds that WAL gone and delivers a full,
 * saying so.
 */
#define _POSIX_C_SOURCE 200809L

#include "pg_agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_STATE_MAGIC "agentfd-postgresql-state 1"
#define PG_XLOG_HEADER 25 /* 'w', dataStart, walEnd, sendTime */
#define PG_POLL_MESSAGES 64u

typedef struct pg_state {
    char system_id[32];
    uint32_t timeline;
    uint64_t lsn;
    char slot[64];
    int major;
} pg_state;

static void pg_put64(uint8_t *p, uint64_t v) {
    int i;
    for (i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t pg_get64(const uint8_t *p) {
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static void pg_lsn_text(char *out, size_t cap, uint64_t lsn) {
    snprintf(out, cap, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

/* ------------------------------------------------------------------------------------------- */
/* state                                                                                        */
/* ------------------------------------------------------------------------------------------- */

void pg_store_state(afd_session *s, uint64_t last_lsn) {
    char text[512], lsn[32];
    int n;
    if (!AFD_HAS_FIELD(s->host, afd_host_api, state_set) || s->host->state_set == NULL) return;
    pg_lsn_text(lsn, sizeof lsn, last_lsn);
    n = snprintf(text, sizeof text,
                 PG_STATE_MAGIC "\nsystem_id=%s\ntimeline=%lu\nlsn=%s\nslot=%s\nmajor=%d\n",
                 s->system_id, (unsigned long)s->timeline, lsn, s->slot,
                 PQserverVersion(s->conn) / 10000);
    if (n > 0 && (size_t)n < sizeof text) {
        (void)s->host->state_set(s->host_ctx, (const uint8_t *)text, (uint64_t)n);
    }
}

/* The reference job's state: 1 when there is one this agent wrote. */
static int pg_load_state(afd_session *s, pg_state *st) {
    char text[1024];
    int64_t n;
    char *line, *save = NULL;
    memset(st, 0, sizeof *st);
    if (!AFD_HAS_FIELD(s->host, afd_host_api, state_get) || s->host->state_get == NULL) return 0;
    n = s->host->state_get(s->host_ctx, (uint8_t *)text, sizeof text - 1);
    if (n <= 0 || (uint64_t)n >= sizeof text) return 0;
    text[n] = '\0';
    if (strncmp(text, PG_STATE_MAGIC "\n", strlen(PG_STATE_MAGIC) + 1) != 0) return 0;
    for (line = strtok_r(text + strlen(PG_STATE_MAGIC) + 1, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL) continue;
        *eq++ = '\0';
        if (strcmp(line, "system_id") == 0) snprintf(st->system_id, sizeof st->system_id, "%s", eq);
        else if (strcmp(line, "timeline") == 0) st->timeline = (uint32_t)strtoul(eq, NULL, 10);
        else if (strcmp(line, "lsn") == 0) st->lsn = pg_parse_lsn(eq);
        else if (strcmp(line, "slot") == 0) snprintf(st->slot, sizeof st->slot, "%s", eq);
        else if (strcmp(line, "major") == 0) st->major = atoi(eq);
    }
    return st->system_id[0] != '\0' && st->lsn != 0 && st->slot[0] != '\0';
}

/* ------------------------------------------------------------------------------------------- */
/* the slot                                                                                     */
/* ------------------------------------------------------------------------------------------- */

/* READ_REPLICATION_SLOT: 1 when the slot exists, with its restart LSN (0 when it holds none). */
static int32_t pg_read_slot(afd_session *s, int *exists, uint64_t *restart) {
    char command[128];
    PGresult *res;
    int32_t rc;
    snprintf(command, sizeof command, "READ_REPLICATION_SLOT %s", s->slot);
    rc = pg_query_row(s, command, 3, &res);
    if (rc != AFD_OK) return rc;
    *exists = !PQgetisnull(res, 0, 0);
    *restart = PQgetisnull(res, 0, 1) ? 0 : pg_parse_lsn(PQgetvalue(res, 0, 1));
    PQclear(res);
    return AFD_OK;
}

int32_t pg_slot_ensure(afd_session *s) {
    char command[160];
    PGresult *res;
    int exists = 0;
    uint64_t restart = 0;
    int32_t rc = pg_read_slot(s, &exists, &restart);
    if (rc != AFD_OK || exists) return rc;
    snprintf(command, sizeof command, "CREATE_REPLICATION_SLOT %s PHYSICAL RESERVE_WAL", s->slot);
    res = PQexec(s->conn, command);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_command_failed(s, s->conn, res, command);
        if (strstr(s->error, "max_replication_slots") != NULL) {
            size_t n = strlen(s->error);
            snprintf(s->error + n, sizeof s->error - n,
                     "; raise max_replication_slots in postgresql.conf and restart the server, or "
                     "drop a slot that is no longer used");
        }
        PQclear(res);
        return rc;
    }
    PQclear(res);
    pg_log(s, AFD_LOG_INFO,
           PG_AGENT_NAME ": created the physical replication slot %s: it keeps the WAL the next "
           "incremental needs (if you stop backing this cluster up, drop it: SELECT "
           "pg_drop_replication_slot('%s'))",
           s->slot, s->slot);
    return AFD_OK;
}

/* Drain what the server sends after our CopyDone, then the command's results. */
static int32_t pg_end_copy_both(afd_session *s, PGconn *conn, const char *what) {
    PGresult *res;
    char *buf;
    int n;
    if (PQputCopyEnd(conn, NULL) != 1 || PQflush(conn) != 0) {
        return pg_command_failed(s, conn, NULL, what);
    }
    while ((n = PQgetCopyData(conn, &buf, 0)) > 0) PQfreemem(buf);
    if (n == -2) return pg_command_failed(s, conn, NULL, what);
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            int32_t rc = pg_command_failed(s, conn, res, what);
            PQclear(res);
            while ((res = PQgetResult(conn)) != NULL) PQclear(res);
            return rc;
        }
        PQclear(res);
    }
    return AFD_OK;
}

/* A standby status update: written up to `write`, flushed (for the slot) up to `flush`. */
static int pg_send_status(PGconn *conn, uint64_t write, uint64_t flush) {
    uint8_t msg[34];
    struct timespec now;
    int64_t us;
    clock_gettime(CLOCK_REALTIME, &now);
    us = ((int64_t)now.tv_sec - 946684800ll) * 1000000ll + now.tv_nsec / 1000; /* since 2000 */
    msg[0] = 'r';
    pg_put64(msg + 1, write);
    pg_put64(msg + 9, flush);
    pg_put64(msg + 17, flush);
    pg_put64(msg + 25, (uint64_t)us);
    msg[33] = 0;
    return PQputCopyData(conn, (const char *)msg, sizeof msg) == 1 && PQflush(conn) == 0;
}

void pg_slot_advance(afd_session *s) {
    char command[200], lsn[32];
    PGconn *conn = NULL;
    PGresult *res;
    int32_t rc;
    if (s->slot_advance_to == 0 || s->slot[0] == '\0') return;
    pg_lsn_text(lsn, sizeof lsn, s->slot_advance_to);
    rc = pg_connect(s, 1, &conn);
    if (rc == AFD_OK) {
        snprintf(command, sizeof command, "START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %lu",
                 s->slot, lsn, (unsigned long)s->timeline);
        res = PQexec(conn, command);
        if (res == NULL || PQresultStatus(res) != PGRES_COPY_BOTH) {
            rc = pg_command_failed(s, conn, res, command);
        } else if (!pg_send_status(conn, s->slot_advance_to, s->slot_advance_to)) {
            rc = pg_command_failed(s, conn, NULL, "reporting the saved WAL position");
        }
        PQclear(res);
        if (rc == AFD_OK) rc = pg_end_copy_both(s, conn, command);
    }
    if (conn != NULL) PQfinish(conn);
    if (rc != AFD_OK) {
        pg_log(s, AFD_LOG_WARNING,
               PG_AGENT_NAME ": the backup is committed, but the slot %s could not be advanced to "
               "%s (%s): the server keeps the WAL since the previous job until the next one",
               s->slot, lsn, s->error);
        return;
    }
    pg_log(s, AFD_LOG_INFO, PG_AGENT_NAME ": the slot %s now keeps the WAL from %s on", s->slot, lsn);
}

/* ------------------------------------------------------------------------------------------- */
/* the incremental                                                                              */
/* ------------------------------------------------------------------------------------------- */

static int32_t pg_full_instead(afd_session *s, int *fallback, const char *why) {
    pg_log(s, AFD_LOG_WARNING, PG_AGENT_NAME ": making a full backup instead of %s: %s",
           s->differential ? "a differential" : "an incremental", why);
    *fallback = 1;
    return AFD_OK;
}

int32_t pg_incremental_check(afd_session *s, int *fallback) {
    pg_state st;
    char why[512], lsn[32];
    PGresult *res;
    int exists = 0;
    uint64_t restart = 0, start;
    int major = PQserverVersion(s->conn) / 10000;
    int32_t rc;

    *fallback = 0;
    if (!pg_load_state(s, &st)) {
        return pg_full_instead(s, fallback, "the reference job has no PostgreSQL state (made by "
                                            "another agent, or before incrementals)");
    }
    if (strcmp(st.system_id, s->system_id) != 0) {
        snprintf(why, sizeof why, "the server's system identifier is %s, the reference job's %s "
                                  "(another cluster answers there)", s->system_id, st.system_id);
        return pg_full_instead(s, fallback, why);
    }
    if (st.major != major) {
        snprintf(why, sizeof why, "the server runs PostgreSQL %d, the reference job saved "
                                  "PostgreSQL %d (an upgrade)", major, st.major);
        return pg_full_instead(s, fallback, why);
    }
    if (st.timeline != s->timeline) {
        snprintf(why, sizeof why, "the server is on timeline %lu, the reference job ended on "
                                  "timeline %lu (a promotion or a point-in-time recovery since)",
                 (unsigned long)s->timeline, (unsigned long)st.timeline);
        return pg_full_instead(s, fallback, why);
    }
    if (strcmp(st.slot, s->slot) != 0) {
        snprintf(why, sizeof why, "the job's replication slot is %s, the reference job used %s",
                 s->slot, st.slot);
        return pg_full_instead(s, fallback, why);
    }
    start = st.lsn - st.lsn % s->seg_size;
    rc = pg_read_slot(s, &exists, &restart);
    if (rc != AFD_OK) return rc;
    if (!exists) {
        snprintf(why, sizeof why, "the replication slot %s no longer exists (dropped?)", s->slot);
        return pg_full_instead(s, fallback, why);
    }
    if (restart == 0 || restart - restart % s->seg_size > start) {
        pg_lsn_text(lsn, sizeof lsn, st.lsn);
        snprintf(why, sizeof why, "the replication slot %s no longer holds the WAL since %s%s",
                 s->slot, lsn,
                 s->differential && !s->keep_since_full
                     ? " (incrementals let it go: set the job option keep_wal=since_full to keep "
                       "the WAL since the last full for differentials)"
                     : "");
        return pg_full_instead(s, fallback, why);
    }
    rc = pg_query_row(s, "IDENTIFY_SYSTEM", 3, &res);
    if (rc != AFD_OK) return rc;
    s->wal_end = pg_parse_lsn(PQgetvalue(res, 0, 2));
    PQclear(res);
    s->wal_pos = start;
    pg_lsn_text(s->start_lsn, sizeof s->start_lsn, start);
    pg_lsn_text(s->end_lsn, sizeof s->end_lsn, s->wal_end);
    return AFD_OK;
}

int32_t pg_incremental_start(afd_session *s) {
    char command[200];
    PGresult *res;
    int32_t rc;
    snprintf(command, sizeof command, "START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %lu", s->slot,
             s->start_lsn, (unsigned long)s->timeline);
    if (!PQsendQuery(s->conn, command)) return pg_command_failed(s, s->conn, NULL, command);
    rc = pg_next_result(s, "starting the WAL stream", &res);
    if (rc != AFD_OK) return rc;
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_BOTH) {
        rc = pg_command_failed(s, s->conn, res, command);
        PQclear(res);
        return rc;
    }
    PQclear(res);
    s->streaming = 1;
    pg_log(s, AFD_LOG_INFO,
           PG_AGENT_NAME ": %s of cluster %s: WAL from %s to %s on timeline %lu, through the "
           "slot %s",
           s->differential ? "differential" : "incremental", s->cluster, s->start_lsn, s->end_lsn,
           (unsigned long)s->timeline, s->slot);
    return AFD_OK;
}

/* The WAL segment file name of the segment holding `lsn`. */
static void pg_segment_name(afd_session *s, uint64_t lsn, char *out, size_t cap) {
    uint64_t segno = lsn / s->seg_size, per_id = 0x100000000ull / s->seg_size;
    snprintf(out, cap, "%08X%08X%08X", (unsigned)s->timeline, (unsigned)(segno / per_id),
             (unsigned)(segno % per_id));
}

/* The next XLogData message in s->msg (1), answering keepalives; 0 when the stream ended. */
static int32_t pg_next_wal_message(afd_session *s) {
    int32_t rc;
    if (s->msg != NULL) {
        PQfreemem(s->msg);
        s->msg = NULL;
    }
    if (++s->polls % PG_POLL_MESSAGES == 0 && pg_cancelled(s)) {
        pg_abort_connection(&s->conn);
        s->streaming = 0;
        return pg_fail(s, AFD_E_CANCELLED, "the job was cancelled while reading the WAL stream");
    }
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(s->conn, &buf, 1);
        if (n > 0) {
            if (buf[0] == 'w' && n >= PG_XLOG_HEADER) {
                s->msg = buf;
                s->msg_len = n;
                s->msg_off = PG_XLOG_HEADER;
                s->msg_lsn = pg_get64((const uint8_t *)buf + 1);
                return 1;
            }
            if (buf[0] == 'k' && n >= 18 && buf[17] != 0 &&
                !pg_send_status(s->conn, s->wal_pos, 0)) { /* flush 0: the slot stays */
                PQfreemem(buf);
                return pg_command_failed(s, s->conn, NULL, "answering the server's keepalive");
            }
            PQfreemem(buf);
            continue;
        }
        if (n == -1) return 0;
        if (n == -2) return pg_command_failed(s, s->conn, NULL, "reading the WAL stream");
        rc = pg_wait_input(s, "reading the WAL stream");
        if (rc != AFD_OK) return rc;
    }
}

int32_t pg_wal_next(afd_session *s, const afd_file **out) {
    char name[32];
    int32_t rc;
    if (s->wal_pos >= s->wal_end) {
        if (s->streaming) {
            s->streaming = 0;
            if (s->msg != NULL) {
                PQfreemem(s->msg);
                s->msg = NULL;
            }
            rc = pg_end_copy_both(s, s->conn, "ending the WAL stream");
            if (rc != AFD_OK) return rc;
            s->slot_advance_to = s->wal_end;
            pg_store_state(s, s->wal_end);
        }
        return AFD_DONE;
    }
    pg_segment_name(s, s->wal_pos, name, sizeof name);
    snprintf(s->path, sizeof s->path, PG_PREFIX "%s/wal/%s", s->cluster, name);
    s->seg_end = s->wal_pos - s->wal_pos % s->seg_size + s->seg_size;
    *out = pg_data_file(s, (int64_t)s->seg_size);
    return AFD_OK;
}

int64_t pg_wal_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    int32_t rc;
    for (;;) {
        uint64_t want = s->seg_end - s->wal_pos;
        if (s->wal_pos >= s->seg_end) return 0;
        if (want > cap) want = cap;
        if (s->msg != NULL && s->msg_off < s->msg_len) {
            uint64_t have = (uint64_t)(s->msg_len - s->msg_off);
            if (s->msg_lsn < s->wal_pos) { /* the stream starts before what is wanted */
                uint64_t skip = s->wal_pos - s->msg_lsn;
                if (skip > have) skip = have;
                s->msg_off += (int)skip;
                s->msg_lsn += skip;
                continue;
            }
            if (s->msg_lsn > s->wal_pos) {
                char at[32], got[32];
                pg_lsn_text(at, sizeof at, s->wal_pos);
                pg_lsn_text(got, sizeof got, s->msg_lsn);
                return pg_fail(s, AFD_E_IO, "the server's WAL stream jumped from %s to %s", at, got);
            }
            if (want > have) want = have;
            memcpy(buf, s->msg + s->msg_off, (size_t)want);
            s->msg_off += (int)want;
            s->msg_lsn += want;
            s->wal_pos += want;
            s->bytes += want;
            return (int64_t)want;
        }
        if (s->wal_pos >= s->wal_end) { /* past the job's end: the segment's rest is zeros */
            memset(buf, 0, (size_t)want);
            s->wal_pos += want;
            s->bytes += want;
            return (int64_t)want;
        }
        rc = pg_next_wal_message(s);
        if (rc < 0) return rc;
        if (rc == 0) { /* the server ended the stream early: its error, if it sent one */
            char at[32];
            PGresult *res = PQgetResult(s->conn);
            s->streaming = 0;
            if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR) {
                rc = pg_command_failed(s, s->conn, res, "streaming the WAL");
                PQclear(res);
                return rc;
            }
            PQclear(res);
            pg_lsn_text(at, sizeof at, s->wal_pos);
            return pg_fail(s, AFD_E_IO, "the server ended the WAL stream at %s, before %s", at,
                           s->end_lsn);
        }
    }
}
