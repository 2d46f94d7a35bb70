/*
 * legacy.c: the "LegacyFlatFiles" sample agent, a first-generation agent.
 *
 * Built with AFD_TARGET_ABI=1 (binding.gyp defines it), so the generation-2 fields of the ABI
 * structures do not exist for it: it speaks generation 1 only and offers full backups and restore.
 * It shows that an agent compiled against the first generation keeps working with a newer host.
 *
 * Job option `dir` (required): the regular files directly in that directory (not recursive) are
 * saved as /@legacy/<name>, AFD_KIND_REGULAR with one "data" stream. Restore writes them to
 * <target>/<name> (target: the restore target, else `dir`).
 */
#include "sample_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if AFD_TARGET_ABI != 1
#error "legacy.c is a generation-1 agent: build it with AFD_TARGET_ABI=1"
#endif

#define LG_PREFIX "/@legacy/"

/* The job option `dir`: the directory whose files are saved, and the default restore target. */
static const su_dir_option lg_dir_option = {
    .key = "dir",
    .label = "dir",
    .set_it_to = "the directory whose files are saved",
    .not_a_dir_hint = "check the job option dir",
    .max_len = SU_PATH_MAX - SU_NAME_MAX - 8, /* room for "/<name>.part" */
};

/* What the agent says about itself (afd_agent_api.info). */
static const afd_kv lg_info[] = {SU_SAMPLE_INFO(
    "0.9.4", "A first-generation agent: flat files of one directory, full backups only")};

struct afd_session {
    su_base base; /* first: see su_session_open() */

    /* ---- backup ---- */
    int prepare_called, prepared;
    char *dir;
    char **names;
    size_t name_count, cursor;
    su_file_out out;

    /* ---- restore ---- */
    int restore_ready;
    char target[SU_PATH_MAX];
    su_file_in in;
    size_t restored;
};

static int32_t AFD_CALL lg_open(const afd_open_params *params, afd_session **out) {
    return su_session_open(params, sizeof(afd_session), out);
}

static void AFD_CALL lg_close(afd_session *s) {
    if (s == NULL) return;
    su_file_out_close(&s->out);
    su_file_in_abort(&s->in);
    su_free_list(s->names, s->name_count);
    free(s->dir);
    free(s);
}

/* ---- backup ---- */

static int32_t AFD_CALL lg_backup_prepare(afd_session *s, afd_backup_params *params) {
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_backup_prepare_once(&s->base, &s->prepare_called, params);
    if (rc == AFD_OK) rc = su_full_backup_only(&s->base, params, "LegacyFlatFiles");
    if (rc == AFD_OK) rc = su_option_dir(&s->base, &lg_dir_option, &s->dir);
    if (rc != AFD_OK) return rc;
    s->names = su_list_dir(s->dir, &s->name_count);
    if (s->names == NULL) {
        int err = errno;
        return su_fail(&s->base, AFD_E_IO, "cannot list %s: %s; check that agentfd may read it",
                       s->dir, su_strerror(&s->base, err));
    }
    s->prepared = 1;
    return AFD_OK;
}

static int32_t AFD_CALL lg_backup_next_file(afd_session *s, const afd_file **out) {
    int32_t rc;
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    rc = su_next_file_begin(&s->base, out, s->prepared, s->out.active, s->out.path,
                            "listing the directory");
    if (rc != AFD_OK) return rc;
    while (s->cursor < s->name_count) {
        const char *name = s->names[s->cursor++];
        su_stat st;
        int n;
        if (su_join(s->out.fs_path, sizeof s->out.fs_path, s->dir, name) != 0) {
            return su_fail(&s->base, AFD_E_INVALID, "path too long: %s/%s", s->dir, name);
        }
        rc = su_stat_to_save(&s->base, s->out.fs_path, "it", &st);
        if (rc == SU_GONE) continue;
        if (rc != AFD_OK) return rc;
        if (!st.is_regular) {
            su_log(&s->base, AFD_LOG_DEBUG, "ignoring %s: not a regular file", s->out.fs_path);
            continue;
        }
        if (!su_valid_name(name)) {
            su_log(&s->base, AFD_LOG_WARNING,
                   "skipping %s: its name cannot be restored on every platform", s->out.fs_path);
            continue;
        }
        n = snprintf(s->out.path, sizeof s->out.path, LG_PREFIX "%s", name);
        if (n < 0 || (size_t)n >= sizeof s->out.path) {
            return su_fail(&s->base, AFD_E_INVALID, "path too long: %s", name);
        }
        if (!su_included(&s->base, s->out.path)) {
            su_log(&s->base, AFD_LOG_DEBUG, "%s is excluded by the fileset", s->out.path);
            continue;
        }
        su_file_out_set(&s->out, AFD_KIND_REGULAR, &st, 1);
        *out = &s->out.file;
        return AFD_OK;
    }
    return AFD_DONE;
}

