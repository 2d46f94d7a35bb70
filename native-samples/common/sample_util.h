/*
 * sample_util.h: small helpers shared by the sample agents. Not part of the ABI: an agent author
 * needs only agentfd_agent.h. These wrap the host table (logging, options, state), keep the
 * session's last error, answer afd_negotiate() for an agent's supported range, and hide the few
 * filesystem calls that differ between POSIX and Windows.
 */
#ifndef AGENTFD_SAMPLE_UTIL_H
#define AGENTFD_SAMPLE_UTIL_H

#include "agentfd_agent.h"

#include <stdarg.h>
#include <stdio.h>

#if defined(__GNUC__) || defined(__clang__)
#define SU_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SU_PRINTF(fmt, args)
#endif

/* The longest path (in bytes, with its NUL) the samples handle. */
#define SU_PATH_MAX 4096

/* What every sample session starts with: the host table and context, and the last error. */
typedef struct su_base {
    const afd_host_api *host;
    void *host_ctx;
    uint32_t abi;
    char error[1024];
    char errtext[160]; /* scratch for su_strerror() */
    /* Gen 3: restored files are written through the host's restore_open() beneath `target` (set
     * by su_confine() when the host offers it and names a target). */
    int confined;
    char target[SU_PATH_MAX];
} su_base;

/* restore_prepare(): from now on, write restored files below `target` through the host's
 * restore_open()/restore_rename()/restore_remove() when the host offers them (generation 3), so
 * that nothing found in the target (a symbolic link planted by someone else) can lead a write
 * outside it. Without them (an older host) the files are written by path, as before. */
void su_confine(su_base *base, const char *target);

/* Copy the host table pointer and context out of open()'s parameters. */
int32_t su_base_init(su_base *base, const afd_open_params *params);

/* ---- the session: a struct afd_session whose first member is an su_base ---- */
/* open(): allocate a zeroed session of `session_size` bytes (sizeof(afd_session)) and set up the
 * su_base it starts with from `params`. *out receives the session, or NULL on failure: AFD_E_NOMEM,
 * or AFD_E_INVALID for missing or short parameters. The session is released with free(). */
int32_t su_session_open(const afd_open_params *params, size_t session_size, afd_session **out);
/* last_error() of such a session, to put straight into the function table: the message of the
 * last su_fail() on its su_base, or NULL. */
const char *AFD_CALL su_session_last_error(afd_session *session);

/* Record a failure for last_error() and return `code`, so callers can `return su_fail(...)`. */
int32_t su_fail(su_base *base, int32_t code, const char *fmt, ...) SU_PRINTF(3, 4);
const char *su_last_error(su_base *base);

void su_log(su_base *base, int32_t level, const char *fmt, ...) SU_PRINTF(3, 4);
/* The job option `key` as a malloc'd string (free it), or NULL when unset. */
char *su_option(su_base *base, const char *key);
/* The job option `key` as an integer, or `fallback` when unset or not a number. */
long long su_option_int(su_base *base, const char *key, long long fallback);
int su_cancelled(su_base *base);
/* 1 when the fileset includes `path`; an agent that is asked without a fileset gets 1. */
int su_included(su_base *base, const char *path);

#if AFD_TARGET_ABI >= 2
/* The reference job's state blob, malloc'd, with *len set; NULL when there is none or the host
 * is older than generation 2. */
uint8_t *su_state_get(su_base *base, uint64_t *len);
int32_t su_state_set(su_base *base, const void *data, uint64_t len);
#endif

/* afd_negotiate() for an agent that speaks generations [agent_min, agent_max] and gives the same
 * table for each (a table's abi_version is set from the chosen generation by the caller's table
 * function). */
int32_t su_negotiate(const afd_negotiate_request *request, afd_negotiate_reply *reply,
                     uint32_t agent_min, uint32_t agent_max,
                     const afd_agent_api *(*table_for)(uint32_t generation));
/* afd_negotiate() for an agent with a single function table: it speaks generation
 * api->abi_version only. */
int32_t su_negotiate_single(const afd_negotiate_request *request, afd_negotiate_reply *reply,
                            const afd_agent_api *api);

/* The self-description (afd_agent_api.info) of a sample agent: the samples' vendor and license,
 * with the agent's own version and description. */
#define SU_SAMPLE_INFO(version, description)                                                       \
    {"vendor", "agentfd samples"}, {"version", version}, {"description", description},             \
        {"license", "MIT"}

