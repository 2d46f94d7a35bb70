/*
 * mssql.c: the "MSSQL" sample agent.
 *
 * Backs up a directory of SQL Server-style databases. Job options:
 *   data_dir  (required) one subdirectory per database, each holding that database's files
 *             (e.g. sales/sales.mdf, sales/sales_log.ldf): regular files only, not recursive; a
 *             subdirectory inside a database is an error.
 *   instance  (default "MSSQLSERVER") the instance name used in the logical path.
 *
 * Every database becomes one object, /@mssql/<instance>/<db>.bak (AFD_KIND_VIRTUAL, mode 0640),
 * with exactly one stream: "data", AFD_STREAM_RAW_RESTORABLE. That stream is a self-contained
 * backup file: written to disk as it is, it is a usable <db>.bak that this agent's restore (or any
 * reader of the format below) turns back into the database directory.
 *
 * ---------------------------------------------------------------------------------------------
 * The .bak format, version 1. All integers are little-endian and are written byte by byte.
 * ---------------------------------------------------------------------------------------------
 *   header
 *     8 bytes   magic "AFDBAK01"
 *     u32       format version = 1
 *     u32       file count N
 *     i64       created_ns: when the backup was made (ns since 1970-01-01 UTC)
 *     u16 + n   database name: length, then that many bytes of UTF-8
 *     u16 + n   instance name: length, then that many bytes of UTF-8
 *   N times, one per file of the database (in bytewise name order)
 *     u16 + n   file name: length, then UTF-8 bytes (a plain name: no '/', '\', ':', NUL,
 *               not "." or "..", not empty)
 *     u32       POSIX mode bits (07777)
 *     i64       mtime_ns
 *     u64       size S
 *     S bytes   the file's content
 *   trailer
 *     8 bytes   magic "AFDBAKZZ"
 *     u32       CRC-32 (IEEE 802.3, the polynomial of zlib and PNG: reflected 0xEDB88320, initial
 *               value and final XOR 0xFFFFFFFF) of every byte from the first byte of the header
 *               through the last content byte (the trailer itself is not covered)
 *
 * Names are at most SU_NAME_MAX (1024) bytes. The stream's size is known before the first byte is
 * read, so size_hint is exact:
 *   8+4+4+8 + 2+len(db) + 2+len(instance) + sum over files (2+len(name) + 4+8+8 + size) + 8+4.
 *
 * Backup produces the stream incrementally in backup_read(): header, per-file headers and the
 * trailer are staged in a small buffer in the session, file content is read straight into the
 * host's buffer, and the CRC is computed on the way. A file whose size changes while it is read
 * fails the job (AFD_E_IO). Restore parses the stream incrementally, whatever the chunk sizes
 * (one byte at a time works), writes each file as "<name>.part" and renames them all into place
 * in restore_end_file, only once the magic, the structure and the CRC have checked out. A corrupt
 * stream is not refused byte by byte: its partial files are removed as soon as the damage shows,
 * the rest of the stream is ignored, and restore_end_file fails with AFD_E_IO
 * "the .bak stream is corrupt: ...". restore_write fails only on real I/O errors (a full disk).
 *
 * Generation 2 only.
 */
#include "sample_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_PREFIX "/@mssql/"
#define MS_MAGIC "AFDBAK01"
#define MS_TRAILER_MAGIC "AFDBAKZZ"
#define MS_FORMAT_VERSION 1u
#define MS_DEFAULT_INSTANCE "MSSQLSERVER"
#define MS_OBJECT_MODE 0640u

/* The job option `data_dir`: the directory of the databases, and the default restore target. */
static const su_dir_option ms_data_dir_option = {
    .key = "data_dir",
    .label = "data_dir",
    .set_it_to = "the directory that holds one subdirectory per database",
    .not_a_dir_hint = "set it to the directory that holds the databases",
    .max_len = SU_PATH_MAX - 2 * SU_NAME_MAX - 16, /* room for "/<db>/<file>.part" */
};

/* What the agent says about itself (afd_agent_api.info). */
static const afd_kv ms_info[] = {SU_SAMPLE_INFO(
    "2.0.1", "SQL Server-style databases, one self-contained .bak stream per database")};

/* The header is the largest staged piece: 8+4+4+8 + 2+name + 2+name. */
#define MS_STAGE_CAP (8 + 4 + 4 + 8 + 2 + SU_NAME_MAX + 2 + SU_NAME_MAX)

