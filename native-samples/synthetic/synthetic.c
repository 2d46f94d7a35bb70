/*
 * synthetic.c: the "SyntheticFiles" sample agent, a load generator and the smallest complete
 * generation-3 agent.
 *
 * It reads nothing: every file is computed. The benchmarks use it for "an agent producing
 * 1,000,000 files of 1 KiB" (the agent costs next to nothing, so what is measured is agentfd), and
 * it shows the whole ABI with no application in the way: negotiation (generations 1..3, one table
 * each), job options, the fileset check, cancellation, backup reads of any size, restore, the log,
 * and the generation-2 backup_finish().
 *
 * Job options (all optional; a bad value fails backup_prepare/restore_prepare naming the option
 * and the range):
 *   files=N     how many files (default 1000, 0..100000000)
 *   size=BYTES  bytes per file (default 1024, 0..67108864 = 64 MiB)
 *   dirs=N      files per directory (default 1000, 1..100000000)
 *   seed=N      selects the content and the mtime (default 1, 0..4294967295)
 *   write=yes   restore only: also write the verified files below the restore target (give it
 *               with `agentfd restore --option write=yes`)
 *
 * Backup: file i (0 <= i < files) is /@synthetic/d<i / dirs, 6+ digits>/f<i, 9+ digits>.dat, a
 * regular file (mode 0644, an mtime in 2020 chosen by the seed) with one "data" stream of `size`
 * bytes. Its content is splitmix64 output keyed by (seed, i): incompressible, so a benchmark's
 * compressor really works, and made at a few GB/s, straight into the host's read buffer.
 *
 * Restore: each file is checked against the content regenerated from the job options (agentfd
 * hands a restore the options recorded with the backup). A wrong byte, a wrong length or a path
 * the options do not produce fails that file, naming the file and the offset. Nothing is written
 * to disk unless write=yes; restore_finish() logs how many files were verified.
 *
 * Where a restore writes is the restore target (afd_restore_params.target) and nothing else: the
 * options come back from the volume, so an option that named a directory (this agent once had
 * write_to=DIR) would let whoever wrote the volume choose where a restore writes. See "Job options
 * at restore" in agentfd_agent.h.
 */
#include "sample_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SY_NAME "SyntheticFiles"
#define SY_PREFIX "/@synthetic/"
#define SY_PATH_CAP 96 /* the prefix, "d" + 20 digits, "/f" + 20 digits, ".dat" and a NUL */

#define SY_MAX_FILES 100000000ull
#define SY_MAX_SIZE (64ull * 1024 * 1024)
#define SY_MTIME_BASE_S 1577836800ll /* 2020-01-01T00:00:00Z */
#define SY_YEAR_S 31536000ll

/* is_cancelled() is a call into the host (for agentfd, into JavaScript): asked once per
 * SY_POLL_FILES files or SY_POLL_BYTES bytes, whichever comes first, so that it costs nothing per
 * file while a cancelled job still stops within a fraction of a second, even with 64 MiB files. */
#define SY_POLL_FILES 4096u
#define SY_POLL_BYTES (64ull * 1024 * 1024)

/* What the agent says about itself (afd_agent_api.info). */
static const afd_kv sy_info[] = {SU_SAMPLE_INFO(
    "1.0.0", "Generated files of incompressible, reproducible bytes (job options files, size, "
             "dirs, seed), verified at restore: a load generator for benchmarks")};

typedef struct sy_options {
    uint64_t files, size, dirs;
    uint32_t seed;
} sy_options;

struct afd_session {
    su_base base; /* first: see su_session_open() */
    sy_options opt;
    uint64_t poll_files, poll_bytes; /* work since is_cancelled() was last asked */

    /* ---- backup ---- */
    int prepare_called, prepared, file_active, stream_active;
    uint64_t next;          /* the index of the next file to hand out */
    uint64_t key;           /* the content key of the file handed out */
    uint64_t offset;        /* bytes of its stream delivered so far */
    uint64_t handed, bytes; /* totals, for the log */
    char path[SY_PATH_CAP];
    afd_file file; /* filled once by backup_prepare: only `path` changes from file to file */
    afd_stream stream;

