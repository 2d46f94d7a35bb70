/*
 * pg_agent.h: the PostgreSQL agent's session and the functions its source files share.
 *
 * The agent (Name() "PostgreSQL") backs a cluster up through the replication protocol with libpq
 * (BASE_BACKUP: one tar archive per tablespace, the WAL that makes the copy consistent inside
 * base.tar, and the backup manifest) and restores such a backup into a data directory through the
 * host's confined writes (generation 3). The files of a backup are virtual:
 *   /@postgresql/<cluster>/base.tar         the main data directory, with its pg_wal
 *   /@postgresql/<cluster>/<oid>.tar        each other tablespace
 *   /@postgresql/<cluster>/backup_manifest  PostgreSQL's manifest (pg_verifybackup reads it)
 *   /@postgresql/<cluster>/wal/<segment>    incrementals and differentials: WAL segment files
 * Each stream is a usable file on its own (AFD_STREAM_RAW_RESTORABLE): a tar archive, the
 * manifest, a WAL segment.
 *
 *   pg_agent.c    entry points, negotiation, the session, errors and logging
 *   pg_connect.c  the connection: job options to libpq keywords, and clear connection errors
 *   pg_backup.c   BASE_BACKUP and its COPY stream, handed out file by file
 *   pg_wal.c      incrementals: the WAL since the reference job, from the agent's replication
 *                 slot, one file per segment (/@postgresql/<cluster>/wal/<segment>); the state
 *   pg_restore.c  the tar archives unpacked into the target, and the recovery settings
 */
#ifndef PG_AGENT_H
#define PG_AGENT_H

#include "agentfd_agent.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define PG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PG_PRINTF(fmt, args)
#endif

#define PG_AGENT_NAME "PostgreSQL"
#define PG_AGENT_VERSION "0.1.0"
#define PG_PREFIX "/@postgresql/"
#define PG_NAME_CAP 65   /* a cluster or archive name: 1..64 bytes and a NUL */
#define PG_PATH_CAP 4096 /* a path below the restore target, with its NUL */

/* Where the COPY stream of BASE_BACKUP stands. */
enum pg_copy_state {
    PG_COPY_NONE,     /* no backup running */
    PG_COPY_RUNNING,  /* in the COPY stream */
    PG_COPY_FINISHED, /* the stream ended and the end position was read */
};

/* What the file handed out holds. */
enum pg_item_kind { PG_ITEM_ARCHIVE, PG_ITEM_MANIFEST };

/* The tar reader of a restore (pg_restore.c). */
typedef struct pg_untar {
    uint8_t header[512];
    size_t header_len;     /* bytes of the current header received */
    uint64_t body_left;    /* bytes of the current member's data still to come */
    uint64_t padding_left; /* bytes of padding after it */
    int fd;                /* the member being written, or -1 */
    int ended;             /* two zero blocks were seen: the archive is complete */
    int zero_blocks;
    char prefix[PG_PATH_CAP];   /* where this archive's members go, "" or "pg_tblspc_restored/<oid>/" */
    char member[PG_PATH_CAP];   /* the member's path below the target */
    uint8_t *capture;           /* tablespace_map / postgresql.auto.conf kept to rewrite */
    size_t capture_len, capture_cap;
    int capturing;              /* 1: the member is captured, not written */
} pg_untar;

struct afd_session {
    const afd_host_api *host;
    void *host_ctx;
    uint32_t abi;
    uint64_t job_id;
    char error[2048];
    char errtext[128]; /* pg_strerror()'s text */

    /* ---- backup ---- */
    int prepare_called, prepared, started;
    PGconn *conn;
    char cluster[PG_NAME_CAP];
    char system_id[32];
    char server_version[32];
    uint32_t timeline;
    char start_lsn[32], end_lsn[32];
    int max_rate_kb; /* BASE_BACKUP MAX_RATE, 0: unlimited */
    enum pg_copy_state copy;
    /* The CopyData message being delivered (libpq's buffer: PQfreemem) and how far. */
    char *msg;
    int msg_len, msg_off;
    /* A 'n' (new archive) or 'm' (manifest) message read ahead: it starts the next file. */
    int next_ready;
    enum pg_item_kind next_kind;
    char next_name[PG_NAME_CAP];
    /* The file handed out. */
    int file_active, stream_active, stream_done;
    char path[PG_PATH_CAP];
    afd_file file;
    afd_stream stream;
    uint64_t files, bytes;
    uint32_t polls;
    /* The replication slot the agent owns (created by a full backup): it keeps the WAL the next
     * incremental needs, and is advanced only once the host has committed a job. */
    char slot[64];
    uint64_t slot_advance_to; /* backup_finish(OK) advances the slot to this LSN */
    int keep_since_full;      /* keep_wal=since_full: only a full advances the slot */

    /* ---- an incremental or differential: the WAL since the reference job, one file per
     * segment ---- */
    int incremental; /* either level: both save the WAL since their reference job's end */
    int differential;
    uint64_t seg_size;
    uint64_t wal_end;     /* stop at this LSN (the flush position when the job started) */
    uint64_t wal_pos;     /* the next byte to deliver */
    uint64_t seg_end;     /* the end of the segment handed out */
    uint64_t msg_lsn;     /* the LSN of s->msg[s->msg_off] ('w' message) */
    int streaming;        /* START_REPLICATION's COPY is open */