/* CRC-32 (IEEE), reflected polynomial 0xEDB88320: crc_table[n] is the CRC of the byte n. */
static const uint32_t ms_crc_table[256] = {
    0x00000000u, 0x77073096u, 0xEE0E612Cu, 0x990951BAu, 0x076DC419u, 0x706AF48Fu, 0xE963A535u,
    0x9E6495A3u, 0x0EDB8832u, 0x79DCB8A4u, 0xE0D5E91Eu, 0x97D2D988u, 0x09B64C2Bu, 0x7EB17CBDu,
    0xE7B82D07u, 0x90BF1D91u, 0x1DB71064u, 0x6AB020F2u, 0xF3B97148u, 0x84BE41DEu, 0x1ADAD47Du,
    0x6DDDE4EBu, 0xF4D4B551u, 0x83D385C7u, 0x136C9856u, 0x646BA8C0u, 0xFD62F97Au, 0x8A65C9ECu,
    0x14015C4Fu, 0x63066CD9u, 0xFA0F3D63u, 0x8D080DF5u, 0x3B6E20C8u, 0x4C69105Eu, 0xD56041E4u,
    0xA2677172u, 0x3C03E4D1u, 0x4B04D447u, 0xD20D85FDu, 0xA50AB56Bu, 0x35B5A8FAu, 0x42B2986Cu,
    0xDBBBC9D6u, 0xACBCF940u, 0x32D86CE3u, 0x45DF5C75u, 0xDCD60DCFu, 0xABD13D59u, 0x26D930ACu,
    0x51DE003Au, 0xC8D75180u, 0xBFD06116u, 0x21B4F4B5u, 0x56B3C423u, 0xCFBA9599u, 0xB8BDA50Fu,
    0x2802B89Eu, 0x5F058808u, 0xC60CD9B2u, 0xB10BE924u, 0x2F6F7C87u, 0x58684C11u, 0xC1611DABu,
    0xB6662D3Du, 0x76DC4190u, 0x01DB7106u, 0x98D220BCu, 0xEFD5102Au, 0x71B18589u, 0x06B6B51Fu,
    0x9FBFE4A5u, 0xE8B8D433u, 0x7807C9A2u, 0x0F00F934u, 0x9609A88Eu, 0xE10E9818u, 0x7F6A0DBBu,
    0x086D3D2Du, 0x91646C97u, 0xE6635C01u, 0x6B6B51F4u, 0x1C6C6162u, 0x856530D8u, 0xF262004Eu,
    0x6C0695EDu, 0x1B01A57Bu, 0x8208F4C1u, 0xF50FC457u, 0x65B0D9C6u, 0x12B7E950u, 0x8BBEB8EAu,
    0xFCB9887Cu, 0x62DD1DDFu, 0x15DA2D49u, 0x8CD37CF3u, 0xFBD44C65u, 0x4DB26158u, 0x3AB551CEu,
    0xA3BC0074u, 0xD4BB30E2u, 0x4ADFA541u, 0x3DD895D7u, 0xA4D1C46Du, 0xD3D6F4FBu, 0x4369E96Au,
    0x346ED9FCu, 0xAD678846u, 0xDA60B8D0u, 0x44042D73u, 0x33031DE5u, 0xAA0A4C5Fu, 0xDD0D7CC9u,
    0x5005713Cu, 0x270241AAu, 0xBE0B1010u, 0xC90C2086u, 0x5768B525u, 0x206F85B3u, 0xB966D409u,
    0xCE61E49Fu, 0x5EDEF90Eu, 0x29D9C998u, 0xB0D09822u, 0xC7D7A8B4u, 0x59B33D17u, 0x2EB40D81u,
    0xB7BD5C3Bu, 0xC0BA6CADu, 0xEDB88320u, 0x9ABFB3B6u, 0x03B6E20Cu, 0x74B1D29Au, 0xEAD54739u,
    0x9DD277AFu, 0x04DB2615u, 0x73DC1683u, 0xE3630B12u, 0x94643B84u, 0x0D6D6A3Eu, 0x7A6A5AA8u,
    0xE40ECF0Bu, 0x9309FF9Du, 0x0A00AE27u, 0x7D079EB1u, 0xF00F9344u, 0x8708A3D2u, 0x1E01F268u,
    0x6906C2FEu, 0xF762575Du, 0x806567CBu, 0x196C3671u, 0x6E6B06E7u, 0xFED41B76u, 0x89D32BE0u,
    0x10DA7A5Au, 0x67DD4ACCu, 0xF9B9DF6Fu, 0x8EBEEFF9u, 0x17B7BE43u, 0x60B08ED5u, 0xD6D6A3E8u,
    0xA1D1937Eu, 0x38D8C2C4u, 0x4FDFF252u, 0xD1BB67F1u, 0xA6BC5767u, 0x3FB506DDu, 0x48B2364Bu,
    0xD80D2BDAu, 0xAF0A1B4Cu, 0x36034AF6u, 0x41047A60u, 0xDF60EFC3u, 0xA867DF55u, 0x316E8EEFu,
    0x4669BE79u, 0xCB61B38Cu, 0xBC66831Au, 0x256FD2A0u, 0x5268E236u, 0xCC0C7795u, 0xBB0B4703u,
    0x220216B9u, 0x5505262Fu, 0xC5BA3BBEu, 0xB2BD0B28u, 0x2BB45A92u, 0x5CB36A04u, 0xC2D7FFA7u,
    0xB5D0CF31u, 0x2CD99E8Bu, 0x5BDEAE1Du, 0x9B64C2B0u, 0xEC63F226u, 0x756AA39Cu, 0x026D930Au,
    0x9C0906A9u, 0xEB0E363Fu, 0x72076785u, 0x05005713u, 0x95BF4A82u, 0xE2B87A14u, 0x7BB12BAEu,
    0x0CB61B38u, 0x92D28E9Bu, 0xE5D5BE0Du, 0x7CDCEFB7u, 0x0BDBDF21u, 0x86D3D2D4u, 0xF1D4E242u,
    0x68DDB3F8u, 0x1FDA836Eu, 0x81BE16CDu, 0xF6B9265Bu, 0x6FB077E1u, 0x18B74777u, 0x88085AE6u,
    0xFF0F6A70u, 0x66063BCAu, 0x11010B5Cu, 0x8F659EFFu, 0xF862AE69u, 0x616BFFD3u, 0x166CCF45u,
    0xA00AE278u, 0xD70DD2EEu, 0x4E048354u, 0x3903B3C2u, 0xA7672661u, 0xD06016F7u, 0x4969474Du,
    0x3E6E77DBu, 0xAED16A4Au, 0xD9D65ADCu, 0x40DF0B66u, 0x37D83BF0u, 0xA9BCAE53u, 0xDEBB9EC5u,
    0x47B2CF7Fu, 0x30B5FFE9u, 0xBDBDF21Cu, 0xCABAC28Au, 0x53B39330u, 0x24B4A3A6u, 0xBAD03605u,
    0xCDD70693u, 0x54DE5729u, 0x23D967BFu, 0xB3667A2Eu, 0xC4614AB8u, 0x5D681B02u, 0x2A6F2B94u,
    0xB40BBE37u, 0xC30C8EA1u, 0x5A05DF1Bu, 0x2D02EF8Du,
};