    /* ---- restore ---- */
    int restore_ready, rs_active;
    int32_t rs_bad;   /* the current file failed verification: the code it failed with */
    int writing;      /* write=yes: the verified files are written below the target */
    char target[SU_PATH_MAX];
    su_file_in in;    /* the file being written below the target */
    uint64_t rs_key, rs_offset;
    char rs_path[SY_PATH_CAP];
    uint64_t verified, verified_bytes, failed;
    uint8_t expected[8192]; /* the regenerated content a restored chunk is compared with */
};

/* ------------------------------------------------------------------------------------------- */
/* the content                                                                                  */
/* ------------------------------------------------------------------------------------------- */

/* splitmix64's output function: a bijection of 64-bit values with well-mixed output. */
static uint64_t sy_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The key of file i: distinct for every (seed, i), since i < 2^32. */
static uint64_t sy_key(uint32_t seed, uint64_t i) {
    return sy_mix(((uint64_t)seed << 32) | i);
}

/* Word k of a file: splitmix64 started at the file's key and jumped straight to step k. Counter
 * based rather than a running xorshift state, so that a read or a restored chunk can start at any
 * offset: the host's buffer need not be a multiple of 8 bytes. */
static uint64_t sy_word(uint64_t key, uint64_t k) {
    return sy_mix(key + (k + 1) * 0x9E3779B97F4A7C15ull);
}

/* Little-endian whatever the CPU, so the same seed gives the same bytes everywhere. Compilers
 * merge these into one store. */
static void sy_put64(uint8_t *p, uint64_t w) {
    int b;
    for (b = 0; b < 8; b++) p[b] = (uint8_t)(w >> (8 * b));
}

/* Bytes [offset, offset + len) of the file with `key`, straight into buf. */
static void sy_fill(uint64_t key, uint64_t offset, uint8_t *buf, uint64_t len) {
    uint64_t k = offset / 8, w;
    unsigned b = (unsigned)(offset % 8);
    if (b != 0) { /* the rest of a word that a previous read began */
        w = sy_word(key, k++);
        for (; b < 8 && len > 0; b++, len--) *buf++ = (uint8_t)(w >> (8 * b));
    }
    for (; len >= 8; len -= 8, buf += 8) sy_put64(buf, sy_word(key, k++));
    if (len > 0) {
        w = sy_word(key, k);
        for (b = 0; b < len; b++) buf[b] = (uint8_t)(w >> (8 * b));
    }
}

/* The index in buf of the first byte that differs from bytes [offset, offset + len) of the file
 * with `key`, or len when all match. */
static uint64_t sy_first_difference(afd_session *s, uint64_t key, uint64_t offset,
                                    const uint8_t *buf, uint64_t len) {
    uint64_t done = 0;
    while (done < len) {
        size_t n = len - done < sizeof s->expected ? (size_t)(len - done) : sizeof s->expected;
        size_t j = 0;
        sy_fill(key, offset + done, s->expected, n);
        if (memcmp(s->expected, buf + done, n) != 0) {
            while (s->expected[j] == buf[done + j]) j++;
            return done + j;
        }
        done += n;
    }
    return len;
}

/* The logical path of file i. */
static void sy_path(char *out, size_t cap, const sy_options *o, uint64_t i) {
    snprintf(out, cap, SY_PREFIX "d%06llu/f%09llu.dat", (unsigned long long)(i / o->dirs),
             (unsigned long long)i);
}

/* The index of the file at `path`: 1 when `path` is exactly what the backup gives some
 * i < files, else 0. Comparing with the path regenerated from i also refuses "d1/f1.dat",
 * a file in the wrong directory and anything that climbs out of the namespace. */