/* ---- portable filesystem helpers ----
 * Paths are UTF-8 everywhere; on Windows they are passed to the wide ("W") API as UTF-16, so
 * non-ASCII names work whatever the ANSI code page is. */

/* Join two path parts with one '/' (Windows accepts '/' as well). Returns 0, or -1 if too long. */
int su_join(char *out, size_t cap, const char *a, const char *b);
/* mkdir -p. Returns 0 or -1 with errno set. */
int su_mkdirs(const char *path);
/* Facts of a file system entry (following symbolic links). Returns 0, or -1 with errno set.
 * mtime_ns has the file system's resolution (100 ns on NTFS). On Windows, mode is 0666, 0444 when
 * read-only, plus 0111 for a directory. */
typedef struct su_stat {
    int is_dir;
    int is_regular;
    int64_t size;
    int64_t mtime_ns;
    uint32_t mode;
} su_stat;
int su_stat_path(const char *path, su_stat *out);
/* Set a file's modification time. */
int su_set_mtime(const char *path, int64_t mtime_ns);
/* The names in a directory (without "." and ".."), sorted bytewise, as a malloc'd array of
 * malloc'd strings; *count receives the length. Returns NULL with errno set on failure. */
char **su_list_dir(const char *path, size_t *count);
void su_free_list(char **names, size_t count);
/* Remove a file. */
int su_remove(const char *path);
/* Open a file for binary reading or writing ("rb", "wb"). */
FILE *su_fopen(const char *path, const char *mode);
/* A malloc'd copy of s (strdup is not ISO C), or NULL when out of memory. */
char *su_strdup(const char *s);
/* mkdir -p of the directory that holds `path`. Returns 0 or -1 with errno set. */
int su_mkdirs_parent(const char *path);
/* Rename `from` to `to`, replacing an existing `to` (on Windows, where rename() does not replace,
 * with MoveFileExW(MOVEFILE_REPLACE_EXISTING)). Returns 0 or -1 with errno set. */
int su_replace(const char *from, const char *to);
/* strerror(err), thread-safe: the text lives in base->errtext until the next call. */
const char *su_strerror(su_base *base, int err);

/* ---- names and logical paths ---- */
/* The longest file name (in UTF-8 bytes) the samples accept in a path component. */
#define SU_NAME_MAX 1024
/* 1 when the `len` bytes at `name` make a name that is safe as one component of a logical path
 * and of a file system path on every platform: 1..SU_NAME_MAX bytes of valid UTF-8, not "." or
 * "..", no '/', '\\', ':' and no control characters. */
int su_valid_name_n(const char *name, size_t len);
int su_valid_name(const char *name);
/* Check a logical path the host passes at restore against `prefix` (the agent's namespace with a
 * trailing '/', e.g. "/@exchange/"). Returns the part after the prefix when every component is a
 * su_valid_name_n() and the path is shorter than SU_PATH_MAX, else NULL. */
const char *su_logical_rest(const char *path, const char *prefix);
/* Split `rest` (from su_logical_rest) into at most `max` components copied into parts[i]
 * (each SU_NAME_MAX + 1 bytes). Returns the number of components, or -1 when there are more. */
int su_split_path(const char *rest, char (*parts)[SU_NAME_MAX + 1], int max);
/* 1 when `path` is absolute and '/'-separated, without empty, "." or ".." components and
 * without '\\' (any length; no check of the bytes otherwise). */
int su_valid_logical_path(const char *path);
/* 1 when `name` is a non-empty stream name of ASCII letters, digits, '.', '_' and '-'. */
int su_valid_stream_name(const char *name);
/* 1 when `name` ends with `suffix`, comparing ASCII letters case-insensitively. */
int su_has_suffix(const char *name, const char *suffix);

/* ---- growing arrays ---- */
/* Make room for element `count` of the malloc'd array *array (elements of `elem` bytes, room for
 * *cap of them): doubles the room, 16 elements at first. Returns 0, or -1 when out of memory (the
 * array is left as it was). */
int su_grow(void **array, size_t *cap, size_t count, size_t elem);

/* ---- cancellation ---- */
/* A cancellation point. With counter == NULL it asks the host now; otherwise every 64th call
 * asks. Returns AFD_OK, or AFD_E_CANCELLED with the message
 * "the job was cancelled while <what>". */