static uint32_t ms_crc_update(uint32_t crc, const uint8_t *p, size_t n) {
    while (n-- > 0) crc = ms_crc_table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    return crc;
}
#define MS_CRC_INIT 0xFFFFFFFFu
#define MS_CRC_FINAL(crc) ((crc) ^ 0xFFFFFFFFu)

/* ---- little-endian encoding, byte by byte ---- */

static size_t ms_put_u16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    return 2;
}

static size_t ms_put_u32(uint8_t *p, uint32_t v) {
    int i;
    for (i = 0; i < 4; i++) p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
    return 4;
}

static size_t ms_put_u64(uint8_t *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++) p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
    return 8;
}

static uint32_t ms_get_u16(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static uint32_t ms_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t ms_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A length-prefixed name: u16 length + bytes. The caller guarantees len <= SU_NAME_MAX. */
static size_t ms_put_name(uint8_t *p, const char *name) {
    size_t len = strlen(name);
    size_t n = ms_put_u16(p, (uint32_t)len);
    memcpy(p + n, name, len);
    return n + len;
}

/* ------------------------------------------------------------------------------------------- */
/* session                                                                                      */
/* ------------------------------------------------------------------------------------------- */

typedef struct ms_file {
    char *name;
    char *fs; /* path on disk */
    uint32_t mode;
    int64_t mtime_ns;
    uint64_t size;
} ms_file;

typedef struct ms_pending { /* a restored file, complete but not yet renamed into place */
    su_part part;
    int64_t mtime_ns;
} ms_pending;

enum { PH_HEADER, PH_FILE_HEADER, PH_FILE_DATA, PH_TRAILER, PH_END };

enum {
    P_MAGIC,
    P_VERSION,
    P_COUNT,
    P_CREATED,
    P_DB_LEN,
    P_DB_NAME,
    P_INST_LEN,
    P_INST_NAME,
    P_FILE_NAME_LEN,
    P_FILE_NAME,
    P_FILE_MODE,
    P_FILE_MTIME,
    P_FILE_SIZE,
    P_FILE_DATA,
    P_TRAILER_MAGIC,
    P_TRAILER_CRC,
    P_END
};

struct afd_session {
    su_base base; /* first: see su_session_open() */

    /* ---- backup ---- */
    int prepare_called, prepared;
    char *data_dir;
    char *instance;
    int64_t created_ns;
    char **dbs;
    size_t db_count, cursor;
    int file_active, stream_active;
    const char *cur_db;
    char cur_path[SU_PATH_MAX];
    ms_file *files;
    size_t file_count, file_cap;
    afd_file file;
    afd_stream stream;
    /* the stream generator */
    int phase;
    size_t fidx;
    uint8_t stage[MS_STAGE_CAP];
    size_t stage_len, stage_pos;
    su_reader reader;
    uint64_t left; /* content bytes of the current file still to read */
    uint32_t crc;
    uint32_t read_calls;

    /* ---- restore ---- */
    int restore_ready;
    char target[SU_PATH_MAX];
    int rs_active, rs_skip;
    int rs_failed;  /* an I/O failure: restore_write and restore_end_file keep failing */
    int rs_corrupt; /* the stream is corrupt: the rest is ignored, restore_end_file fails */
    char rs_corrupt_detail[SU_NAME_MAX + 200];
    char rs_db[SU_NAME_MAX + 1];
    char rs_dir[SU_PATH_MAX];
    uint32_t write_calls;
    /* the stream parser */
    int ps;
    uint8_t fld[SU_NAME_MAX + 8];
    size_t need, have;
    uint32_t pcrc;
    uint32_t count, files_done;
    uint32_t f_mode;
    int64_t f_mtime;
    uint64_t f_left;
    su_part cur;
    ms_pending *pending;
    size_t pending_count, pending_cap;
};

static void ms_free_files(afd_session *s) {
    size_t i;
    for (i = 0; i < s->file_count; i++) {
        free(s->files[i].name);
        free(s->files[i].fs);
    }
    s->file_count = 0;
}

static void ms_discard_restore(afd_session *s) {
    size_t i;
    su_part_abort(&s->cur);
    for (i = 0; i < s->pending_count; i++) su_part_abort(&s->pending[i].part);
    s->pending_count = 0;
}

static int32_t AFD_CALL ms_open(const afd_open_params *params, afd_session **out) {
    return su_session_open(params, sizeof(afd_session), out);
}

static void AFD_CALL ms_close(afd_session *s) {
    if (s == NULL) return;
    su_reader_close(&s->reader);
    ms_discard_restore(s); /* an unfinished restore leaves no .part files behind */
    ms_free_files(s);
    free(s->files);
    su_free_list(s->dbs, s->db_count);
    free(s->pending);
    free(s->data_dir);
    free(s->instance);
    free(s);
}

/* ------------------------------------------------------------------------------------------- */
/* backup                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL ms_backup_prepare(afd_session *s, afd_backup_params *params) {
    su_stat st;
    size_t count, i, kept = 0;
    char **names;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_backup_prepare_once(&s->base, &s->prepare_called, params);
    if (rc == AFD_OK) rc = su_full_backup_only(&s->base, params, "the MSSQL sample agent");
    if (rc != AFD_OK) return rc;
    s->created_ns = 0;
    if (AFD_HAS_FIELD(params, afd_backup_params, job_start_ns)) {
        s->created_ns = params->job_start_ns;
    }
    if (s->created_ns <= 0) s->created_ns = (int64_t)time(NULL) * 1000000000LL;

    s->instance = su_option(&s->base, "instance");
    if (s->instance == NULL) s->instance = su_strdup(MS_DEFAULT_INSTANCE);
    if (s->instance == NULL) return su_fail(&s->base, AFD_E_NOMEM, "out of memory");
    if (!su_valid_name(s->instance)) {
        return su_fail(
            &s->base, AFD_E_INVALID,
            "the job option instance \"%.200s\" is not a valid name (1 to %d bytes of UTF-8, "
            "no '/', '\\', ':' or control characters); fix the job option",
            s->instance, SU_NAME_MAX);
    }
    rc = su_option_dir(&s->base, &ms_data_dir_option, &s->data_dir);
    if (rc != AFD_OK) return rc;
    names = su_list_dir(s->data_dir, &count);
    if (names == NULL) {
        int err = errno;
        return su_fail(&s->base, AFD_E_IO,
                       "cannot list data_dir %s: %s; check that agentfd may read it", s->data_dir,
                       su_strerror(&s->base, err));
    }
    /* Keep the databases (valid directory names) in place, free the rest. */
    for (i = 0; i < count; i++) {
        char path[SU_PATH_MAX];
        int is_db = su_join(path, sizeof path, s->data_dir, names[i]) == 0 &&
                    su_stat_path(path, &st) == 0 && st.is_dir;
        if (!is_db) {
            su_log(&s->base, AFD_LOG_DEBUG, "ignoring %s/%s: not a database directory", s->data_dir,
                   names[i]);
        } else if (!su_valid_name(names[i]) || strlen(names[i]) + 4 > SU_NAME_MAX) {
            su_log(&s->base, AFD_LOG_WARNING,
                   "skipping database %s: its name cannot be restored on every platform; rename it",
                   path);
            is_db = 0;
        }
        if (is_db) {
            names[kept++] = names[i];
        } else {
            free(names[i]);
        }
    }
    s->dbs = names;
    s->db_count = kept;
    su_log(&s->base, AFD_LOG_INFO, "backup of instance %s in %s: %lu databases", s->instance,
           s->data_dir, (unsigned long)kept);
    s->prepared = 1;
    return AFD_OK;
}