static int sy_index_of(const sy_options *o, const char *path, uint64_t *index) {
    char expected[SY_PATH_CAP];
    const char *name = path != NULL ? strrchr(path, '/') : NULL;
    const char *p;
    uint64_t i = 0;
    if (name == NULL || name[1] != 'f') return 0;
    for (p = name + 2; *p >= '0' && *p <= '9'; p++) {
        if (i >= o->files) return 0; /* already too large; stops before any overflow */
        i = i * 10 + (uint64_t)(*p - '0');
    }
    if (i >= o->files) return 0;
    sy_path(expected, sizeof expected, o, i);
    if (strcmp(path, expected) != 0) return 0;
    *index = i;
    return 1;
}

/* ------------------------------------------------------------------------------------------- */
/* options and cancellation                                                                     */
/* ------------------------------------------------------------------------------------------- */

/* The job option `key` as a whole number in [min, max], `fallback` when it is not set. */
static int32_t sy_option_u64(afd_session *s, const char *key, const char *what, uint64_t fallback,
                             uint64_t min, uint64_t max, uint64_t *out) {
    char *text = su_option(&s->base, key);
    char *end = NULL;
    unsigned long long v = 0;
    int ok;
    int32_t rc;
    if (text == NULL) {
        *out = fallback;
        return AFD_OK;
    }
    ok = text[0] >= '0' && text[0] <= '9'; /* strtoull would take "-1", " 5" and "+5" */
    if (ok) {
        errno = 0;
        v = strtoull(text, &end, 10);
        ok = errno == 0 && *end == '\0' && v >= min && v <= max;
    }
    if (ok) {
        free(text);
        *out = (uint64_t)v;
        return AFD_OK;
    }
    rc = su_fail(&s->base, AFD_E_INVALID,
                 "the job option %s=\"%.40s\" is invalid: give %s, a whole number from %llu to "
                 "%llu",
                 key, text, what, (unsigned long long)min, (unsigned long long)max);
    free(text);
    return rc;
}

static int32_t sy_read_options(afd_session *s) {
    uint64_t seed = 0;
    int32_t rc = sy_option_u64(s, "files", "the number of files", 1000, 0, SY_MAX_FILES,
                               &s->opt.files);
    if (rc == AFD_OK) {
        rc = sy_option_u64(s, "size", "the bytes per file (at most 64 MiB)", 1024, 0,
                           SY_MAX_SIZE, &s->opt.size);
    }
    if (rc == AFD_OK) {
        rc = sy_option_u64(s, "dirs", "the files per directory", 1000, 1, SY_MAX_FILES,
                           &s->opt.dirs);
    }
    if (rc == AFD_OK) {
        rc = sy_option_u64(s, "seed", "the seed", 1, 0, UINT32_MAX, &seed);
    }
    s->opt.seed = (uint32_t)seed;
    return rc;
}

/* Count work done, and ask the host about cancellation when enough has been done since the last
 * time. The counters start full (open()), so the first file asks. */
static int32_t sy_poll(afd_session *s, uint64_t files, uint64_t bytes, const char *what) {
    s->poll_files += files;
    s->poll_bytes += bytes;
    if (s->poll_files < SY_POLL_FILES && s->poll_bytes < SY_POLL_BYTES) return AFD_OK;
    s->poll_files = s->poll_bytes = 0;
    if (!su_cancelled(&s->base)) return AFD_OK;
    return su_fail(&s->base, AFD_E_CANCELLED, "the job was cancelled while %s", what);
}

/* ------------------------------------------------------------------------------------------- */
/* session                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL sy_open(const afd_open_params *params, afd_session **out) {
    int32_t rc = su_session_open(params, sizeof(afd_session), out);
    if (rc == AFD_OK) (*out)->poll_files = SY_POLL_FILES;
    return rc;
}

static void AFD_CALL sy_close(afd_session *s) {
    if (s == NULL) return;
    su_file_in_abort(&s->in); /* an unfinished restored file is not left behind */
    free(s);
}