static int32_t AFD_CALL lg_backup_start_stream(afd_session *s, uint32_t index) {
    return s != NULL ? su_file_out_start_stream(&s->base, &s->out, index) : AFD_E_INVALID;
}

static int64_t AFD_CALL lg_backup_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    return s != NULL ? su_file_out_read(&s->base, &s->out, buf, cap, "reading the files")
                     : AFD_E_INVALID;
}

static int32_t AFD_CALL lg_backup_end_stream(afd_session *s) {
    return s != NULL ? su_file_out_end_stream(&s->base, &s->out) : AFD_E_INVALID;
}

static int32_t AFD_CALL lg_backup_end_file(afd_session *s) {
    return s != NULL ? su_file_out_end_file(&s->base, &s->out) : AFD_E_INVALID;
}

/* ---- restore ---- */

static int32_t AFD_CALL lg_restore_prepare(afd_session *s, const afd_restore_params *params) {
    if (s == NULL) return AFD_E_INVALID;
    return su_restore_prepare(&s->base, &s->restore_ready, params, &lg_dir_option, s->target);
}

static int32_t AFD_CALL lg_restore_start_file(afd_session *s, const afd_file *file) {
    char final_path[SU_PATH_MAX];
    const char *name;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_restore_start_allowed(&s->base, s->restore_ready, file);
    if (rc != AFD_OK) return rc;
    name = su_logical_rest(file->path, LG_PREFIX); /* only valid names below the prefix */
    if (name == NULL || strchr(name, '/') != NULL) { /* ... and exactly one */
        return su_refuse_path(&s->base, file, "a LegacyFlatFiles path (/@legacy/<name>)");
    }
    if (su_join(final_path, sizeof final_path, s->target, name) != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "restore path too long for %s", file->path);
    }
    return su_file_in_start(&s->base, &s->in, file, final_path);
}

static int32_t AFD_CALL lg_restore_write(afd_session *s, uint32_t stream_index, const uint8_t *buf,
                                         uint64_t len) {
    return s != NULL
               ? su_file_in_write(&s->base, &s->in, stream_index, buf, len, "restoring the files")
               : AFD_E_INVALID;
}

static int32_t AFD_CALL lg_restore_end_file(afd_session *s, int32_t status) {
    int committed = 0;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_file_in_end(&s->base, &s->in, status, &committed);
    if (committed) s->restored++;
    return rc;
}

static int32_t AFD_CALL lg_restore_finish(afd_session *s) {
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_file_in_finish(&s->base, &s->in, s->restore_ready);
    if (rc != AFD_OK) return rc;
    su_log(&s->base, AFD_LOG_INFO, "restored %lu files to %s", (unsigned long)s->restored,
           s->target);
    return AFD_OK;
}

/* ---- entry points ---- */

/* Compiled against generation 1: sizeof(afd_agent_api) is the generation-1 size. */
static const afd_agent_api lg_api = {
    sizeof(afd_agent_api),
    AFD_ABI_GEN_1,
    AFD_CAP_BACKUP_FULL | AFD_CAP_RESTORE,
    lg_info,
    (uint32_t)(sizeof lg_info / sizeof lg_info[0]),
    0,
    lg_open,
    lg_close,
    su_session_last_error,
    lg_backup_prepare,
    lg_backup_next_file,
    lg_backup_start_stream,
    lg_backup_read,
    lg_backup_end_stream,
    lg_backup_end_file,
    lg_restore_prepare,
    lg_restore_start_file,
    lg_restore_write,
    lg_restore_end_file,
    lg_restore_finish,
};

AFD_EXPORT const char *AFD_CALL Name(void) {
    return "LegacyFlatFiles";
}

AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply) {
    return su_negotiate_single(request, reply, &lg_api); /* generation 1 only */
}