int32_t su_cancel_point(su_base *base, uint32_t *counter, const char *what);

/* ---- the job option that names the agent's directory ----
 * The directory a backup reads ("store", "data_dir", "dir"), which is also where a restore goes
 * when the host names no target. Its messages read:
 *   "the job option <key> is not set; set it to <set_it_to>"
 *   "the job option <key> is too long"
 *   "cannot use <label> <path>: <reason>; check the job option <key>"
 *   "<label> <path> is not a directory; <not_a_dir_hint>" */
typedef struct su_dir_option {
    const char *key;            /* the option's name: "store" */
    const char *label;          /* what messages call the directory: "the store" */
    const char *set_it_to;      /* what to set the option to, when it is missing */
    const char *not_a_dir_hint; /* what to do when it is not a directory */
    size_t max_len; /* a path this long (in bytes) or longer is refused: leaves room for the
                       agent's names below it */
} su_dir_option;

/* ---- backup: the checks and steps every backup entry point starts with ---- */
/* backup_prepare(): refuses a second call (*prepare_called records the first) and parameters
 * that do not reach `level`. */
int32_t su_backup_prepare_once(su_base *base, int *prepare_called, const afd_backup_params *params);
/* backup_prepare() of an agent that makes full backups only: any other level is
 * AFD_E_UNSUPPORTED "<agent> makes full backups only (level N asked); use a full backup". */
int32_t su_full_backup_only(su_base *base, const afd_backup_params *params, const char *agent);
/* backup_prepare(): read the directory option and check that it names a directory. *value
 * receives the option (malloc'd: the session frees it, also after a failure), or NULL. */
int32_t su_option_dir(su_base *base, const su_dir_option *option, char **value);
/* backup_next_file(): clears *out, checks that backup_prepare succeeded (`prepared`) and that the
 * file handed out before was ended (`file_active`, `active_path` its logical path), then is a
 * cancellation point: "the job was cancelled while <listing_what>". */
int32_t su_next_file_begin(su_base *base, const afd_file **out, int prepared, int file_active,
                           const char *active_path, const char *listing_what);
/* su_stat_to_save()'s answer for a file that no longer exists. */
#define SU_GONE 1
/* backup_next_file(): stat `fs_path`, a file found by backup_prepare, before handing it out.
 * Returns AFD_OK with *st set; SU_GONE when it has disappeared since (logged as a warning: skip
 * it); or AFD_E_IO "cannot stat <path>: <reason>; check that agentfd may read <readable_what>". */
int32_t su_stat_to_save(su_base *base, const char *fs_path, const char *readable_what, su_stat *st);

/* ---- restore: the checks and steps every restore entry point starts with ---- */
/* restore_prepare(): refuses a second call, chooses the target (params->target, else the job
 * option dir->key: "no restore target: ..." when neither is set), refuses one of dir->max_len
 * bytes or more, creates it and copies it into target (SU_PATH_MAX bytes). Sets *restore_ready on
 * success. */
int32_t su_restore_prepare(su_base *base, int *restore_ready, const afd_restore_params *params,
                           const su_dir_option *dir, char *target);
/* restore_start_file(): checks that restore_prepare succeeded and that `file` is a whole
 * afd_file. */
int32_t su_restore_start_allowed(su_base *base, int restore_ready, const afd_file *file);
/* restore_start_file() for a path that is not one of the agent's objects: AFD_E_INVALID
 * "refusing to restore \"<path>\": not <what_it_should_be>". */
int32_t su_refuse_path(su_base *base, const afd_file *file, const char *what_it_should_be);

/* ---- reading a file into the host's buffer (backup streams) ---- */
typedef struct su_reader {
    FILE *fp;
    char path[SU_PATH_MAX];
} su_reader;
/* Open `path` for reading; on failure sets the message (with the path and the reason). */
int32_t su_reader_open(su_base *base, su_reader *r, const char *path);
/* fread() up to cap bytes straight into buf. Returns the count, 0 at the end of the file, or
 * AFD_E_IO with the message set. */
int64_t su_reader_read(su_base *base, su_reader *r, uint8_t *buf, uint64_t cap);
/* 1 when the file has no more bytes (reads one byte to find out: for "did it grow?" checks). */
int su_reader_at_end(su_reader *r);
void su_reader_close(su_reader *r);

