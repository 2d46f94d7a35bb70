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

struct afd_session {
    su_base base;

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
    afd_session *s;
    if (out == NULL) return AFD_E_INVALID;
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL) return AFD_E_NOMEM;
    if (su_base_init(&s->base, params) != AFD_OK) {
        free(s);
        return AFD_E_INVALID;
    }
    *out = s;
    return AFD_OK;
}

static void AFD_CALL lg_close(afd_session *s) {
    if (s == NULL) return;
    su_file_out_close(&s->out);
    su_file_in_abort(&s->in);
    su_free_list(s->names, s->name_count);
    free(s->dir);
    free(s);
}

static const char *AFD_CALL lg_last_error(afd_session *s) {
    return s != NULL ? su_last_error(&s->base) : NULL;
}

/* ---- backup ---- */

static int32_t AFD_CALL lg_backup_prepare(afd_session *s, afd_backup_params *params) {
    su_stat st;
    if (s == NULL) return AFD_E_INVALID;
    if (s->prepare_called) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_prepare was already called");
    }
    s->prepare_called = 1;
    if (params == NULL || !AFD_HAS_FIELD(params, afd_backup_params, level)) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_prepare: missing parameters");
    }
    if (params->level != AFD_LEVEL_FULL) {
        return su_fail(
            &s->base, AFD_E_UNSUPPORTED,
            "LegacyFlatFiles makes full backups only (level %lu asked); use a full backup",
            (unsigned long)params->level);
    }
    s->dir = su_option(&s->base, "dir");
    if (s->dir == NULL || s->dir[0] == '\0') {
        return su_fail(
            &s->base, AFD_E_INVALID,
            "the job option dir is not set; set it to the directory whose files are saved");
    }
    if (strlen(s->dir) >= SU_PATH_MAX - SU_NAME_MAX - 8) {
        return su_fail(&s->base, AFD_E_INVALID, "the job option dir is too long");
    }
    if (su_stat_path(s->dir, &st) != 0) {
        int err = errno;
        return su_fail(&s->base, AFD_E_INVALID, "cannot use dir %s: %s; check the job option dir",
                       s->dir, su_strerror(&s->base, err));
    }
    if (!st.is_dir) {
        return su_fail(&s->base, AFD_E_INVALID,
                       "dir %s is not a directory; check the job option dir", s->dir);
    }
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
    *out = NULL;
    if (!s->prepared) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_next_file before backup_prepare");
    }
    if (s->out.active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_next_file before backup_end_file of %s",
                       s->out.path);
    }
    rc = su_cancel_point(&s->base, NULL, "listing the directory");
    if (rc != AFD_OK) return rc;
    while (s->cursor < s->name_count) {
        const char *name = s->names[s->cursor++];
        su_stat st;
        int n;
        if (su_join(s->out.fs_path, sizeof s->out.fs_path, s->dir, name) != 0) {
            return su_fail(&s->base, AFD_E_INVALID, "path too long: %s/%s", s->dir, name);
        }
        if (su_stat_path(s->out.fs_path, &st) != 0) {
            int err = errno;
            if (err == ENOENT) {
                su_log(&s->base, AFD_LOG_WARNING, "%s disappeared during the backup; skipping it",
                       s->out.fs_path);
                continue;
            }
            return su_fail(&s->base, AFD_E_IO, "cannot stat %s: %s; check that agentfd may read it",
                           s->out.fs_path, su_strerror(&s->base, err));
        }
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
    const char *target = NULL;
    char *option = NULL;
    int n;
    if (s == NULL) return AFD_E_INVALID;
    if (s->restore_ready) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_prepare was already called");
    }
    if (params != NULL && AFD_HAS_FIELD(params, afd_restore_params, target)) {
        target = params->target;
    }
    if (target == NULL || target[0] == '\0') {
        option = su_option(&s->base, "dir");
        target = option;
    }
    if (target == NULL || target[0] == '\0') {
        free(option);
        return su_fail(&s->base, AFD_E_INVALID,
                       "no restore target: give a target directory or set the job option dir");
    }
    n = snprintf(s->target, sizeof s->target, "%s", target);
    free(option);
    if (n < 0 || (size_t)n >= SU_PATH_MAX - SU_NAME_MAX - 8) {
        return su_fail(&s->base, AFD_E_INVALID, "the restore target is too long");
    }
    if (su_mkdirs(s->target) != 0) {
        int err = errno;
        return su_fail(&s->base, AFD_E_IO,
                       "cannot create the restore target %s: %s; choose another target", s->target,
                       su_strerror(&s->base, err));
    }
    s->restore_ready = 1;
    return AFD_OK;
}

static int32_t AFD_CALL lg_restore_start_file(afd_session *s, const afd_file *file) {
    char parts[1][SU_NAME_MAX + 1];
    char final_path[SU_PATH_MAX];
    const char *rest;
    if (s == NULL) return AFD_E_INVALID;
    if (!s->restore_ready) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_start_file before restore_prepare");
    }
    if (file == NULL || !AFD_HAS_FIELD(file, afd_file, streams)) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_start_file: missing or short afd_file");
    }
    rest = su_logical_rest(file->path, LG_PREFIX);
    if (rest == NULL || su_split_path(rest, parts, 1) != 1) {
        return su_fail(
            &s->base, AFD_E_INVALID,
            "refusing to restore \"%.300s\": not a LegacyFlatFiles path (/@legacy/<name>)",
            file->path != NULL ? file->path : "(null)");
    }
    if (su_join(final_path, sizeof final_path, s->target, parts[0]) != 0) {
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
    if (s == NULL) return AFD_E_INVALID;
    if (!s->restore_ready) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_finish before restore_prepare");
    }
    if (s->in.active) {
        su_file_in_abort(&s->in);
        return su_fail(&s->base, AFD_E_INVALID, "restore_finish while a file is still open");
    }
    su_log(&s->base, AFD_LOG_INFO, "restored %lu files to %s", (unsigned long)s->restored,
           s->target);
    return AFD_OK;
}

/* ---- entry points ---- */

static const afd_kv lg_info[] = {
    {"vendor", "agentfd samples"},
    {"version", "0.9.4"},
    {"description", "A first-generation agent: flat files of one directory, full backups only"},
    {"license", "MIT"},
};

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
    lg_last_error,
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

static const afd_agent_api *lg_table_for(uint32_t generation) {
    return generation == AFD_ABI_GEN_1 ? &lg_api : NULL;
}

AFD_EXPORT const char *AFD_CALL Name(void) {
    return "LegacyFlatFiles";
}

AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply) {
    return su_negotiate(request, reply, AFD_ABI_GEN_1, AFD_ABI_GEN_1, lg_table_for);
}