/* ------------------------------------------------------------------------------------------- */
/* backup                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL sy_backup_prepare(afd_session *s, afd_backup_params *params) {
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_backup_prepare_once(&s->base, &s->prepare_called, params);
    if (rc == AFD_OK) rc = su_full_backup_only(&s->base, params, SY_NAME);
    if (rc == AFD_OK) rc = sy_read_options(s);
    if (rc != AFD_OK) return rc;

    s->stream.struct_size = sizeof s->stream;
    s->stream.type = AFD_STREAM_DATA;
    s->stream.name = "data";
    s->stream.size_hint = (int64_t)s->opt.size;
    s->file.struct_size = sizeof s->file;
    s->file.kind = AFD_KIND_REGULAR;
    s->file.path = s->path;
    s->file.mode = 0644;
    s->file.mtime_ns = (SY_MTIME_BASE_S + (int64_t)(s->opt.seed % SY_YEAR_S)) * 1000000000ll;
    s->file.size = (int64_t)s->opt.size;
    s->file.stream_count = 1;
    s->file.streams = &s->stream;

    su_log(&s->base, AFD_LOG_INFO,
           SY_NAME ": %llu files of %llu bytes, %llu per directory, seed %lu",
           (unsigned long long)s->opt.files, (unsigned long long)s->opt.size,
           (unsigned long long)s->opt.dirs, (unsigned long)s->opt.seed);
    s->prepared = 1;
    return AFD_OK;
}

static int32_t AFD_CALL sy_backup_next_file(afd_session *s, const afd_file **out) {
    int32_t rc;
    if (s == NULL || out == NULL) return AFD_E_INVALID;
    *out = NULL;
    if (!s->prepared) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_next_file before backup_prepare");
    }
    if (s->file_active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_next_file before backup_end_file of %s",
                       s->path);
    }
    while (s->next < s->opt.files) {
        uint64_t i = s->next++;
        rc = sy_poll(s, 1, 0, "generating files");
        if (rc != AFD_OK) return rc;
        sy_path(s->path, sizeof s->path, &s->opt, i);
        if (!su_included(&s->base, s->path)) continue;
        s->key = sy_key(s->opt.seed, i);
        s->file_active = 1;
        s->handed++;
        *out = &s->file;
        return AFD_OK;
    }
    return AFD_DONE;
}

static int32_t AFD_CALL sy_backup_start_stream(afd_session *s, uint32_t index) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->file_active || s->stream_active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_start_stream out of order");
    }
    if (index != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "%s has no stream %lu", s->path,
                       (unsigned long)index);
    }
    s->offset = 0;
    s->stream_active = 1;
    return AFD_OK;
}

/* Generated straight into the host's buffer: no copy, no allocation, any cap. */
static int64_t AFD_CALL sy_backup_read(afd_session *s, uint8_t *buf, uint64_t cap) {
    uint64_t n;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    if (!s->stream_active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_read without a started stream");
    }
    if (buf == NULL && cap > 0) return su_fail(&s->base, AFD_E_INVALID, "backup_read: no buffer");
    n = s->opt.size - s->offset;
    if (n > cap) n = cap;
    if (n == 0) return 0;
    rc = sy_poll(s, 0, n, "generating files");
    if (rc != AFD_OK) return rc;
    sy_fill(s->key, s->offset, buf, n);
    s->offset += n;
    s->bytes += n;
    return (int64_t)n;
}

static int32_t AFD_CALL sy_backup_end_stream(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->stream_active) {
        return su_fail(&s->base, AFD_E_INVALID, "backup_end_stream without a started stream");
    }
    s->stream_active = 0;
    return AFD_OK;
}

static int32_t AFD_CALL sy_backup_end_file(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->file_active) return su_fail(&s->base, AFD_E_INVALID, "backup_end_file without a file");
    s->file_active = s->stream_active = 0;
    return AFD_OK;
}

#if AFD_TARGET_ABI >= 2
/* Generation 2: told whether the host committed the job. An agent that must not drop anything
 * before the backup is safe (transaction logs) does it here; this one has nothing to drop and only
 * says what it produced. */
static int32_t AFD_CALL sy_backup_finish(afd_session *s, int32_t status) {
    if (s == NULL) return AFD_E_INVALID;
    su_log(&s->base, AFD_LOG_INFO, SY_NAME ": generated %llu files, %llu bytes; the job was %s",
           (unsigned long long)s->handed, (unsigned long long)s->bytes,
           status == AFD_STATUS_OK ? "committed" : "not committed");
    return AFD_OK;
}
#endif