/* ---- writing a restored file as "<final>.part", renamed into place when complete ---- */
typedef struct su_part {
    FILE *fp; /* NULL once closed */
    char final_path[SU_PATH_MAX];
    char part_path[SU_PATH_MAX];
    /* Confined (su_confine): the same two paths relative to the target, for the host calls, and
     * the session they go through. The mtime is set through the open file, before it is closed. */
    su_base *base;
    char final_rel[SU_PATH_MAX];
    char part_rel[SU_PATH_MAX];
    int64_t mtime_ns;
} su_part;
/* Create the parent directories of final_path and open "<final_path>.part" for writing. */
int32_t su_part_open(su_base *base, su_part *p, const char *final_path);
int32_t su_part_write(su_base *base, su_part *p, const uint8_t *buf, uint64_t len);
/* Flush and close the .part file (a full disk shows up here); confined, p->mtime_ns (when not 0)
 * is set through the file first. Idempotent. */
int32_t su_part_close(su_base *base, su_part *p);
/* Close, rename "<final>.part" over "<final>", then set its mtime when mtime_ns != 0 (a failure to
 * set the time is logged as a warning: the data is in place). */
int32_t su_part_commit(su_base *base, su_part *p, int64_t mtime_ns);
/* Close and delete the .part file. Safe to call on a part that was never opened (zeroed). */
void su_part_abort(su_part *p);

/* ---- backup: a file on disk handed out as an object with (at most) one stream ----
 * Holds the afd_file/afd_stream the agent hands out (valid until backup_end_file) and implements
 * backup_start_stream/read/end_stream/end_file for "stream 0 is the file's bytes". */
typedef struct su_file_out {
    int active;        /* handed out; backup_end_file not called yet */
    int stream_active;
    char path[SU_PATH_MAX];    /* the logical path; file.path points here */
    char fs_path[SU_PATH_MAX]; /* the file on disk */
    afd_file file;
    afd_stream stream;
    su_reader reader;
    uint32_t read_calls;
} su_file_out;
/* Fill o->file from `st` (o->path and o->fs_path are set by the caller): with_stream = 1 gives one
 * AFD_STREAM_DATA stream "data" with size_hint = st->size; with_stream = 0 gives no stream and
 * AFD_FILE_SEEN. Marks the file active. */
void su_file_out_set(su_file_out *o, uint32_t kind, const su_stat *st, int with_stream);
int32_t su_file_out_start_stream(su_base *base, su_file_out *o, uint32_t index);
/* `what` names the activity for the cancellation message ("reading the store"). */
int64_t su_file_out_read(su_base *base, su_file_out *o, uint8_t *buf, uint64_t cap,
                         const char *what);
int32_t su_file_out_end_stream(su_base *base, su_file_out *o);
int32_t su_file_out_end_file(su_base *base, su_file_out *o);
void su_file_out_close(su_file_out *o);

/* ---- restore: one object written as one file on disk, through "<final>.part" ---- */
typedef struct su_file_in {
    int active; /* between restore_start_file and restore_end_file */
    int skip;   /* AFD_FILE_SEEN or no streams: acknowledged, nothing written */
    int64_t mtime_ns;
    su_part part;
    uint32_t write_calls;
} su_file_in;
/* Start restoring `file` to final_path (already validated by the agent). A file flagged
 * AFD_FILE_SEEN or without streams is acknowledged and nothing is written. */
int32_t su_file_in_start(su_base *base, su_file_in *in, const afd_file *file,
                         const char *final_path);
/* Append bytes of stream 0; any other stream index is AFD_E_INVALID. */
int32_t su_file_in_write(su_base *base, su_file_in *in, uint32_t stream_index, const uint8_t *buf,
                         uint64_t len, const char *what);
/* AFD_STATUS_OK: rename the .part into place and set the mtime (*committed = 1);
 * AFD_STATUS_FAILED: delete the .part. */
int32_t su_file_in_end(su_base *base, su_file_in *in, int32_t status, int *committed);
/* Delete an unfinished .part (close() and restore_finish() of an interrupted restore). */
void su_file_in_abort(su_file_in *in);
/* restore_finish(): checks that restore_prepare succeeded and that no file is still open (an open
 * one is deleted, and the call fails). */
int32_t su_file_in_finish(su_base *base, su_file_in *in, int restore_ready);

#endif /* AGENTFD_SAMPLE_UTIL_H */