/* List and stat the files of database `db`. */
static int32_t ms_scan_db(afd_session *s, const char *db, const char *dir) {
    size_t count, i;
    char **names = su_list_dir(dir, &count);
    int32_t rc = AFD_OK;
    ms_free_files(s);
    if (names == NULL) {
        int err = errno;
        return su_fail(&s->base, AFD_E_IO,
                       "cannot list database %s (%s): %s; check that agentfd may read it", db, dir,
                       su_strerror(&s->base, err));
    }
    if ((uint64_t)count > 0xFFFFFFFFu) {
        rc = su_fail(&s->base, AFD_E_FAIL, "database %s has too many files", db);
    }
    for (i = 0; i < count && rc == AFD_OK; i++) {
        char path[SU_PATH_MAX];
        su_stat st;
        ms_file *f;
        if (su_join(path, sizeof path, dir, names[i]) != 0) {
            rc = su_fail(&s->base, AFD_E_INVALID, "path too long in database %s: %s", db, names[i]);
            break;
        }
        if (su_stat_path(path, &st) != 0) {
            int err = errno;
            rc = su_fail(&s->base, AFD_E_IO,
                         "cannot stat %s: %s; check that agentfd may read the database", path,
                         su_strerror(&s->base, err));
            break;
        }
        if (st.is_dir) {
            rc = su_fail(&s->base, AFD_E_FAIL,
                         "database %s contains a subdirectory (%s); a database directory must hold "
                         "only its files: move the subdirectory out of %s",
                         db, path, dir);
            break;
        }
        if (!st.is_regular) {
            rc = su_fail(&s->base, AFD_E_FAIL,
                         "database %s contains %s, which is not a regular file; remove it from %s",
                         db, path, dir);
            break;
        }
        if (!su_valid_name(names[i])) {
            rc = su_fail(
                &s->base, AFD_E_FAIL,
                "database file %s has a name that cannot be restored on every platform; rename it",
                path);
            break;
        }
        if (su_grow((void **)&s->files, &s->file_cap, s->file_count, sizeof *s->files) != 0) {
            rc = su_fail(&s->base, AFD_E_NOMEM, "out of memory");
            break;
        }
        f = &s->files[s->file_count];
        f->name = su_strdup(names[i]);
        f->fs = su_strdup(path);
        if (f->name == NULL || f->fs == NULL) {
            free(f->name);
            free(f->fs);
            rc = su_fail(&s->base, AFD_E_NOMEM, "out of memory");
            break;
        }
        f->mode = st.mode;
        f->mtime_ns = st.mtime_ns;
        f->size = (uint64_t)st.size;
        s->file_count++;
    }
    su_free_list(names, count);
    return rc;
}

static int32_t AFD_CALL ms_backup_next_file(afd_session *s, const afd_file **out) {
    int32_t rc;
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    rc = su_next_file_begin(&s->base, out, s->prepared, s->file_active, s->cur_path,
                            "listing the databases");
    if (rc != AFD_OK) return rc;
    while (s->cursor < s->db_count) {
        const char *db = s->dbs[s->cursor++];
        char dir[SU_PATH_MAX];
        uint64_t total;
        int64_t newest = 0;
        size_t i;
        su_stat st;
        int n = snprintf(s->cur_path, sizeof s->cur_path, MS_PREFIX "%s/%s.bak", s->instance, db);
        if (n < 0 || (size_t)n >= sizeof s->cur_path ||
            su_join(dir, sizeof dir, s->data_dir, db) != 0) {
            return su_fail(&s->base, AFD_E_INVALID, "path too long for database %s", db);
        }
        if (!su_included(&s->base, s->cur_path)) {
            su_log(&s->base, AFD_LOG_DEBUG, "%s is excluded by the fileset", s->cur_path);
            continue;
        }
        if (su_stat_path(dir, &st) != 0 && errno == ENOENT) {
            su_log(&s->base, AFD_LOG_WARNING,
                   "database %s (%s) disappeared during the backup; skipping it", db, dir);
            continue;
        }
        rc = ms_scan_db(s, db, dir);
        if (rc != AFD_OK) return rc;
        total = 8 + 4 + 4 + 8 + 2 + strlen(db) + 2 + strlen(s->instance) + 8 + 4;
        for (i = 0; i < s->file_count; i++) {
            total += 2 + strlen(s->files[i].name) + 4 + 8 + 8 + s->files[i].size;
            if (i == 0 || s->files[i].mtime_ns > newest) newest = s->files[i].mtime_ns;
        }
        if (s->file_count == 0 && su_stat_path(dir, &st) == 0) newest = st.mtime_ns;
        memset(&s->stream, 0, sizeof s->stream);
        s->stream.struct_size = sizeof s->stream;
        s->stream.type = AFD_STREAM_DATA;
        s->stream.name = "data";
        s->stream.flags = AFD_STREAM_RAW_RESTORABLE;
        s->stream.size_hint = (int64_t)total;
        memset(&s->file, 0, sizeof s->file);
        s->file.struct_size = sizeof s->file;
        s->file.kind = AFD_KIND_VIRTUAL;
        s->file.path = s->cur_path;
        s->file.mode = MS_OBJECT_MODE;
        s->file.mtime_ns = newest;
        s->file.size = (int64_t)total;
        s->file.stream_count = 1;
        s->file.streams = &s->stream;
        s->cur_db = db;
        s->file_active = 1;
        *out = &s->file;
        return AFD_OK;
    }
    return AFD_DONE;
}