/* ------------------------------------------------------------------------------------------- */
/* restore                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int32_t AFD_CALL sy_restore_prepare(afd_session *s, const afd_restore_params *params) {
    char *write, *old_write_to;
    const char *target;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    if (s->restore_ready) return su_fail(&s->base, AFD_E_INVALID, "restore_prepare was already called");
    rc = sy_read_options(s);
    if (rc != AFD_OK) return rc;
    write = su_option(&s->base, "write");
    target = params != NULL && AFD_HAS_FIELD(params, afd_restore_params, target) ? params->target
                                                                                   : NULL;
    if (write != NULL && strcmp(write, "yes") != 0 && strcmp(write, "no") != 0) {
        su_fail(&s->base, AFD_E_INVALID, "the job option write=\"%.40s\" is invalid: give yes or no",
                write);
        free(write);
        return AFD_E_INVALID;
    }
    old_write_to = su_option(&s->base, "write_to");
    if (old_write_to != NULL) {
        su_log(&s->base, AFD_LOG_WARNING,
               "the job option write_to=\"%.200s\" is ignored: a restore writes only below its "
               "target; restore with --to DIR --option write=yes to write the files",
               old_write_to);
        free(old_write_to);
    }
    if (write != NULL && strcmp(write, "yes") == 0) {
        if (target == NULL || target[0] == '\0') {
            free(write);
            return su_fail(&s->base, AFD_E_INVALID,
                           "write=yes needs a restore target: restore with --to DIR");
        }
        /* room below it for "/d<digits>/f<digits>.dat.part" */
        if (strlen(target) >= sizeof s->target - SY_PATH_CAP) {
            free(write);
            return su_fail(&s->base, AFD_E_INVALID, "the restore target is too long");
        }
        memcpy(s->target, target, strlen(target) + 1);
        if (su_mkdirs(s->target) != 0) {
            int err = errno;
            free(write);
            return su_fail(&s->base, AFD_E_IO, "cannot create the restore target %s: %s",
                           s->target, su_strerror(&s->base, err));
        }
        su_confine(&s->base, s->target);
        s->writing = 1;
    } else if (target != NULL) {
        su_log(&s->base, AFD_LOG_INFO,
               SY_NAME " only verifies the restored files: nothing is written to %s "
                       "(restore with --option write=yes to write them)",
               target);
    }
    free(write);
    s->restore_ready = 1;
    return AFD_OK;
}

/* The current file failed verification: remove what it wrote, remember the failure. */
static int32_t sy_bad(afd_session *s, int32_t code) {
    su_file_in_abort(&s->in);
    s->rs_bad = code;
    return code;
}

static int32_t AFD_CALL sy_restore_start_file(afd_session *s, const afd_file *file) {
    char final_path[SU_PATH_MAX];
    uint64_t i;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    rc = su_restore_start_allowed(&s->base, s->restore_ready, file);
    if (rc != AFD_OK) return rc;
    if (s->rs_active) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_start_file before restore_end_file of %s",
                       s->rs_path);
    }
    rc = sy_poll(s, 1, 0, "verifying files");
    if (rc != AFD_OK) return rc;
    if (!sy_index_of(&s->opt, file->path, &i)) {
        char what[200];
        snprintf(what, sizeof what,
                 "one of the %llu files the job options give (" SY_PREFIX
                 "dNNNNNN/fNNNNNNNNN.dat, %llu per directory)",
                 (unsigned long long)s->opt.files, (unsigned long long)s->opt.dirs);
        s->failed++;
        return su_refuse_path(&s->base, file, what);
    }
    /* The length is not judged from file->size but from the data, which names the offset. */
    if (file->stream_count != 1) {
        s->failed++;
        return su_fail(&s->base, AFD_E_IO, "%s: recorded with %lu streams instead of one",
                       file->path, (unsigned long)file->stream_count);
    }
    if (s->writing) {
        if (su_join(final_path, sizeof final_path, s->target,
                    file->path + strlen(SY_PREFIX)) != 0) {
            return su_fail(&s->base, AFD_E_INVALID, "restore path too long for %s", file->path);
        }
        rc = su_file_in_start(&s->base, &s->in, file, final_path);
        if (rc != AFD_OK) return rc;
    }
    memcpy(s->rs_path, file->path, strlen(file->path) + 1); /* shorter than SY_PATH_CAP */
    s->rs_key = sy_key(s->opt.seed, i);
    s->rs_offset = 0;
    s->rs_bad = AFD_OK;
    s->rs_active = 1;
    return AFD_OK;
}

