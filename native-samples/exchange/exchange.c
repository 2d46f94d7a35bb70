/*
 * exchange.c: the "MicrosoftExchange" sample agent.
 *
 * Backs up a directory laid out like an Exchange store as logical objects:
 *
 *   <store>/<SG>/<DB>.edb, <store>/<SG>/<DB>.stm      databases of storage group <SG>
 *   <store>/<SG>/logs/E<8 hex digits>.log             its transaction logs, numbered in hex
 *
 * become /@exchange/<SG>/<DB>.edb, /@exchange/<SG>/<DB>.stm and /@exchange/<SG>/logs/E....log,
 * each an AFD_KIND_VIRTUAL object with one "data" stream. Other files are ignored.
 *
 * Generations 1..3 (3: restored files are written through the host's restore_open(), see
 * sample_util.c). With generation 2 the agent keeps a log checkpoint as agent state:
 *
 *   agentfd-exchange-checkpoint 1\n
 *   <SG> <highest saved log number, 8 hex digits>\n      (one line per storage group)
 *
 * A full backup saves everything. An incremental or differential saves only the logs above the
 * checkpoint of the reference job (the host hands out the right reference state for each level)
 * and reports the rest as AFD_FILE_SEEN. backup_finish() truncates the saved logs (except the
 * current one) once the host has committed a full or incremental job.
 *
 * Output order is deterministic: storage groups by name; in each, the databases by name, then the
 * logs by number.
 */
#include "sample_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EX_PREFIX "/@exchange/"
#define EX_LOGS_DIR "logs"
#define EX_STATE_MAGIC "agentfd-exchange-checkpoint 1\n"

/* The job option `store`: the store to save, and the default restore target. */
static const su_dir_option ex_store_option = {
    .key = "store",
    .label = "the store",
    .set_it_to = "the Exchange store directory "
                 "(the directory that holds one directory per storage group)",
    .not_a_dir_hint = "set the job option store to the Exchange store directory",
    .max_len = SU_PATH_MAX - 2 * SU_NAME_MAX - 16, /* room for "/<SG>/logs/<name>.part" */
};

/* What the agent says about itself (afd_agent_api.info). */
static const afd_kv ex_info[] = {SU_SAMPLE_INFO(
    "1.2.0", "Exchange-style store: databases and numbered transaction logs, log checkpoint kept "
             "as agent state")};

typedef struct ex_sg {
    char *name;
    int in_ref;          /* listed in the reference job's checkpoint */
    uint32_t ref_cp;     /* ... with this log number */
    int has_cp;          /* new_cp is set */
    uint32_t new_cp;     /* the checkpoint this job stores */
    int has_logs;        /* logs were found on disk */
    uint32_t newest_log; /* the highest log number on disk (the current log) */
} ex_sg;

typedef struct ex_item {
    size_t sg; /* index into sgs */
    int is_log;
    uint32_t number; /* logs: the log number */
    char *name;      /* file name */
    int64_t size;    /* at prepare (estimate); refreshed when handed out */
    int save;        /* 1: saved with its stream; 0: reported as AFD_FILE_SEEN */
    int handed;      /* handed out by backup_next_file */
} ex_item;

typedef struct ex_ref {
    char *name;
    uint32_t cp;
} ex_ref;

typedef struct ex_rlog { /* a log written by this restore */
    char *sg;
    uint32_t number;
} ex_rlog;

struct afd_session {
    su_base base; /* first: see su_session_open() */

    /* ---- backup ---- */
    char *store;
    int prepare_called;
    int prepared;
    int done;       /* backup_next_file returned AFD_DONE */
    uint32_t level; /* the delivered level */
    ex_sg *sgs;
    size_t sg_count, sg_cap;
    ex_item *items;
    size_t item_count, item_cap;
    size_t cursor;
    su_file_out out; /* the file handed out */

    /* ---- restore ---- */
    int restore_ready;
    char target[SU_PATH_MAX];
    su_file_in in; /* the file being restored */
    int rs_is_log;
    uint32_t rs_number;
    char rs_sg[SU_NAME_MAX + 1];
    ex_rlog *rlogs;
    size_t rlog_count, rlog_cap;
    size_t db_restored;
};

/* ------------------------------------------------------------------------------------------- */
/* helpers                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int ex_hex_digit(char c, uint32_t *v) {
    if (c >= '0' && c <= '9') {
        *v = (uint32_t)(c - '0');
    } else if (c >= 'a' && c <= 'f') {
        *v = (uint32_t)(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
        *v = (uint32_t)(c - 'A' + 10);
    } else {
        return 0;
    }
    return 1;
}

/* Exactly 8 hex digits. */
static int ex_parse_hex8(const char *text, uint32_t *out) {
    uint32_t value = 0, d;
    int i;
    for (i = 0; i < 8; i++) {
        if (!ex_hex_digit(text[i], &d)) return 0;
        value = (value << 4) | d;
    }
    *out = value;
    return 1;
}

