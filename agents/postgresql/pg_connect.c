/*
 * pg_connect.c: connecting as a PostgreSQL tool does, and saying what to change when it fails.
 *
 * The job options host, port, user, dbname, service, passfile, sslmode and connect_timeout are
 * handed to libpq as its own keywords (PQconnectdbParams, dbname not expanded as a connection
 * string), so libpq applies its defaults and environment (PGHOST, PGPORT, PGUSER, PGSERVICE,
 * PGPASSFILE, ~/.pgpass) exactly as psql would. There is deliberately no password option: job
 * options are recorded with the job on the volume and in the catalog, so a password there would
 * be stored with every backup. Passwords come from a passfile.
 */
#define _POSIX_C_SOURCE 200809L

#include "pg_agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The job options that are libpq keywords of the same name. */
static const char *const pg_keywords[] = {"host",    "port",   "user",           "dbname",
                                          "service", "passfile", "sslmode", "connect_timeout"};
#define PG_KEYWORD_COUNT (sizeof pg_keywords / sizeof pg_keywords[0])

/* libpq's message on one line: its lines joined with "; ", the trailing newline dropped. */
static void pg_one_line(char *out, size_t cap, const char *message) {
    size_t n = 0;
    const char *p;
    if (cap == 0) return;
    for (p = message != NULL ? message : ""; *p != '\0' && n + 3 < cap; p++) {
        if (*p == '\n') {
            if (p[1] == '\0') break;
            out[n++] = ';';
            out[n++] = ' ';
            while (p[1] == '\t' || p[1] == ' ') p++; /* the next line's indentation */
        } else if (*p != '\r') {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* What to change, for a connection error libpq reported (its message, in English). */
static const char *pg_connect_advice(const char *message, int replication, char *scratch,
                                     size_t cap) {
    const char *senders = strstr(message, "exceeds max_wal_senders (currently ");
    if (senders != NULL) {
        int current = atoi(senders + strlen("exceeds max_wal_senders (currently "));
        if (current == 0) {
            return "the server allows no replication connections: set wal_level = replica (or "
                   "logical) and max_wal_senders = 10 in postgresql.conf and restart the server";
        }
        snprintf(scratch, cap,
                 "all %d replication connections the server allows are in use (max_wal_senders = "
                 "%d): raise max_wal_senders in postgresql.conf and restart the server, or run "
                 "the backup when fewer standbys and backups are connected",
                 current, current);
        return scratch;
    }
    if (strstr(message, "must be superuser or replication role") != NULL ||
        strstr(message, "permission denied to start WAL sender") != NULL) {
        return "the role has no REPLICATION privilege: ALTER ROLE <user> REPLICATION (as a "
               "superuser), or set the job option user to a role that has it";
    }
    if (strstr(message, "no pg_hba.conf entry") != NULL) {
        return replication
                   ? "pg_hba.conf has no line for this replication connection: add one such as "
                     "\"host replication <user> <client address>/32 scram-sha-256\" (the database "
                     "column must say replication) and reload the server"
                   : "pg_hba.conf has no line for this connection: add one for the user and "
                     "database, and reload the server";
    }
    if (strstr(message, "authentication failed") != NULL ||
        strstr(message, "no password supplied") != NULL ||
        strstr(message, "password is required") != NULL) {
        return "authentication failed: give the user's password in a passfile (the job option "
               "passfile, PGPASSFILE, or ~/.pgpass of the user agentfd runs as, mode 0600), or "
               "check the job option user and the method pg_hba.conf requires";
    }
    if (strstr(message, "does not exist") != NULL && strstr(message, "role") != NULL) {
        return "the role does not exist: set the job option user to an existing role with "
               "REPLICATION, or create one (CREATE ROLE ... LOGIN REPLICATION)";
    }
    if (strstr(message, "Connection refused") != NULL ||
        strstr(message, "could not connect") != NULL ||
        strstr(message, "could not translate host name") != NULL ||
        strstr(message, "timeout expired") != NULL ||
        strstr(message, "No such file or directory") != NULL ||
        strstr(message, "Network is unreachable") != NULL ||
        strstr(message, "No route to host") != NULL) {
        return "the server cannot be reached: check the job options host and port (or service), "
               "and that PostgreSQL runs and listens there (listen_addresses and port in "
               "postgresql.conf)";
    }
    return "check the job's connection options (host, port, user, dbname, service, passfile)";
}

static void pg_notice(void *arg, const char *message) {
    char line[1024];
    pg_one_line(line, sizeof line, message);
    pg_log((afd_session *)arg, AFD_LOG_WARNING, PG_AGENT_NAME ": the server says: %s", line);
}

int32_t pg_connect(afd_session *s, int replication, PGconn **out) {
    const char *keys[PG_KEYWORD_COUNT + 5];
    const char *values[PG_KEYWORD_COUNT + 5];
    char *owned[PG_KEYWORD_COUNT];
    char *password;
    char where[512], message[1024], scratch[400];
    const char *host, *port, *user;
    size_t i, n = 0;
    int has_timeout = 0, has_db = 0;
    PGconn *conn;

    *out = NULL;
    password = pg_option(s, "password");
    if (password != NULL) {
        free(password); /* never copied, never shown */
        return pg_fail(s, AFD_E_INVALID,
                       "the job option password is not accepted: job options are recorded with "
                       "every backup; put the password in a passfile (the job option passfile, "
                       "PGPASSFILE or ~/.pgpass, mode 0600) and remove the option");
    }
    for (i = 0; i < PG_KEYWORD_COUNT; i++) {
        owned[i] = pg_option(s, pg_keywords[i]);
        if (owned[i] == NULL) continue;
        if (strcmp(pg_keywords[i], "connect_timeout") == 0) has_timeout = 1;
        if (strcmp(pg_keywords[i], "dbname") == 0 || strcmp(pg_keywords[i], "service") == 0) has_db = 1;
        keys[n] = pg_keywords[i];
        values[n++] = owned[i];
    }
    if (!has_timeout) { /* never wait for an unreachable server for ever */
        keys[n] = "connect_timeout";
        values[n++] = "10";
    }
    if (!replication && !has_db) { /* libpq would take the user's name as the database's */
        keys[n] = "dbname";
        values[n++] = "postgres";
    }
    keys[n] = "application_name";
    values[n++] = "agentfd";
    if (replication) {
        keys[n] = "replication";
        values[n++] = "true";
    }
    keys[n] = NULL;
    values[n] = NULL;

    conn = PQconnectdbParams(keys, values, 0);
    for (i = 0; i < PG_KEYWORD_COUNT; i++) free(owned[i]);
    if (conn == NULL) return pg_fail(s, AFD_E_NOMEM, "cannot connect to PostgreSQL: out of memory");
    if (PQstatus(conn) == CONNECTION_OK) {
        /* The server's notices (BASE_BACKUP's "skipping special file") go to the job log, not to
         * the host process's stderr. Called only inside libpq calls the agent makes, so on the
         * thread of a host call. */
        PQsetNoticeProcessor(conn, pg_notice, s);
        *out = conn;
        return AFD_OK;
    }
    host = PQhost(conn);
    port = PQport(conn);
    user = PQuser(conn);
    snprintf(where, sizeof where, "host=%s port=%s user=%s", host != NULL && *host ? host : "(default)",
             port != NULL && *port ? port : "(default)", user != NULL && *user ? user : "(default)");
    pg_one_line(message, sizeof message, PQerrorMessage(conn));
    pg_fail(s, AFD_E_IO, "cannot connect to PostgreSQL (%s%s): %s; %s", where,
            replication ? ", replication" : "", message,
            pg_connect_advice(message, replication, scratch, sizeof scratch));
    PQfinish(conn);
    return AFD_E_IO;
}

int32_t pg_command_failed(afd_session *s, PGconn *conn, const PGresult *res, const char *what) {
    char message[1024];
    const char *text = res != NULL ? PQresultErrorMessage(res) : NULL;
    if (text == NULL || *text == '\0') text = PQerrorMessage(conn);
    pg_one_line(message, sizeof message, text);
    return pg_fail(s, AFD_E_IO, "%s failed: %s", what, message[0] ? message : "no message from the server");
}

void pg_abort_connection(PGconn **conn) {
    PGcancel *cancel;
    char ignored[256];
    if (*conn == NULL) return;
    if (PQtransactionStatus(*conn) == PQTRANS_ACTIVE) {
        cancel = PQgetCancel(*conn);
        if (cancel != NULL) {
            (void)PQcancel(cancel, ignored, sizeof ignored); /* best effort: closing ends it too */
            PQfreeCancel(cancel);
        }
    }
    PQfinish(*conn);
    *conn = NULL;
}