    /* ---- restore ---- */
    int restore_ready, rs_active, rs_failed;
    char target[PG_PATH_CAP];
    pg_untar untar;
    char rs_path[PG_PATH_CAP];
    int rs_is_manifest; /* the file is written as it is (backup_manifest, a WAL segment) */
    int manifest_fd;
    /* Files written by the archive being restored, removed again if it fails. */
    char **written;
    size_t written_count, written_cap;
    uint8_t *tablespace_map, *auto_conf;
    size_t tablespace_map_len, auto_conf_len;
    int have_auto_conf, restored_base;
    char (*tablespaces)[PG_NAME_CAP];
    size_t tablespace_count, tablespace_cap;
};

/* ---- pg_agent.c ---- */
/* Keep a message for last_error() and return `code`. */
int32_t pg_fail(afd_session *s, int32_t code, const char *fmt, ...) PG_PRINTF(3, 4);
void pg_log(afd_session *s, int32_t level, const char *fmt, ...) PG_PRINTF(3, 4);
/* The job option `key` as a malloc'd string, or NULL when it is not set. */
char *pg_option(afd_session *s, const char *key);
int pg_cancelled(afd_session *s);
/* strerror(err), thread-safe: the text lives in the session until the next call. */
const char *pg_strerror(afd_session *s, int err);
/* A valid cluster or archive name: 1..64 of [A-Za-z0-9._-], not "." or "..". */
int pg_valid_name(const char *name);

/* ---- pg_connect.c ---- */
/* Connect with the job's options; replication = 1 for a physical replication connection. On
 * failure *out is NULL and the session's error names what to change. */
int32_t pg_connect(afd_session *s, int replication, PGconn **out);
/* The error of a failed command, with libpq's message, as the session's error. */
int32_t pg_command_failed(afd_session *s, PGconn *conn, const PGresult *res, const char *what);
/* Stop whatever the connection runs (PQcancel) and close it: the server ends a running
 * BASE_BACKUP when its walsender goes. */
void pg_abort_connection(PGconn **conn);

/* ---- pg_backup.c ---- */
/* Waiting for the server without blocking cancellation (pg_backup.c, used by pg_wal.c too). */
int32_t pg_wait_input(afd_session *s, const char *what);
int32_t pg_next_result(afd_session *s, const char *what, PGresult **out);
int32_t pg_query_row(afd_session *s, const char *command, int columns, PGresult **out);
/* "X/Y" as a 64-bit LSN; 0 for text that is not one. */
uint64_t pg_parse_lsn(const char *text);
int32_t pg_backup_begin(afd_session *s, afd_backup_params *params);
/* Start the backup on the server, once, at the first backup_next_file. */
int32_t pg_backup_first(afd_session *s);
/* estimate(): a full from the databases' sizes (an ordinary connection), an incremental from the
 * WAL positions. */
int32_t pg_estimate(afd_session *s, afd_estimate *out);
int32_t pg_backup_next(afd_session *s, const afd_file **out);
/* Hands out s->path as the next file: a regular file of `size` bytes (-1: not known ahead) with one
 * raw-restorable data stream, held in s->file and s->stream until the next file. */
const afd_file *pg_data_file(afd_session *s, int64_t size);
int64_t pg_backup_read(afd_session *s, uint8_t *buf, uint64_t cap);
void pg_backup_release(afd_session *s);

/* ---- pg_wal.c: incrementals ---- */
/* backup_prepare of an incremental: 1 in *fallback (and the reason logged) when it must be a
 * full instead; else the WAL range is set. */
int32_t pg_incremental_check(afd_session *s, int *fallback);
/* The first backup_next_file of an incremental: START_REPLICATION on the slot. */
int32_t pg_incremental_start(afd_session *s);
int32_t pg_wal_next(afd_session *s, const afd_file **out);
int64_t pg_wal_read(afd_session *s, uint8_t *buf, uint64_t cap);
/* A full backup: create the slot (if missing) before BASE_BACKUP, so WAL from then on is kept. */
int32_t pg_slot_ensure(afd_session *s);
/* After the commit: the slot keeps WAL from s->slot_advance_to on only; the state is stored. */
void pg_slot_advance(afd_session *s);
/* The job's state (state_set): system identifier, timeline, the last LSN saved, slot, version. */
void pg_store_state(afd_session *s, uint64_t last_lsn);

/* ---- pg_restore.c ---- */
int32_t pg_restore_begin(afd_session *s, const afd_restore_params *params);
int32_t pg_restore_file(afd_session *s, const afd_file *file);
int32_t pg_restore_data(afd_session *s, const uint8_t *buf, uint64_t len);
int32_t pg_restore_file_end(afd_session *s, int32_t status);
int32_t pg_restore_end(afd_session *s);
void pg_restore_release(afd_session *s);

#endif /* PG_AGENT_H */