static void ms_stage_header(afd_session *s) {
    uint8_t *p = s->stage;
    size_t n = 0;
    memcpy(p, MS_MAGIC, 8);
    n += 8;
    n += ms_put_u32(p + n, MS_FORMAT_VERSION);
    n += ms_put_u32(p + n, (uint32_t)s->file_count);
    n += ms_put_u64(p + n, (uint64_t)s->created_ns);
    n += ms_put_name(p + n, s->cur_db);
    n += ms_put_name(p + n, s->instance);
    s->stage_len = n;
    s->stage_pos = 0;
}

static void ms_stage_file_header(afd_session *s, const ms_file *f) {
    uint8_t *p = s->stage;
    size_t n = 0;
    n += ms_put_name(p + n, f->name);
    n += ms_put_u32(p + n, f->mode);
    n += ms_put_u64(p + n, (uint64_t)f->mtime_ns);
    n += ms_put_u64(p + n, f->size);
    s->stage_len = n;
    s->stage_pos = 0;
}

static void ms_stage_trailer(afd_session *s) {
    memcpy(s->stage, MS_TRAILER_MAGIC, 8);
    ms_put_u32(s->stage + 8, MS_CRC_FINAL(s->crc));
    s->stage_len = 12;
    s->stage_pos = 0;
}

/* After the header or a file's content: the next file's header, or the trailer. */
static void ms_next_piece(afd_session *s) {
    if (s->fidx < s->file_count) {
        ms_stage_file_header(s, &s->files[s->fidx]);
        s->phase = PH_FILE_HEADER;
    } else {
        ms_stage_trailer(s);
        s->phase = PH_TRAILER;
    }
}

static int32_t AFD_CALL ms_backup_start_stream(afd_session *s, uint32_t index) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->file_active || s->stream_active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_start_stream out of order");
    }
    if (index != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "%s has no stream %lu", s->cur_path,
                       (unsigned long)index);
    }
    s->crc = MS_CRC_INIT;
    s->fidx = 0;
    s->read_calls = 0;
    ms_stage_header(s);
    s->phase = PH_HEADER;
    s->stream_active = 1;
    return AFD_OK;
}

static int64_t AFD_CALL ms_backup_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    uint64_t got = 0;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    if (!s->stream_active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_read without a started stream");
    }
    if (buf == NULL && cap > 0) return su_fail(&s->base, AFD_E_INVALID, "backup_read: no buffer");
    rc = su_cancel_point(&s->base, &s->read_calls, "reading the databases");
    if (rc != AFD_OK) return rc;
    if (cap > (uint64_t)INT64_MAX) cap = (uint64_t)INT64_MAX;
    while (got < cap && s->phase != PH_END) {
        if (s->phase == PH_FILE_DATA) {
            const ms_file *f = &s->files[s->fidx];
            uint64_t want = cap - got < s->left ? cap - got : s->left;
            int64_t n;
            if (want == 0) { /* all `size` bytes read: the file must end here too */
                int grew = !su_reader_at_end(&s->reader);
                su_reader_close(&s->reader);
                if (grew) {
                    return su_fail(
                        &s->base, AFD_E_IO,
                        "%s grew while it was being read (more than %llu bytes); stop the "
                        "database server or take a snapshot, then run the job again",
                        f->fs, (unsigned long long)f->size);
                }
                s->fidx++;
                ms_next_piece(s);
                continue;
            }
            n = su_reader_read(&s->base, &s->reader, buf + got, want);
            if (n < 0) return n;
            if (n == 0) {
                su_reader_close(&s->reader);
                return su_fail(
                    &s->base, AFD_E_IO,
                    "%s shrank while it was being read (%llu bytes expected, it ended after %llu); "
                    "stop the database server or take a snapshot, then run the job again",
                    f->fs, (unsigned long long)f->size, (unsigned long long)(f->size - s->left));
            }
            s->crc = ms_crc_update(s->crc, buf + got, (size_t)n);
            s->left -= (uint64_t)n;
            got += (uint64_t)n;
        } else {
            size_t avail = s->stage_len - s->stage_pos;
            size_t n = cap - got < (uint64_t)avail ? (size_t)(cap - got) : avail;
            memcpy(buf + got, s->stage + s->stage_pos, n);
            if (s->phase != PH_TRAILER) s->crc = ms_crc_update(s->crc, buf + got, n);
            s->stage_pos += n;
            got += n;
            if (s->stage_pos < s->stage_len) break; /* the host's buffer is full */
            if (s->phase == PH_HEADER) {
                ms_next_piece(s);
            } else if (s->phase == PH_FILE_HEADER) {
                const ms_file *f = &s->files[s->fidx];
                rc = su_reader_open(&s->base, &s->reader, f->fs);
                if (rc != AFD_OK) return rc;
                s->left = f->size;
                s->phase = PH_FILE_DATA;
            } else {
                s->phase = PH_END;
            }
        }
    }
    return (int64_t)got;
}