/* "E" + 8 hex digits + ".log" -> its number. */
static int ex_parse_log_name(const char *name, uint32_t *number) {
    if (strlen(name) != 13 || (name[0] != 'E' && name[0] != 'e')) return 0;
    if (!su_has_suffix(name, ".log")) return 0;
    return ex_parse_hex8(name + 1, number);
}

static int ex_is_database_name(const char *name) {
    return su_has_suffix(name, ".edb") || su_has_suffix(name, ".stm");
}

/* "<SG>/<name>" or "<SG>/logs/<name>", relative to a root (the store, or the restore target). */
static int ex_object_path(char *out, size_t cap, const char *root, const char *sg, int is_log,
                          const char *name) {
    char dir[SU_PATH_MAX], logs[SU_PATH_MAX];
    if (su_join(dir, sizeof dir, root, sg) != 0) return -1;
    if (!is_log) return su_join(out, cap, dir, name);
    if (su_join(logs, sizeof logs, dir, EX_LOGS_DIR) != 0) return -1;
    return su_join(out, cap, logs, name);
}

static int ex_logical_path(char *out, size_t cap, const char *sg, int is_log, const char *name) {
    int n = snprintf(out, cap, EX_PREFIX "%s/%s%s", sg, is_log ? EX_LOGS_DIR "/" : "", name);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static int ex_option_false(const char *value) {
    return value != NULL &&
           (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0);
}

static const char *ex_level_name(uint32_t level) {
    switch (level) {
    case AFD_LEVEL_FULL: return "full";
    case AFD_LEVEL_INCREMENTAL: return "incremental";
    case AFD_LEVEL_DIFFERENTIAL: return "differential";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------------------------------- */
/* session                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL ex_open(const afd_open_params *params, afd_session **out) {
    return su_session_open(params, sizeof(afd_session), out);
}

static void AFD_CALL ex_close(afd_session *s) {
    size_t i;
    if (s == NULL) return;
    su_file_out_close(&s->out);
    su_file_in_abort(&s->in); /* an unfinished restored file is not left behind */
    for (i = 0; i < s->sg_count; i++) free(s->sgs[i].name);
    for (i = 0; i < s->item_count; i++) free(s->items[i].name);
    for (i = 0; i < s->rlog_count; i++) free(s->rlogs[i].sg);
    free(s->sgs);
    free(s->items);
    free(s->rlogs);
    free(s->store);
    free(s);
}

/* ------------------------------------------------------------------------------------------- */
/* checkpoint state                                                                             */
/* ------------------------------------------------------------------------------------------- */

static void ex_free_refs(ex_ref *refs, size_t count) {
    size_t i;
    for (i = 0; i < count; i++) free(refs[i].name);
    free(refs);
}

/* Parse a checkpoint blob. Returns 0 with refs and count set, -1 with `why` set when the blob is
 * not a checkpoint, -2 when out of memory. */
static int ex_parse_state(const uint8_t *blob, uint64_t len, ex_ref **refs, size_t *count,
                          char *why, size_t why_cap) {
    size_t magic_len = strlen(EX_STATE_MAGIC), cap = 0, pos;
    ex_ref *list = NULL;
    *refs = NULL;
    *count = 0;
    if (len < magic_len || memcmp(blob, EX_STATE_MAGIC, magic_len) != 0) {
        snprintf(why, why_cap, "it does not start with \"agentfd-exchange-checkpoint 1\"");
        return -1;
    }
    pos = magic_len;
    while (pos < len) {
        const uint8_t *line = blob + pos;
        const uint8_t *nl = memchr(line, '\n', (size_t)(len - pos));
        size_t line_len, name_len;
        uint32_t cp;
        size_t i;
        if (nl == NULL) {
            snprintf(why, why_cap, "its last line has no newline");
            goto bad;
        }
        line_len = (size_t)(nl - line);
        /* "<SG> XXXXXXXX": the name may itself contain spaces, the number is the last 8 bytes. */
        if (line_len < 10 || line[line_len - 9] != ' ' ||
            !ex_parse_hex8((const char *)line + line_len - 8, &cp)) {
            snprintf(why, why_cap, "line %lu is not \"<storage group> <8 hex digits>\"",
                     (unsigned long)*count + 2);
            goto bad;
        }
        name_len = line_len - 9;
        if (!su_valid_name_n((const char *)line, name_len)) {
            snprintf(why, why_cap, "line %lu names an invalid storage group",
                     (unsigned long)*count + 2);
            goto bad;
        }
        for (i = 0; i < *count; i++) {
            if (strlen(list[i].name) == name_len && memcmp(list[i].name, line, name_len) == 0) {
                snprintf(why, why_cap, "storage group %s is listed twice", list[i].name);
                goto bad;
            }
        }
        if (su_grow((void **)&list, &cap, *count, sizeof *list) != 0) goto nomem;
        list[*count].name = malloc(name_len + 1);
        if (list[*count].name == NULL) goto nomem;
        memcpy(list[*count].name, line, name_len);
        list[*count].name[name_len] = '\0';
        list[*count].cp = cp;
        (*count)++;
        pos += line_len + 1;
    }
    *refs = list;
    return 0;
bad:
    ex_free_refs(list, *count);
    *count = 0;
    return -1;
nomem:
    ex_free_refs(list, *count);
    *count = 0;
    return -2;
}

/* The new checkpoint as text, malloc'd. */
static char *ex_format_state(afd_session *s, size_t *len) {
    size_t cap = strlen(EX_STATE_MAGIC) + 1, i, used;
    char *text;
    for (i = 0; i < s->sg_count; i++) cap += strlen(s->sgs[i].name) + 10;
    text = malloc(cap);
    if (text == NULL) return NULL;
    used = (size_t)snprintf(text, cap, "%s", EX_STATE_MAGIC);
    for (i = 0; i < s->sg_count; i++) {
        if (!s->sgs[i].has_cp) continue; /* no log saved yet: the next job saves it all */
        used += (size_t)snprintf(text + used, cap - used, "%s %08lX\n", s->sgs[i].name,
                                 (unsigned long)s->sgs[i].new_cp);
    }
    *len = used;
    return text;
}

/* ------------------------------------------------------------------------------------------- */
/* scanning the store                                                                           */
/* ------------------------------------------------------------------------------------------- */

static int32_t ex_nomem(afd_session *s) {
    return su_fail(&s->base, AFD_E_NOMEM, "out of memory while listing the store %s", s->store);
}

static int32_t ex_add_item(afd_session *s, size_t sg, int is_log, uint32_t number, const char *name,
                           int64_t size) {
    ex_item *it;
    if (su_grow((void **)&s->items, &s->item_cap, s->item_count, sizeof *s->items) != 0) {
        return ex_nomem(s);
    }
    it = &s->items[s->item_count];
    memset(it, 0, sizeof *it);
    it->name = su_strdup(name);
    if (it->name == NULL) return ex_nomem(s);
    it->sg = sg;
    it->is_log = is_log;
    it->number = number;
    it->size = size;
    s->item_count++;
    return AFD_OK;
}

/* The names in `dir`, a directory of the store (su_list_dir), or NULL with the message set. */
static char **ex_list_store_dir(afd_session *s, const char *dir, size_t *count) {
    char **names = su_list_dir(dir, count);
    if (names == NULL) {
        int err = errno;
        su_fail(&s->base, AFD_E_IO, "cannot list %s: %s; check that agentfd may read the store",
                dir, su_strerror(&s->base, err));
    }
    return names;
}

static int ex_cmp_logs(const void *a, const void *b) {
    const ex_item *x = a, *y = b;
    if (x->number != y->number) return x->number < y->number ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int32_t ex_scan_logs(afd_session *s, size_t sg, const char *logs_dir) {
    size_t count, i, first = s->item_count;
    char **names = ex_list_store_dir(s, logs_dir, &count);
    int32_t rc = AFD_OK;
    if (names == NULL) return AFD_E_IO;
    for (i = 0; i < count && rc == AFD_OK; i++) {
        char path[SU_PATH_MAX];
        su_stat st;
        uint32_t number;
        if (!ex_parse_log_name(names[i], &number)) {
            su_log(&s->base, AFD_LOG_DEBUG,
                   "ignoring %s/%s: not a transaction log (E<8 hex digits>.log)", logs_dir,
                   names[i]);
            continue;
        }
        if (su_join(path, sizeof path, logs_dir, names[i]) != 0 || su_stat_path(path, &st) != 0 ||
            !st.is_regular) {
            su_log(&s->base, AFD_LOG_DEBUG, "ignoring %s/%s: not a regular file", logs_dir,
                   names[i]);
            continue;
        }
        rc = ex_add_item(s, sg, 1, number, names[i], st.size);
        if (rc == AFD_OK && (!s->sgs[sg].has_logs || number > s->sgs[sg].newest_log)) {
            s->sgs[sg].has_logs = 1;
            s->sgs[sg].newest_log = number;
        }
    }
    su_free_list(names, count);
    if (rc == AFD_OK) qsort(s->items + first, s->item_count - first, sizeof *s->items, ex_cmp_logs);
    return rc;
}

static int32_t ex_scan_sg(afd_session *s, size_t sg, const char *sg_dir) {
    size_t count, i;
    char **names = ex_list_store_dir(s, sg_dir, &count);
    char logs_dir[SU_PATH_MAX];
    int have_logs = 0;
    int32_t rc = AFD_OK;
    if (names == NULL) return AFD_E_IO;
    for (i = 0; i < count && rc == AFD_OK; i++) {
        char path[SU_PATH_MAX];
        su_stat st;
        if (su_join(path, sizeof path, sg_dir, names[i]) != 0 || su_stat_path(path, &st) != 0) {
            su_log(&s->base, AFD_LOG_DEBUG, "ignoring %s/%s: cannot stat it", sg_dir, names[i]);
            continue;
        }
        if (strcmp(names[i], EX_LOGS_DIR) == 0 && st.is_dir) {
            memcpy(logs_dir, path, sizeof logs_dir);
            have_logs = 1;
        } else if (ex_is_database_name(names[i]) && st.is_regular) {
            if (!su_valid_name(names[i])) {
                su_log(&s->base, AFD_LOG_WARNING,
                       "skipping %s: its name cannot be restored on every platform; rename it",
                       path);
                continue;
            }
            rc = ex_add_item(s, sg, 0, 0, names[i], st.size);
        } else {
            su_log(&s->base, AFD_LOG_DEBUG,
                   "ignoring %s: not a database (.edb, .stm) or the logs directory", path);
        }
    }
    su_free_list(names, count);
    if (rc == AFD_OK && have_logs) rc = ex_scan_logs(s, sg, logs_dir);
    return rc;
}

static int32_t ex_scan_store(afd_session *s) {
    size_t count, i;
    char **names = su_list_dir(s->store, &count);
    int32_t rc = AFD_OK;
    if (names == NULL) {
        int err = errno;
        return su_fail(&s->base, AFD_E_IO,
                       "cannot list the store %s: %s; check the job option store", s->store,
                       su_strerror(&s->base, err));
    }
    for (i = 0; i < count && rc == AFD_OK; i++) {
        char path[SU_PATH_MAX];
        su_stat st;
        ex_sg *sg;
        if (su_join(path, sizeof path, s->store, names[i]) != 0 || su_stat_path(path, &st) != 0 ||
            !st.is_dir) {
            su_log(&s->base, AFD_LOG_DEBUG, "ignoring %s/%s: not a storage group directory",
                   s->store, names[i]);
            continue;
        }
        if (!su_valid_name(names[i])) {
            su_log(&s->base, AFD_LOG_WARNING,
                   "skipping storage group %s: its name cannot be restored on every platform",
                   path);
            continue;
        }
        if (su_grow((void **)&s->sgs, &s->sg_cap, s->sg_count, sizeof *s->sgs) != 0) {
            rc = ex_nomem(s);
            break;
        }
        sg = &s->sgs[s->sg_count];
        memset(sg, 0, sizeof *sg);
        sg->name = su_strdup(names[i]);
        if (sg->name == NULL) {
            rc = ex_nomem(s);
            break;
        }
        s->sg_count++;
        rc = ex_scan_sg(s, s->sg_count - 1, path);
    }
    su_free_list(names, count);
    return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* backup                                                                                       */
/* ------------------------------------------------------------------------------------------- */

/* Read the reference checkpoint (generation 2, incremental/differential). Lowers the level to
 * full when there is no usable one. */
static int32_t ex_load_reference(afd_session *s, afd_backup_params *params, ex_ref **refs,
                                 size_t *ref_count) {
#if AFD_TARGET_ABI >= 2
    uint64_t len = 0;
    uint8_t *blob;
    char why[200];
    int parsed;
    *refs = NULL;
    *ref_count = 0;
    if (s->level == AFD_LEVEL_FULL) return AFD_OK;
    blob = su_state_get(&s->base, &len);
    if (blob == NULL) {
        su_log(&s->base, AFD_LOG_WARNING,
               "no checkpoint from a previous backup; saving the whole store (full)");
        s->level = AFD_LEVEL_FULL;
    } else {
        parsed = ex_parse_state(blob, len, refs, ref_count, why, sizeof why);
        free(blob);
        if (parsed == -2) return ex_nomem(s);
        if (parsed != 0) {
            su_log(&s->base, AFD_LOG_WARNING,
                   "the checkpoint of the previous backup is unusable (%s); "
                   "saving the whole store (full)",
                   why);
            s->level = AFD_LEVEL_FULL;
        }
    }
    if (s->level == AFD_LEVEL_FULL && AFD_HAS_FIELD(params, afd_backup_params, delivered_level)) {
        params->delivered_level = AFD_LEVEL_FULL;
    }
#else
    (void)params;
    *refs = NULL;
    *ref_count = 0;
#endif
    return AFD_OK;
}

/* Decide per item whether it is saved or only reported as seen, and warn about broken chains. */
static void ex_plan(afd_session *s, const ex_ref *refs, size_t ref_count) {
    size_t i, j;
    for (i = 0; i < ref_count; i++) {
        for (j = 0; j < s->sg_count; j++) {
            if (strcmp(refs[i].name, s->sgs[j].name) == 0) {
                s->sgs[j].in_ref = 1;
                s->sgs[j].ref_cp = refs[i].cp;
                s->sgs[j].has_cp = 1;
                s->sgs[j].new_cp = refs[i].cp;
                break;
            }
        }
        if (j == s->sg_count) {
            su_log(&s->base, AFD_LOG_INFO,
                   "storage group %s is in the checkpoint but no longer in the store; dropping it",
                   refs[i].name);
        }
    }
    for (i = 0; i < s->item_count; i++) {
        ex_item *it = &s->items[i];
        const ex_sg *sg = &s->sgs[it->sg];
        if (s->level == AFD_LEVEL_FULL || !sg->in_ref) {
            it->save = 1;
        } else {
            it->save = it->is_log && it->number > sg->ref_cp;
        }
    }
    if (s->level == AFD_LEVEL_FULL) return;
    for (j = 0; j < s->sg_count; j++) {
        const ex_sg *sg = &s->sgs[j];
        uint32_t lowest_new = 0;
        int any_new = 0;
        if (!sg->in_ref) {
            su_log(
                &s->base, AFD_LOG_INFO,
                "storage group %s is not in the checkpoint; saving its databases and all its logs",
                sg->name);
            continue;
        }
        for (i = 0; i < s->item_count; i++) {
            const ex_item *it = &s->items[i];
            if (it->sg == j && it->is_log && it->number > sg->ref_cp &&
                (!any_new || it->number < lowest_new)) {
                lowest_new = it->number;
                any_new = 1;
            }
        }
        if (sg->has_logs && sg->newest_log < sg->ref_cp) {
            su_log(&s->base, AFD_LOG_WARNING,
                   "storage group %s: the newest log E%08lX.log is older than the checkpoint "
                   "E%08lX.log; the store was recreated, run a full backup",
                   sg->name, (unsigned long)sg->newest_log, (unsigned long)sg->ref_cp);
        } else if (any_new && lowest_new > sg->ref_cp + 1) {
            su_log(&s->base, AFD_LOG_WARNING,
                   "storage group %s: the logs after the checkpoint E%08lX.log start at E%08lX.log "
                   "(%lu missing); a restore stops at the gap, run a full backup",
                   sg->name, (unsigned long)sg->ref_cp, (unsigned long)lowest_new,
                   (unsigned long)(lowest_new - sg->ref_cp - 1));
        }
    }
}

static int32_t AFD_CALL ex_backup_prepare(afd_session *s, afd_backup_params *params) {
    ex_ref *refs = NULL;
    size_t ref_count = 0;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_backup_prepare_once(&s->base, &s->prepare_called, params);
    if (rc != AFD_OK) return rc;
    s->level = params->level;
    if (s->level != AFD_LEVEL_FULL && (s->base.abi < 2 || (s->level != AFD_LEVEL_INCREMENTAL &&
                                                           s->level != AFD_LEVEL_DIFFERENTIAL))) {
        return su_fail(&s->base, AFD_E_UNSUPPORTED,
                       "backup level %lu is not offered with ABI generation %lu; use a full backup",
                       (unsigned long)params->level, (unsigned long)s->base.abi);
    }
    rc = su_option_dir(&s->base, &ex_store_option, &s->store);
    if (rc != AFD_OK) return rc;
    rc = ex_load_reference(s, params, &refs, &ref_count);
    if (rc != AFD_OK) return rc;
    rc = ex_scan_store(s);
    if (rc == AFD_OK) ex_plan(s, refs, ref_count);
    ex_free_refs(refs, ref_count);
    if (rc != AFD_OK) return rc;
    su_log(&s->base, AFD_LOG_INFO, "%s backup of the store %s: %lu storage groups",
           ex_level_name(s->level), s->store, (unsigned long)s->sg_count);
    s->prepared = 1;
    return AFD_OK;
}

static int32_t ex_store_checkpoint(afd_session *s) {
#if AFD_TARGET_ABI >= 2
    size_t len = 0;
    char *text;
    int32_t rc;
    if (s->base.abi < 2) return AFD_OK;
    text = ex_format_state(s, &len);
    if (text == NULL) return ex_nomem(s);
    rc = su_state_set(&s->base, text, len);
    free(text);
    if (rc != AFD_OK) {
        return su_fail(&s->base, rc,
                       "the host refused the log checkpoint (%lu bytes, code %ld); "
                       "the next incremental would have no reference, run a full backup",
                       (unsigned long)len, (long)rc);
    }
#else
    (void)s;
#endif
    return AFD_OK;
}

static int32_t AFD_CALL ex_backup_next_file(afd_session *s, const afd_file **out) {
    int32_t rc;
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    if (s->done) { /* called again after AFD_DONE (so it was prepared and no file is out) */
        *out = NULL;
        return AFD_DONE;
    }
    rc = su_next_file_begin(&s->base, out, s->prepared, s->out.active, s->out.path,
                            "listing the Exchange store");
    if (rc != AFD_OK) return rc;
    while (s->cursor < s->item_count) {
        ex_item *it = &s->items[s->cursor++];
        ex_sg *sg = &s->sgs[it->sg];
        su_stat st;
        if (ex_logical_path(s->out.path, sizeof s->out.path, sg->name, it->is_log, it->name) != 0 ||
            ex_object_path(s->out.fs_path, sizeof s->out.fs_path, s->store, sg->name, it->is_log,
                           it->name) != 0) {
            return su_fail(&s->base, AFD_E_INVALID, "path too long in storage group %s: %s",
                           sg->name, it->name);
        }
        if (!su_included(&s->base, s->out.path)) {
            su_log(&s->base, AFD_LOG_DEBUG, "%s is excluded by the fileset", s->out.path);
            continue;
        }
        rc = su_stat_to_save(&s->base, s->out.fs_path, "the store", &st);
        if (rc == SU_GONE) continue;
        if (rc != AFD_OK) return rc;
        if (!st.is_regular) {
            su_log(&s->base, AFD_LOG_WARNING, "%s is no longer a regular file; skipping it",
                   s->out.fs_path);
            continue;
        }
        it->size = st.size;
        it->handed = 1;
        if (it->is_log && it->save && (!sg->has_cp || it->number > sg->new_cp)) {
            sg->has_cp = 1;
            sg->new_cp = it->number;
        }
        su_file_out_set(&s->out, AFD_KIND_VIRTUAL, &st, it->save);
        *out = &s->out.file;
        return AFD_OK;
    }
    rc = ex_store_checkpoint(s);
    if (rc != AFD_OK) return rc;
    s->done = 1;
    return AFD_DONE;
}

static int32_t AFD_CALL ex_backup_start_stream(afd_session *s, uint32_t index) {
    return s != NULL ? su_file_out_start_stream(&s->base, &s->out, index) : AFD_E_INVALID;
}

static int64_t AFD_CALL ex_backup_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    return s != NULL ? su_file_out_read(&s->base, &s->out, buf, cap, "reading the Exchange store")
                     : AFD_E_INVALID;
}

static int32_t AFD_CALL ex_backup_end_stream(afd_session *s) {
    return s != NULL ? su_file_out_end_stream(&s->base, &s->out) : AFD_E_INVALID;
}

static int32_t AFD_CALL ex_backup_end_file(afd_session *s) {
    return s != NULL ? su_file_out_end_file(&s->base, &s->out) : AFD_E_INVALID;
}

#if AFD_TARGET_ABI >= 2
static int32_t AFD_CALL ex_backup_finish(afd_session *s, int32_t status) {
    char *option;
    size_t j, i, failed = 0;
    char first_failure[SU_PATH_MAX + 200];
    if (s == NULL) return AFD_E_INVALID;
    if (status != AFD_STATUS_OK) {
        su_log(&s->base, AFD_LOG_WARNING, "the job failed: transaction log truncation skipped");
        return AFD_OK;
    }
    if (!s->done) {
        su_log(&s->base, AFD_LOG_WARNING,
               "the backup did not hand out every file: transaction log truncation skipped");
        return AFD_OK;
    }
    if (s->level != AFD_LEVEL_FULL && s->level != AFD_LEVEL_INCREMENTAL) {
        su_log(&s->base, AFD_LOG_INFO,
               "%s backup: transaction logs are kept "
               "(only full and incremental backups truncate them)",
               ex_level_name(s->level));
        return AFD_OK;
    }
    option = su_option(&s->base, "truncate_logs");
    if (ex_option_false(option)) {
        su_log(&s->base, AFD_LOG_INFO, "truncate_logs=%s: transaction logs are kept", option);
        free(option);
        return AFD_OK;
    }
    free(option);
    first_failure[0] = '\0';
    for (j = 0; j < s->sg_count; j++) {
        const ex_sg *sg = &s->sgs[j];
        size_t truncated = 0;
        if (!sg->has_logs) continue;
        for (i = 0; i < s->item_count; i++) {
            const ex_item *it = &s->items[i];
            char path[SU_PATH_MAX];
            if (it->sg != j || !it->is_log || !it->handed) continue;
            if (!sg->has_cp || it->number > sg->new_cp || it->number >= sg->newest_log) continue;
            if (ex_object_path(path, sizeof path, s->store, sg->name, 1, it->name) != 0) continue;
            if (su_remove(path) != 0) {
                int err = errno;
                if (err == ENOENT) continue;
                if (failed++ == 0) {
                    snprintf(first_failure, sizeof first_failure, "%s: %s", path,
                             su_strerror(&s->base, err));
                }
                continue;
            }
            truncated++;
        }
        su_log(&s->base, AFD_LOG_INFO,
               "storage group %s: truncated %lu transaction logs (kept E%08lX.log)", sg->name,
               (unsigned long)truncated, (unsigned long)sg->newest_log);
    }
    if (failed > 0) {
        return su_fail(
            &s->base, AFD_E_IO,
            "could not truncate %lu transaction logs (first: %s); the backup is complete, "
            "fix the permissions and the next full or incremental backup truncates them",
            (unsigned long)failed, first_failure);
    }
    return AFD_OK;
}

static int32_t AFD_CALL ex_estimate(afd_session *s, afd_estimate *out) {
    size_t i;
    int64_t files = 0, bytes = 0;
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    if (!s->prepared) return su_fail(&s->base, AFD_E_INVALID, "estimate before backup_prepare");
    for (i = 0; i < s->item_count; i++) {
        const ex_item *it = &s->items[i];
        char path[SU_PATH_MAX];
        if (!it->save) continue;
        if (ex_logical_path(path, sizeof path, s->sgs[it->sg].name, it->is_log, it->name) != 0) {
            continue;
        }
        if (!su_included(&s->base, path)) continue;
        files++;
        bytes += it->size;
    }
    if (AFD_HAS_FIELD(out, afd_estimate, files)) out->files = files;
    if (AFD_HAS_FIELD(out, afd_estimate, bytes)) out->bytes = bytes;
    return AFD_OK;
}
#endif

/* ------------------------------------------------------------------------------------------- */
/* restore                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL ex_restore_prepare(afd_session *s, const afd_restore_params *params) {
    if (s == NULL) return AFD_E_INVALID;
    return su_restore_prepare(&s->base, &s->restore_ready, params, &ex_store_option, s->target);
}

static int32_t AFD_CALL ex_restore_start_file(afd_session *s, const afd_file *file) {
    char parts[3][SU_NAME_MAX + 1];
    char final_path[SU_PATH_MAX];
    const char *rest, *name;
    int count, is_log;
    uint32_t number = 0;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_restore_start_allowed(&s->base, s->restore_ready, file);
    if (rc != AFD_OK) return rc;
    rest = su_logical_rest(file->path, EX_PREFIX);
    count = rest != NULL ? su_split_path(rest, parts, 3) : -1;
    is_log = count == 3;
    if (count == 2 && ex_is_database_name(parts[1])) {
        name = parts[1];
    } else if (count == 3 && strcmp(parts[1], EX_LOGS_DIR) == 0 &&
               ex_parse_log_name(parts[2], &number)) {
        name = parts[2];
    } else {
        return su_refuse_path(&s->base, file,
                              "an Exchange object path "
                              "(/@exchange/<storage group>/<database>.edb|.stm or "
                              "/@exchange/<storage group>/logs/E<8 hex digits>.log)");
    }
    if (ex_object_path(final_path, sizeof final_path, s->target, parts[0], is_log, name) != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "restore path too long for %s", file->path);
    }
    rc = su_file_in_start(&s->base, &s->in, file, final_path);
    if (rc != AFD_OK) return rc;
    memcpy(s->rs_sg, parts[0], sizeof s->rs_sg);
    s->rs_is_log = is_log;
    s->rs_number = number;
    return AFD_OK;
}

static int32_t AFD_CALL ex_restore_write(afd_session *s, uint32_t stream_index, const uint8_t *buf,
                                         uint64_t len) {
    return s != NULL ? su_file_in_write(&s->base, &s->in, stream_index, buf, len,
                                        "restoring the Exchange store")
                     : AFD_E_INVALID;
}

static int32_t ex_record_log(afd_session *s) {
    ex_rlog *r;
    if (su_grow((void **)&s->rlogs, &s->rlog_cap, s->rlog_count, sizeof *s->rlogs) != 0) {
        return su_fail(&s->base, AFD_E_NOMEM, "out of memory");
    }
    r = &s->rlogs[s->rlog_count];
    r->sg = su_strdup(s->rs_sg);
    if (r->sg == NULL) return su_fail(&s->base, AFD_E_NOMEM, "out of memory");
    r->number = s->rs_number;
    s->rlog_count++;
    return AFD_OK;
}

static int32_t AFD_CALL ex_restore_end_file(afd_session *s, int32_t status) {
    int committed = 0;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_file_in_end(&s->base, &s->in, status, &committed);
    if (rc != AFD_OK || !committed) return rc;
    if (s->rs_is_log) return ex_record_log(s);
    s->db_restored++;
    return AFD_OK;
}

static int ex_cmp_rlogs(const void *a, const void *b) {
    const ex_rlog *x = a, *y = b;
    int c = strcmp(x->sg, y->sg);
    if (c != 0) return c;
    return x->number < y->number ? -1 : x->number > y->number ? 1 : 0;
}

static int32_t AFD_CALL ex_restore_finish(afd_session *s) {
    size_t i;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_file_in_finish(&s->base, &s->in, s->restore_ready);
    if (rc != AFD_OK) return rc;
    qsort(s->rlogs, s->rlog_count, sizeof *s->rlogs, ex_cmp_rlogs);
    for (i = 1; i < s->rlog_count; i++) {
        const ex_rlog *prev = &s->rlogs[i - 1], *cur = &s->rlogs[i];
        if (strcmp(prev->sg, cur->sg) != 0 || cur->number <= prev->number + 1) continue;
        su_log(&s->base, AFD_LOG_WARNING,
               "storage group %s: the restored logs are not contiguous, E%08lX.log is missing "
               "(after E%08lX.log); recovery stops at the gap",
               cur->sg, (unsigned long)prev->number + 1, (unsigned long)prev->number);
        /* only the first gap of each storage group */
        while (i + 1 < s->rlog_count && strcmp(s->rlogs[i + 1].sg, cur->sg) == 0) i++;
    }
    su_log(&s->base, AFD_LOG_INFO, "store rebuilt at %s: %lu databases, %lu logs", s->target,
           (unsigned long)s->db_restored, (unsigned long)s->rlog_count);
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* entry points                                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* The self-description and the generation-1 entry points: the same in both tables. */
#define EX_INFO_AND_GEN1_ENTRY_POINTS                                                              \
    ex_info, (uint32_t)(sizeof ex_info / sizeof ex_info[0]), 0, /* info, info_count, reserved */   \
        ex_open, ex_close, su_session_last_error,                                                  \
        ex_backup_prepare, ex_backup_next_file, ex_backup_start_stream, ex_backup_read,            \
        ex_backup_end_stream, ex_backup_end_file,                                                  \
        ex_restore_prepare, ex_restore_start_file, ex_restore_write, ex_restore_end_file,          \
        ex_restore_finish

/* For a generation-1 host: a table that ends before the generation-2 fields. */
static const afd_agent_api ex_api_gen1 = {
    offsetof(afd_agent_api, backup_finish),
    AFD_ABI_GEN_1,
    AFD_CAP_BACKUP_FULL | AFD_CAP_RESTORE | AFD_CAP_THREAD_SAFE | AFD_CAP_CANCEL,
    EX_INFO_AND_GEN1_ENTRY_POINTS,
#if AFD_TARGET_ABI >= 2
    NULL, /* beyond struct_size: a generation-1 host never reads these */
    NULL,
#endif
};

#if AFD_TARGET_ABI >= 2
/* Generations 2 and 3 share a table (3 only adds host functions: restore_open and its kin, which
 * sample_util.c uses when the host offers them). */
#define EX_GEN2_TABLE(generation)                                                                  \
    {                                                                                              \
        sizeof(afd_agent_api), generation,                                                         \
            AFD_CAP_BACKUP_FULL | AFD_CAP_BACKUP_INCREMENTAL | AFD_CAP_BACKUP_DIFFERENTIAL |       \
                AFD_CAP_RESTORE | AFD_CAP_OWN_STATE | AFD_CAP_ACCURATE | AFD_CAP_THREAD_SAFE |     \
                AFD_CAP_CANCEL | AFD_CAP_ESTIMATE,                                                 \
            EX_INFO_AND_GEN1_ENTRY_POINTS, ex_backup_finish, ex_estimate                           \
    }
static const afd_agent_api ex_api_gen2 = EX_GEN2_TABLE(AFD_ABI_GEN_2);
#endif
#if AFD_TARGET_ABI >= 3
static const afd_agent_api ex_api_gen3 = EX_GEN2_TABLE(AFD_ABI_GEN_3);
#endif

static const afd_agent_api *ex_table_for(uint32_t generation) {
#if AFD_TARGET_ABI >= 3
    if (generation == AFD_ABI_GEN_3) return &ex_api_gen3;
#endif
#if AFD_TARGET_ABI >= 2
    if (generation == AFD_ABI_GEN_2) return &ex_api_gen2;
#endif
    return generation == AFD_ABI_GEN_1 ? &ex_api_gen1 : NULL;
}

AFD_EXPORT const char *AFD_CALL Name(void) {
    return "MicrosoftExchange";
}

AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply) {
    return su_negotiate(request, reply, AFD_ABI_GEN_1, AFD_TARGET_ABI, ex_table_for);
}