static int32_t AFD_CALL sy_restore_write(afd_session *s, uint32_t stream_index, const uint8_t *buf,
                                         uint64_t len) {
    uint64_t at;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    if (!s->rs_active) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_write without restore_start_file");
    }
    if (s->rs_bad != AFD_OK) return s->rs_bad; /* the message of the failure is kept */
    if (stream_index != 0) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_write to stream %lu: %s has one stream",
                       (unsigned long)stream_index, s->rs_path);
    }
    if (buf == NULL && len > 0) return su_fail(&s->base, AFD_E_INVALID, "restore_write: no buffer");
    rc = sy_poll(s, 0, len, "verifying files");
    if (rc != AFD_OK) return rc;
    if (len > s->opt.size - s->rs_offset) {
        su_fail(&s->base, AFD_E_IO,
                "%s: the data is longer than the %llu bytes expected (size=%llu): extra bytes at "
                "offset %llu",
                s->rs_path, (unsigned long long)s->opt.size, (unsigned long long)s->opt.size,
                (unsigned long long)s->opt.size);
        return sy_bad(s, AFD_E_IO);
    }
    at = sy_first_difference(s, s->rs_key, s->rs_offset, buf, len);
    if (at < len) {
        uint8_t want;
        sy_fill(s->rs_key, s->rs_offset + at, &want, 1);
        su_fail(&s->base, AFD_E_IO,
                "%s: the byte at offset %llu is 0x%02x, the generated content has 0x%02x "
                "(seed %lu): the backup is damaged, or was made with other job options",
                s->rs_path, (unsigned long long)(s->rs_offset + at), (unsigned)buf[at],
                (unsigned)want, (unsigned long)s->opt.seed);
        return sy_bad(s, AFD_E_IO);
    }
    s->rs_offset += len;
    if (!s->writing) return AFD_OK;
    rc = su_file_in_write(&s->base, &s->in, 0, buf, len, "writing the verified files");
    return rc == AFD_OK ? AFD_OK : sy_bad(s, rc);
}

static int32_t AFD_CALL sy_restore_end_file(afd_session *s, int32_t status) {
    int committed = 0;
    int32_t rc;
    if (s == NULL) return AFD_E_INVALID;
    if (!s->rs_active) {
        if (status != AFD_STATUS_OK) return AFD_OK; /* start_file failed: nothing to discard */
        return su_fail(&s->base, AFD_E_INVALID, "restore_end_file without restore_start_file");
    }
    s->rs_active = 0;
    if (status == AFD_STATUS_OK && s->rs_bad == AFD_OK && s->rs_offset != s->opt.size) {
        su_fail(&s->base, AFD_E_IO,
                "%s: the data ends at offset %llu, %llu bytes are expected (size=%llu)",
                s->rs_path, (unsigned long long)s->rs_offset, (unsigned long long)s->opt.size,
                (unsigned long long)s->opt.size);
        sy_bad(s, AFD_E_IO);
    }
    if (status != AFD_STATUS_OK || s->rs_bad != AFD_OK) {
        s->failed++;
        su_file_in_abort(&s->in);
        return status == AFD_STATUS_OK ? s->rs_bad : AFD_OK;
    }
    if (s->writing) {
        rc = su_file_in_end(&s->base, &s->in, AFD_STATUS_OK, &committed);
        if (rc != AFD_OK) {
            s->failed++;
            return rc;
        }
    }
    s->verified++;
    s->verified_bytes += s->rs_offset;
    return AFD_OK;
}