static int32_t AFD_CALL ms_backup_end_stream(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->stream_active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_end_stream without a started stream");
    }
    su_reader_close(&s->reader);
    s->stream_active = 0;
    return AFD_OK;
}

static int32_t AFD_CALL ms_backup_end_file(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->file_active) return su_fail(&s->base, AFD_E_INVALID, "backup_end_file without a file");
    su_reader_close(&s->reader);
    s->stream_active = 0;
    s->file_active = 0;
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* restore                                                                                      */
/* ------------------------------------------------------------------------------------------- */

/* The .bak parser: the next field is `need` bytes of `state`. Returns AFD_OK (for
 * `return ms_expect(...);`). */
static int32_t ms_expect(afd_session *s, int state, size_t need) {
    s->ps = state;
    s->need = need;
    s->have = 0;
    return AFD_OK;
}

static int32_t AFD_CALL ms_restore_prepare(afd_session *s, const afd_restore_params *params) {
    if (s == NULL) return AFD_E_INVALID;
    return su_restore_prepare(&s->base, &s->restore_ready, params, &ms_data_dir_option, s->target);
}

static int32_t AFD_CALL ms_restore_start_file(afd_session *s, const afd_file *file) {
    char parts[2][SU_NAME_MAX + 1];
    const char *rest;
    size_t len;
    int count;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    if (s->rs_active) { /* (a database is only ever open after restore_prepare) */
        return su_fail(&s->base, AFD_E_INVALID, "restore_start_file before restore_end_file");
    }
    rc = su_restore_start_allowed(&s->base, s->restore_ready, file);
    if (rc != AFD_OK) return rc;
    rest = su_logical_rest(file->path, MS_PREFIX);
    count = rest != NULL ? su_split_path(rest, parts, 2) : -1;
    len = count == 2 ? strlen(parts[1]) : 0;
    if (count != 2 || len <= 4 || !su_has_suffix(parts[1], ".bak")) {
        return su_refuse_path(&s->base, file,
                              "an MSSQL object path (/@mssql/<instance>/<database>.bak)");
    }
    parts[1][len - 4] = '\0';
    if (!su_valid_name(parts[1])) {
        return su_fail(&s->base, AFD_E_INVALID,
                       "refusing to restore \"%.300s\": invalid database name", file->path);
    }
    memcpy(s->rs_db, parts[1], sizeof s->rs_db);
    if (su_join(s->rs_dir, sizeof s->rs_dir, s->target, s->rs_db) != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "restore path too long for %s", file->path);
    }
    ms_expect(s, P_MAGIC, 8);
    s->pcrc = MS_CRC_INIT;
    s->count = s->files_done = 0;
    s->rs_failed = 0;
    s->rs_corrupt = 0;
    s->write_calls = 0;
    s->pending_count = 0;
    if ((file->flags & AFD_FILE_SEEN) != 0 || file->stream_count == 0) {
        s->rs_skip = 1;
        s->rs_active = 1;
        return AFD_OK;
    }
    /* Confined (gen 3), the host creates the directory with the first file, beneath the target. */
    if (!s->base.confined && su_mkdirs(s->rs_dir) != 0) {
        int err = errno;
        return su_fail(&s->base, AFD_E_IO,
                       "cannot create %s: %s; check that agentfd may write to the target",
                       s->rs_dir, su_strerror(&s->base, err));
    }
    s->rs_skip = 0;
    s->rs_active = 1;
    return AFD_OK;
}

/* Fail the current database: remove every file it produced, keep the message. */
static int32_t ms_fail_restore(afd_session *s, int32_t code) {
    ms_discard_restore(s);
    s->rs_failed = 1;
    return code;
}

/* The stream is corrupt: remove what it produced and ignore the rest of it. restore_write keeps
 * accepting bytes (the verdict belongs to restore_end_file, which fails with `detail`). */
static int32_t ms_corrupt(afd_session *s, const char *detail) {
    if (!s->rs_corrupt) {
        snprintf(s->rs_corrupt_detail, sizeof s->rs_corrupt_detail, "%s", detail);
        s->rs_corrupt = 1;
        ms_discard_restore(s);
        su_log(&s->base, AFD_LOG_WARNING,
               "database %s: the .bak stream is corrupt: %s; ignoring the rest of it", s->rs_db,
               detail);
    }
    return AFD_OK;
}

/* The current file's content is complete: close it and keep it for the rename. */
static int32_t ms_file_done(afd_session *s) {
    int32_t rc;
    ms_pending *p;
    s->cur.mtime_ns = s->f_mtime; /* confined writes set it through the file as it closes */
    rc = su_part_close(&s->base, &s->cur);
    if (rc != AFD_OK) return ms_fail_restore(s, rc);
    if (su_grow((void **)&s->pending, &s->pending_cap, s->pending_count, sizeof *s->pending) != 0) {
        su_fail(&s->base, AFD_E_NOMEM, "out of memory");
        return ms_fail_restore(s, AFD_E_NOMEM);
    }
    p = &s->pending[s->pending_count++];
    p->part = s->cur;
    p->mtime_ns = s->f_mtime;
    s->cur.part_path[0] = '\0'; /* owned by the pending entry now */
    s->files_done++;
    if (s->files_done < s->count) return ms_expect(s, P_FILE_NAME_LEN, 2);
    return ms_expect(s, P_TRAILER_MAGIC, 8);
}

/* A name field is complete in s->fld: validate it and copy it out as a string. */
static int ms_take_name(afd_session *s, char *out) {
    if (!su_valid_name_n((const char *)s->fld, s->have)) return 0;
    memcpy(out, s->fld, s->have);
    out[s->have] = '\0';
    return 1;
}