static int32_t AFD_CALL sy_restore_finish(afd_session *s) {
    if (s == NULL) return AFD_E_INVALID;
    if (!s->restore_ready) {
        return su_fail(&s->base, AFD_E_INVALID, "restore_finish before restore_prepare");
    }
    if (s->rs_active) {
        su_file_in_abort(&s->in);
        s->rs_active = 0;
        return su_fail(&s->base, AFD_E_INVALID, "restore_finish while %s is still open",
                       s->rs_path);
    }
    su_log(&s->base, s->failed == 0 ? AFD_LOG_INFO : AFD_LOG_WARNING,
           SY_NAME ": verified %llu files (%llu bytes) against seed %lu, %llu failed; %s%s",
           (unsigned long long)s->verified, (unsigned long long)s->verified_bytes,
           (unsigned long)s->opt.seed, (unsigned long long)s->failed,
           s->writing ? "written below " : "nothing written to disk",
           s->writing ? s->target : "");
    return AFD_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* entry points                                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* No global state: sessions may run on separate threads at once (AFD_CAP_THREAD_SAFE). */
#define SY_CAPS (AFD_CAP_BACKUP_FULL | AFD_CAP_RESTORE | AFD_CAP_THREAD_SAFE | AFD_CAP_CANCEL)

/* The self-description and the generation-1 entry points: the same in both tables. */
#define SY_INFO_AND_GEN1_ENTRY_POINTS                                                              \
    sy_info, (uint32_t)(sizeof sy_info / sizeof sy_info[0]), 0, /* info, info_count, reserved */   \
        sy_open, sy_close, su_session_last_error,                                                  \
        sy_backup_prepare, sy_backup_next_file, sy_backup_start_stream, sy_backup_read,            \
        sy_backup_end_stream, sy_backup_end_file,                                                  \
        sy_restore_prepare, sy_restore_start_file, sy_restore_write, sy_restore_end_file,          \
        sy_restore_finish

/* For a generation-1 host: a table that ends before the generation-2 fields. */
static const afd_agent_api sy_api_gen1 = {
#if AFD_TARGET_ABI >= 2
    offsetof(afd_agent_api, backup_finish),
#else
    sizeof(afd_agent_api), /* built with AFD_TARGET_ABI=1: the table has no generation-2 fields */
#endif
    AFD_ABI_GEN_1,
    SY_CAPS,
    SY_INFO_AND_GEN1_ENTRY_POINTS,
#if AFD_TARGET_ABI >= 2
    NULL, /* beyond struct_size: a generation-1 host never reads these */
    NULL,
#endif
};

#if AFD_TARGET_ABI >= 2
/* Generations 2 and 3 share a table (3 only adds host functions: restore_open and its kin, which
 * sample_util.c uses when the host offers them). */
#define SY_GEN2_TABLE(generation)                                                                  \
    {                                                                                              \
        sizeof(afd_agent_api), generation, SY_CAPS, SY_INFO_AND_GEN1_ENTRY_POINTS,                 \
            sy_backup_finish,                                                                      \
            NULL, /* no estimate(): the host does not ask for it, and files * size says it all */  \
    }
static const afd_agent_api sy_api_gen2 = SY_GEN2_TABLE(AFD_ABI_GEN_2);
#endif
#if AFD_TARGET_ABI >= 3
static const afd_agent_api sy_api_gen3 = SY_GEN2_TABLE(AFD_ABI_GEN_3);
#endif

static const afd_agent_api *sy_table_for(uint32_t generation) {
#if AFD_TARGET_ABI >= 3
    if (generation == AFD_ABI_GEN_3) return &sy_api_gen3;
#endif
#if AFD_TARGET_ABI >= 2
    if (generation == AFD_ABI_GEN_2) return &sy_api_gen2;
#endif
    return generation == AFD_ABI_GEN_1 ? &sy_api_gen1 : NULL;
}

AFD_EXPORT const char *AFD_CALL Name(void) {
    return SY_NAME;
}

AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply) {
    return su_negotiate(request, reply, AFD_ABI_GEN_1, AFD_TARGET_ABI, sy_table_for);
}