/* An 8-byte magic field is complete: unless it is `magic` the stream is corrupt (`detail`),
 * else the next field is `need` bytes of `next`. */
static int32_t ms_magic_done(afd_session *s, const char *magic, const char *detail, int next,
                             size_t need) {
    if (memcmp(s->fld, magic, 8) != 0) return ms_corrupt(s, detail);
    return ms_expect(s, next, need);
}

static int32_t ms_field_done(afd_session *s) {
    char name[SU_NAME_MAX + 1], detail[SU_NAME_MAX + 200], final_path[SU_PATH_MAX];
    uint32_t len;
    size_t i;
    int32_t rc;
    switch (s->ps) {
    case P_MAGIC:
        return ms_magic_done(s, MS_MAGIC, "it does not start with AFDBAK01", P_VERSION, 4);
    case P_VERSION:
        if (ms_get_u32(s->fld) != MS_FORMAT_VERSION) {
            snprintf(detail, sizeof detail,
                     "unknown format version %lu (this agent reads version 1)",
                     (unsigned long)ms_get_u32(s->fld));
            return ms_corrupt(s, detail);
        }
        return ms_expect(s, P_COUNT, 4);
    case P_COUNT:
        s->count = ms_get_u32(s->fld);
        return ms_expect(s, P_CREATED, 8);
    case P_CREATED: return ms_expect(s, P_DB_LEN, 2);
    case P_DB_LEN:
    case P_INST_LEN:
    case P_FILE_NAME_LEN:
        len = ms_get_u16(s->fld);
        if (len == 0 || len > SU_NAME_MAX) {
            snprintf(detail, sizeof detail, "a name length of %lu bytes", (unsigned long)len);
            return ms_corrupt(s, detail);
        }
        return ms_expect(s, s->ps + 1, len);
    case P_DB_NAME:
        if (!ms_take_name(s, name)) return ms_corrupt(s, "the database name is invalid");
        if (strcmp(name, s->rs_db) != 0) {
            su_log(&s->base, AFD_LOG_INFO, "the backup of database %s is restored as %s", name,
                   s->rs_db);
        }
        return ms_expect(s, P_INST_LEN, 2);
    case P_INST_NAME:
        if (!ms_take_name(s, name)) return ms_corrupt(s, "the instance name is invalid");
        if (s->count > 0) return ms_expect(s, P_FILE_NAME_LEN, 2);
        return ms_expect(s, P_TRAILER_MAGIC, 8);
    case P_FILE_NAME:
        if (!ms_take_name(s, name)) {
            snprintf(detail, sizeof detail, "the name of file %lu is invalid",
                     (unsigned long)s->files_done + 1);
            return ms_corrupt(s, detail);
        }
        if (su_join(final_path, sizeof final_path, s->rs_dir, name) != 0) {
            su_fail(&s->base, AFD_E_INVALID, "restore path too long for %s in %s", name, s->rs_dir);
            return ms_fail_restore(s, AFD_E_INVALID);
        }
        for (i = 0; i < s->pending_count; i++) {
            if (strcmp(s->pending[i].part.final_path, final_path) == 0) {
                snprintf(detail, sizeof detail, "file %s appears twice", name);
                return ms_corrupt(s, detail);
            }
        }
        memcpy(s->cur.final_path, final_path, sizeof final_path);
        return ms_expect(s, P_FILE_MODE, 4);
    case P_FILE_MODE:
        s->f_mode = ms_get_u32(s->fld);
        return ms_expect(s, P_FILE_MTIME, 8);
    case P_FILE_MTIME:
        s->f_mtime = (int64_t)ms_get_u64(s->fld);
        return ms_expect(s, P_FILE_SIZE, 8);
    case P_FILE_SIZE:
        s->f_left = ms_get_u64(s->fld);
        memcpy(final_path, s->cur.final_path, sizeof final_path);
        rc = su_part_open(&s->base, &s->cur, final_path);
        if (rc != AFD_OK) return ms_fail_restore(s, rc);
        if (s->f_left == 0) return ms_file_done(s);
        return ms_expect(s, P_FILE_DATA, 0);
    case P_TRAILER_MAGIC:
        return ms_magic_done(s, MS_TRAILER_MAGIC,
                             "the trailer magic AFDBAKZZ is missing after the last file",
                             P_TRAILER_CRC, 4);
    case P_TRAILER_CRC:
        if (ms_get_u32(s->fld) != MS_CRC_FINAL(s->pcrc)) {
            snprintf(detail, sizeof detail,
                     "CRC-32 mismatch (the trailer says %08lX, the data gives %08lX)",
                     (unsigned long)ms_get_u32(s->fld), (unsigned long)MS_CRC_FINAL(s->pcrc));
            return ms_corrupt(s, detail);
        }
        return ms_expect(s, P_END, 0);
    default: return ms_corrupt(s, "internal parser state");
    }
}

/* Feed bytes of the .bak stream to the parser. */
static int32_t ms_feed(afd_session *s, const uint8_t *buf, uint64_t len) {
    int32_t rc;
    while (len > 0 && !s->rs_corrupt) {
        if (s->ps == P_END) return ms_corrupt(s, "there are bytes after the trailer");
        if (s->ps == P_FILE_DATA) {
            uint64_t n = len < s->f_left ? len : s->f_left;
            s->pcrc = ms_crc_update(s->pcrc, buf, (size_t)n);
            rc = su_part_write(&s->base, &s->cur, buf, n);
            if (rc != AFD_OK) return ms_fail_restore(s, rc);
            s->f_left -= n;
            buf += n;
            len -= n;
            if (s->f_left == 0) {
                rc = ms_file_done(s);
                if (rc != AFD_OK) return rc;
            }
        } else {
            size_t n = s->need - s->have;
            if ((uint64_t)n > len) n = (size_t)len;
            memcpy(s->fld + s->have, buf, n);
            if (s->ps < P_TRAILER_MAGIC) s->pcrc = ms_crc_update(s->pcrc, buf, n);
            s->have += n;
            buf += n;
            len -= n;
            if (s->have == s->need) {
                rc = ms_field_done(s);
                if (rc != AFD_OK) return rc;
            }
        }
    }
    return AFD_OK;
}

static int32_t AFD_CALL ms_restore_write(afd_session *s, uint32_t stream_index, const uint8_t *buf,
                                         uint64_t len) {
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    if (!s->rs_active) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_write without restore_start_file");
    }
    if (stream_index != 0) {
        return su_fail(&s->base, AFD_E_INVALID,
                       "restore_write to stream %lu: an MSSQL object has a single stream (0)",
                       (unsigned long)stream_index);
    }
    if (s->rs_skip) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_write to a file that has no streams");
    }
    if (s->rs_failed) return AFD_E_IO; /* the message of the first failure stays */
    if (buf == NULL && len > 0) return su_fail(&s->base, AFD_E_INVALID, "restore_write: no buffer");
    rc = su_cancel_point(&s->base, &s->write_calls, "restoring a database");
    if (rc != AFD_OK) return ms_fail_restore(s, rc);
    return ms_feed(s, buf, len);
}

static const char *ms_parser_place(int ps) {
    switch (ps) {
    case P_MAGIC:
    case P_VERSION:
    case P_COUNT:
    case P_CREATED:
    case P_DB_LEN:
    case P_DB_NAME:
    case P_INST_LEN:
    case P_INST_NAME: return "in the header";
    case P_FILE_DATA: return "in the content of a file";
    case P_TRAILER_MAGIC:
    case P_TRAILER_CRC: return "in the trailer";
    default: return "in a file header";
    }
}

static int ms_cmp_pending(const void *a, const void *b) {
    const ms_pending *x = a, *y = b;
    return strcmp(x->part.final_path, y->part.final_path);
}

static int32_t AFD_CALL ms_restore_end_file(afd_session *s, int32_t status) {
    char detail[200];
    size_t i, files;
    if (s == NULL) return AFD_E_INVALID;
    if (!s->rs_active) {
        if (status != AFD_STATUS_OK) return AFD_OK;
        return su_fail(&s->base, AFD_E_INVALID, "restore_end_file without restore_start_file");
    }
    s->rs_active = 0;
    if (s->rs_skip) return AFD_OK;
    if (status != AFD_STATUS_OK) {
        ms_discard_restore(s);
        return AFD_OK;
    }
    if (s->rs_failed) return AFD_E_IO;
    if (!s->rs_corrupt && s->ps != P_END) {
        snprintf(detail, sizeof detail, "it ends early, %s (after %lu of %lu files)",
                 ms_parser_place(s->ps), (unsigned long)s->files_done, (unsigned long)s->count);
        ms_corrupt(s, detail);
    }
    if (s->rs_corrupt) {
        return su_fail(&s->base, AFD_E_IO,
                       "the .bak stream is corrupt: %s; nothing of database %s was restored "
                       "(its partial files were removed), restore it from another backup",
                       s->rs_corrupt_detail, s->rs_db);
    }
    /* Magic and CRC are good: rename every file into place, in name order (so that "x" is renamed
     * off "x.part" before a file called "x.part" takes that name). */
    qsort(s->pending, s->pending_count, sizeof *s->pending, ms_cmp_pending);
    for (i = 0; i < s->pending_count; i++) {
        int32_t rc = su_part_commit(&s->base, &s->pending[i].part, s->pending[i].mtime_ns);
        if (rc != AFD_OK) return ms_fail_restore(s, rc);
    }
    files = s->pending_count;
    s->pending_count = 0;
    su_log(&s->base, AFD_LOG_INFO, "database %s restored to %s: %lu files", s->rs_db, s->rs_dir,
           (unsigned long)files);
    return AFD_OK;
}

static int32_t AFD_CALL ms_restore_finish(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->restore_ready) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_finish before restore_prepare");
    }
    if (s->rs_active) {
        ms_discard_restore(s);
        s->rs_active = 0;
        return su_fail(&s->base, AFD_E_INVALID, "restore_finish while a database is still open");
    }
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* entry points                                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* The same table for generations 2 and 3 (3 only adds host functions: restore_open and its
 * kin, which sample_util.c uses when the host offers them). */
#define MS_TABLE(generation)                                                                       \
    {                                                                                              \
        sizeof(afd_agent_api), generation,                                                         \
            AFD_CAP_BACKUP_FULL | AFD_CAP_RESTORE | AFD_CAP_RAW_RESTORABLE |                       \
                AFD_CAP_THREAD_SAFE | AFD_CAP_CANCEL,                                              \
            ms_info, (uint32_t)(sizeof ms_info / sizeof ms_info[0]), 0, ms_open, ms_close,         \
            su_session_last_error, ms_backup_prepare, ms_backup_next_file,                         \
            ms_backup_start_stream, ms_backup_read, ms_backup_end_stream, ms_backup_end_file,      \
            ms_restore_prepare, ms_restore_start_file, ms_restore_write, ms_restore_end_file,      \
            ms_restore_finish, NULL /* backup_finish: nothing to do */, NULL /* no estimate */     \
    }

static const afd_agent_api ms_api_gen2 = MS_TABLE(AFD_ABI_GEN_2);
static const afd_agent_api ms_api_gen3 = MS_TABLE(AFD_ABI_GEN_3);

static const afd_agent_api *ms_table_for(uint32_t generation) {
    return generation == AFD_ABI_GEN_3 ? &ms_api_gen3
           : generation == AFD_ABI_GEN_2 ? &ms_api_gen2
                                         : NULL;
}

AFD_EXPORT const char *AFD_CALL Name(void) {
    return "MSSQL";
}

AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply) {
    return su_negotiate(request, reply, AFD_ABI_GEN_2, AFD_ABI_GEN_3, ms_table_for);
}
