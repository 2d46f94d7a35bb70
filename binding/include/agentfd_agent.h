/*
 * agentfd_agent.h: the contract between agentfd and a native backup agent.
 *
 * An agent is a shared library (.so on Linux, .dll on Windows, .dylib on macOS) dropped into
 * agentfd's plugin directory. agentfd loads every library there, calls Name(), negotiates an ABI
 * generation with afd_negotiate(), and from then on drives the agent only through the function
 * table the agent returned. This header is the whole contract: nothing else is needed to write an
 * agent, and nothing in here changes meaning once a generation has shipped.
 *
 * ---------------------------------------------------------------------------------------------
 * Rules that hold for every function and structure below
 * ---------------------------------------------------------------------------------------------
 * - Types: only fixed-width integers, pointers and UTF-8, NUL-terminated strings cross the
 *   boundary. There is no struct stat, no time_t, no wchar_t, no off_t: their layouts differ
 *   between systems and compilers.
 * - Times are signed 64-bit nanoseconds since 1970-01-01T00:00:00Z (UTC).
 * - Paths are UTF-8, '/'-separated and absolute in the agent's own namespace (for example
 *   "/@exchange/SG1/DB1.edb"), at most 32 KiB. They never contain NUL, a "." or ".." component,
 *   or an empty component. '/' is the only separator: every other character, a backslash
 *   included, is an ordinary character of a name. agentfd refuses a path that breaks these rules
 *   and fails the file (see "What agentfd enforces" below). The other way too: a restore never
 *   hands an agent a path or link target that is not UTF-8. agentfd's own filesystem agent keeps
 *   names as their bytes, UTF-8 or not; routed to a native agent (--agent), such a file is refused
 *   before restore_start_file() is called (E_RESTORE_PATH: that file fails, the restore goes on).
 * - Versioned structures start with `uint32_t struct_size`, set by whoever allocated the
 *   structure to sizeof() as that side compiled it. A reader must check that a field lies inside
 *   struct_size before reading it (AFD_HAS_FIELD below). New fields are only ever appended.
 * - Return codes: AFD_OK (0) on success, AFD_DONE (1) where a sequence ends, a negative AFD_E_*
 *   code on failure. After a failure the agent keeps a message for last_error().
 * - Memory: a pointer the host passes in is valid only during that call; copy what you keep.
 *   A pointer the agent hands out (strings, afd_file, afd_stream arrays, the function table) is
 *   owned by the agent and must stay valid for the time given with each function.
 * - Threads: the host never calls into one session from two threads at once. Different sessions
 *   are only used concurrently when the agent declares AFD_CAP_THREAD_SAFE. The agent calls host
 *   functions only from inside a call the host made into it, on that same thread; an agent must
 *   never call the host from a thread of its own.
 * - Crashes: by default agentfd runs each agent in a separate host process, so a crash ends the
 *   job, not the daemon. It is still a bug; report errors through return codes.
 *
 * ---------------------------------------------------------------------------------------------
 * What agentfd enforces, and what breaking each rule does
 * ---------------------------------------------------------------------------------------------
 * FAILS THE FILE: the file is recorded as failed (with the reason, and the path with bytes that
 * are not UTF-8 shown as \xNN), no further stream of it is asked for, backup_end_stream() (for
 * a stream that was started) and backup_end_file() are called for it, and the job goes on with
 * the next file. The job then ends failed (it has a failed file), and backup_finish() gets
 * AFD_STATUS_FAILED. A file fails when a stream delivers more bytes than its size_hint (found
 * while reading: the host ends the stream and the file early), or when the afd_file from
 * backup_next_file() breaks a rule (none of its streams is asked for):
 *   - path is NULL, longer than 32 KiB, not valid UTF-8, not absolute, or has an empty, "." or
 *     ".." component;
 *   - kind is not an AFD_KIND_*; a symlink's link_target is NULL, longer than 32 KiB or not UTF-8;
 *   - stream_count is above 1024, or above 0 with streams NULL or with AFD_FILE_SEEN set;
 *   - a stream has a struct_size below sizeof(afd_stream) of generation 1, a type that is not an
 *     AFD_STREAM_*, a name that is not 1 to 64 of [A-Za-z0-9._-], or the name of an earlier stream.
 * FAILS THE JOB (the job is recorded failed, or aborted for a crash, a timeout or a cancel;
 * nothing of it is restorable):
 *   - backup_prepare() sets delivered_level to something that is no AFD_LEVEL_*;
 *   - backup_next_file() returns AFD_OK with *out NULL, an afd_file whose struct_size is below
 *     generation 1's, or a return code other than AFD_OK, AFD_DONE or a negative code;
 *   - any backup call returns a negative code (last_error() is the job's error): there is no
 *     way to skip a stream the agent cannot read, so a read error ends the job;
 *   - backup_read() returns more than cap (it may have written past the buffer);
 *   - the agent crashes (isolated: the host process ends; in-process: agentfd ends with it);
 *   - (isolated) a call, or a silence while a stream is read, lasts longer than call_timeout
 *     (10 minutes unless configured): the host process is killed;
 *   - the job is cancelled: is_cancelled() answers 1, the agent should return AFD_E_CANCELLED;
 *     one that has not stopped after cancel_grace (10 s) is killed (isolated);
 *   - writing the job's data fails (a full disk): the job stops at once, whatever the agent is
 *     doing. agentfd stops asking for data, is_cancelled() answers 1, and backup_finish() is
 *     called with AFD_STATUS_FAILED, possibly in the middle of a file or stream; an isolated
 *     agent that has not returned to agentfd within 3 s (or cancel_grace, when shorter) is killed.
 * ONLY LOGGED (the call returns an error code the agent can handle; the job goes on):
 *   - log(): a message over 64 KiB is cut at 64 KiB and ends with an ellipsis
 *     (U+2026) and " [truncated: N bytes]";
 *     bytes that are not UTF-8 are logged as \xNN; a NULL message is logged as such;
 *   - fileset_check() / get_option(): a path or key that is NULL, over 64 KiB or not UTF-8 is
 *     logged, and the call returns -1 (fileset_check: error; get_option: not set);
 *   - state_set(): a blob over 1 MiB, or NULL data with a length, returns AFD_E_INVALID; the
 *     blob stored before (if any) stays the job's state;
 *   - backup_finish() returning a negative code: the job keeps its status;
 *   - info entries (afd_kv) that are not pairs of UTF-8 strings are skipped.
 * REFUSES THE AGENT at load (it is not used at all): a Name() that breaks its rules, a missing
 *   afd_negotiate(), no ABI generation in common, a table lacking an entry point its
 *   capabilities promise; every reason is in "Why a library is refused" below.
 * NOT DETECTED (undefined behaviour, never do it): a host function called from a thread of the
 *   agent's own or after close(), a pointer handed out that dies before the time given for it.
 *   agentfd itself never calls an agent out of the order this header gives (see "Call order").
 * After backup_prepare() has returned AFD_OK, backup_finish() (when not NULL) is called exactly
 * once before close(), whatever happens next, except when the agent can no longer be called: it
 * crashed, or its host process was killed (timeout, cancel grace, write-error grace).
 *
 * ---------------------------------------------------------------------------------------------
 * Why a library is refused (the codes `agentfd plugins list` prints)
 * ---------------------------------------------------------------------------------------------
 * agentfd examines every library of the plugin directory with these checks, in this order (the
 * directory's own permissions come first of all; a crash may end any of them), and refuses it at
 * the first it fails; a refused library is not used at all, and the others load. `plugins list`
 * shows "[CODE] file: what is wrong and what to do" (`--json`: refused[].code). The same codes are
 * given to Bacula 9.6 plugins (NAME-fd.so), with the Bacula conditions after "Bacula:".
 *   E_NOT_REGULAR           the path cannot be read (a dangling symbolic link; a link is followed
 *                           and its target judged) or is not a regular file (a directory named
 *                           like a library).
 *   E_INSECURE_PERMISSIONS  (POSIX) the library, or the plugin directory (then every library in
 *                           it), is writable by all users, or belongs to a user other than root
 *                           and the user agentfd runs as. Nothing of the file runs. On Windows
 *                           the directory's ACL is the administrator's business: not checked.
 *   E_NOT_LIBRARY           its first bytes are no library header (a text file named x.so, a file
 *                           shorter than 4 bytes), or the loader says it is not a shared library.
 *                           Bacula: the file is not ELF.
 *   E_WRONG_PLATFORM        a library of another system (a Windows DLL on Linux, a Mach-O file)
 *                           or another architecture (the loader's wrong ELF class or machine).
 *                           Bacula: agentfd runs elsewhere than Linux x86-64, or the file is a DLL.
 *   E_LOAD_FAILED           the loader (dlopen, LoadLibrary) fails otherwise: a library it needs
 *                           is missing, it needs a symbol no loaded library defines; also any
 *                           unexpected failure while it is examined.
 *   E_MISSING_SYMBOL        Name or afd_negotiate is not exported (one that exports loadPlugin is
 *                           told it looks like a Bacula plugin). Bacula: loadPlugin or
 *                           unloadPlugin is not exported, or the plugin needs a symbol of
 *                           bacula-fd's libbac that no [bacula] preload library provides.
 *   E_BAD_NAME              Name() returns NULL, bytes that are not UTF-8, more than 64 bytes, an
 *                           empty string, a control character (U+0000 to U+001F, U+007F), '/' or
 *                           '\', or white space at either end.
 *   E_ABI_RANGE             no ABI generation in common: afd_negotiate() returns AFD_E_VERSION, or
 *                           AFD_OK with chosen_abi 0. Bacula: pInfo's version is not 14.
 *   E_NEGOTIATION           afd_negotiate() returns a code other than AFD_OK and AFD_E_VERSION,
 *                           chooses a generation outside the host's range, or returns AFD_OK
 *                           with api NULL. Bacula: loadPlugin() does not return 0, or pInfo's
 *                           magic or licence is not one bacula-fd 9.6 accepts.
 *   E_BAD_TABLE             the function table's struct_size is below generation 1's, or its
 *                           abi_version is not chosen_abi; it declares neither a backup level nor
 *                           AFD_CAP_RESTORE; or an entry point its capabilities need is NULL:
 *                           open, close and last_error always, the six backup_* ones with any
 *                           AFD_CAP_BACKUP_*, the five restore_* ones with AFD_CAP_RESTORE,
 *                           estimate with AFD_CAP_ESTIMATE. Bacula: loadPlugin() returns no pInfo
 *                           or pFuncs, pInfo's size is not bacula-fd's, a pInfo string is over
 *                           4 KiB or not UTF-8, or pFuncs lacks an entry point bacula-fd calls.
 *   E_DUPLICATE_NAME        two libraries that passed the checks above (in the plugin directory
 *                           or Bacula's) have the same name: both are refused, since a job could
 *                           not tell them apart.
 *   E_LOAD_CRASHED          (isolation "process", the default: libraries are examined in a probe
 *                           process) the library crashed or ended the probe while it was loaded
 *                           (its initialisation code, Name(), afd_negotiate(), loadPlugin()), or
 *                           took longer than 30 s. With isolation "none" such a library ends
 *                           agentfd instead.
 *
 * ---------------------------------------------------------------------------------------------
 * Call order: when agentfd calls what, and what happens out of order
 * ---------------------------------------------------------------------------------------------
 * Name() and afd_negotiate() come first, each time a process loads the library (the probe that
 * examines the plugin directory, each isolated host process, or the daemon itself with isolation
 * "none"), before any open(). A session is one job, called one call at a time, in one of these
 * sequences ({ } repeats, [ ] is optional):
 *   backup    open, backup_prepare, { backup_next_file, { backup_start_stream(i), backup_read
 *             until it returns 0, backup_end_stream } for i = 0 .. stream_count - 1,
 *             backup_end_file } until backup_next_file returns AFD_DONE, [backup_finish], close
 *   estimate  open, backup_prepare, estimate, [backup_finish(AFD_STATUS_FAILED)], close
 *   restore   open, restore_prepare, { restore_start_file, { restore_write }, restore_end_file },
 *             restore_finish, close
 * A failure cuts a sequence short as the table says; last_error() may be called after any negative
 * return, until close(). Before each backup call from backup_next_file to backup_end_file agentfd
 * checks its own sequence: a call it would make out of order is not made, and the job fails with
 * "called out of order" (AFD_E_INVALID, a bug of agentfd's). The restore sequence follows the
 * volume's records, one file at a time. An agent that is still called out of order should return
 * AFD_E_INVALID (the sample agents do), never crash.
 *
 *   call                 agentfd calls it                    it returns; a failure (a negative
 *                                                            code) does
 *   open                 once per session, after             AFD_OK and *out set; fails the job
 *                        afd_negotiate()                     or restore, close() is not called
 *                                                            (there is no session)
 *   backup_prepare       once, right after open()            AFD_OK; fails the job: close()
 *                                                            follows, backup_finish() does not
 *   backup_next_file     after backup_prepare() and after    AFD_OK with *out set, AFD_DONE at the
 *                        each backup_end_file()              end; anything else fails the job
 *   backup_start_stream  for stream 0, 1, ... of the file,   AFD_OK; fails the job
 *                        in order; not for a refused file
 *   backup_read          after backup_start_stream(), until  1..cap bytes, 0 at the end; fails the
 *                        it returns 0 or the file fails      job, and so does a count above cap
 *   backup_end_stream    after each started stream, also     AFD_OK; fails the job
 *                        one ended early (a refused file)
 *   backup_end_file      after the file's streams, for every AFD_OK; fails the job
 *                        file handed out, refused ones too
 *   backup_finish        exactly once after backup_prepare() a failure is logged as a warning:
 *                        returned AFD_OK, before close():    the job keeps its status
 *                        after the commit (AFD_STATUS_OK),
 *                        or at any point after a failure
 *                        (AFD_STATUS_FAILED)
 *   estimate             once, after backup_prepare()        AFD_OK and *out filled; fails the
 *                                                            estimate
 *   restore_prepare      once, right after open()            AFD_OK; fails the restore: close()
 *                                                            follows
 *   restore_start_file   for each file, after                AFD_OK; fails the restore
 *                        restore_prepare() or the previous
 *                        restore_end_file()
 *   restore_write        between restore_start_file() and    AFD_OK; fails the restore
 *                        restore_end_file(), stream 0's
 *                        bytes first, never with len 0
 *   restore_end_file     after each restore_start_file(),    AFD_OK; fails the restore
 *                        even one that failed; with
 *                        AFD_STATUS_FAILED when the file
 *                        was not saved whole (the restore
 *                        goes on with the next file) or
 *                        when the restore fails
 *   restore_finish       once after the last file, unless    AFD_OK; fails the restore
 *                        the restore failed
 *   close                last, once per session opened, after success or failure (not after a
 *                        crash or a kill)
 * Apart from backup_next_file() and backup_read(), any return >= 0 counts as AFD_OK.
 *
 * The host functions, when an agent may call them (always on the thread of a call agentfd made):
 *   log, get_option,     from the start of open() until close() returns. A log() at
 *   fileset_check,       AFD_LOG_ERROR is one of the job's errors: a backup or a restore with one
 *   is_cancelled         ends failed (an estimate only reports it).
 *   state_get            in a backup or an estimate: the reference job's blob, or -1 without one;
 *                        in a restore: -1.
 *   state_set            in a backup: the job's state if it commits (the last call wins); in an
 *                        estimate or a restore: AFD_OK, and the blob is dropped.
 *   restore_open,        generation 3, from the start of restore_prepare() (the host opens the
 *   restore_rename,      target just before calling it) until close(). Earlier (in open(), in a
 *   restore_remove       backup or an estimate) and in a restore without a target: nothing is
 *                        touched, AFD_E_UNSUPPORTED is returned and the host logs it as an error of
 *                        the job, which fails a backup or a restore.
 *   after close()        the session's host_ctx is forgotten: log does nothing, fileset_check,
 *                        get_option and state_get return -1, is_cancelled 0, state_set
 *                        AFD_E_INVALID, restore_* AFD_E_FAIL, and nothing is logged. This is not
 *                        part of the contract (see NOT DETECTED): never rely on it.
 *   in Name() or         impossible: there is no host table before open().
 *   afd_negotiate()
 *
 * ---------------------------------------------------------------------------------------------
 * ABI generations
 * ---------------------------------------------------------------------------------------------
 *   1  the first generation: backup, restore, fileset check, log, options, cancellation.
 *   2  adds agent-owned state (state_get/state_set host functions), "seen" files for accurate
 *      mode (AFD_FILE_SEEN), backup_finish() called after the job has been committed, and an
 *      optional estimate().
 *   3  adds confined restore writes: the host functions restore_open(), restore_rename() and
 *      restore_remove(), which cannot leave the restore target (see "Writing restored files").
 * An agent built against an older generation keeps working with a newer agentfd: define
 * AFD_TARGET_ABI before including this header to compile against an older generation, and
 * afd_negotiate() answers with the generation the agent was built for.
 */
#ifndef AGENTFD_AGENT_H
#define AGENTFD_AGENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The generations this header knows. A host supports a range of them. */
#define AFD_ABI_GEN_1 1u
#define AFD_ABI_GEN_2 2u
#define AFD_ABI_GEN_3 3u
#define AFD_ABI_LATEST AFD_ABI_GEN_3

/* The generation an agent compiles against. Define it before including this header to build
 * against an older generation (the sample "legacy" agent does so with 1). */
#ifndef AFD_TARGET_ABI
#define AFD_TARGET_ABI AFD_ABI_LATEST
#endif
#if AFD_TARGET_ABI < 1 || AFD_TARGET_ABI > AFD_ABI_LATEST
#error "AFD_TARGET_ABI names an ABI generation this header does not know"
#endif

/* Export macro: the two entry points (Name, afd_negotiate) must be exported, everything else
 * should stay hidden (build with -fvisibility=hidden on ELF; on Windows only dllexport'ed symbols
 * are exported). Hidden symbols also keep the host's own copies of libuv, OpenSSL and zlib from
 * interposing on the agent's. */
#if defined(_WIN32) || defined(__CYGWIN__)
#define AFD_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define AFD_EXPORT __attribute__((visibility("default")))
#else
#define AFD_EXPORT
#endif

/* Calling convention. x86-64 Windows and x86-64/arm64 System V have exactly one each, so this is
 * empty there; it exists so that a 32-bit Windows build states cdecl explicitly. */
#if defined(_WIN32) && defined(_M_IX86)
#define AFD_CALL __cdecl
#else
#define AFD_CALL
#endif

/* True when `field` of the structure at `ptr` lies inside ptr->struct_size. */
#define AFD_HAS_FIELD(ptr, type, field) \
    ((ptr) != NULL && (ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---------------------------------------------------------------------------------------------
 * Return codes
 * ------------------------------------------------------------------------------------------- */
#define AFD_OK 0               /* success */
#define AFD_DONE 1             /* backup_next_file: there are no more files */
#define AFD_E_FAIL (-1)        /* generic failure; last_error() says why */
#define AFD_E_VERSION (-2)     /* afd_negotiate: no ABI generation in common */
#define AFD_E_INVALID (-3)     /* a call out of order or an invalid argument */
#define AFD_E_CANCELLED (-4)   /* the job was cancelled (is_cancelled() returned 1) */
#define AFD_E_UNSUPPORTED (-5) /* a level or operation the agent does not offer */
#define AFD_E_IO (-6)          /* reading or writing the application's data failed */
#define AFD_E_NOMEM (-7)       /* out of memory */
#define AFD_E_REFUSED (-8)     /* gen 3, restore_open() and friends: the path would leave the
                                  restore target (a symlink, a reparse point, a file where a
                                  directory is needed); the host logged why */

/* ---------------------------------------------------------------------------------------------
 * Capabilities (afd_agent_api.capabilities). Declared, never guessed: the host only asks for
 * what is declared here.
 * ------------------------------------------------------------------------------------------- */
#define AFD_CAP_BACKUP_FULL (1ull << 0)         /* can make full backups */
#define AFD_CAP_BACKUP_INCREMENTAL (1ull << 1)  /* changes since the last backup of any level */
#define AFD_CAP_BACKUP_DIFFERENTIAL (1ull << 2) /* changes since the last full backup */
#define AFD_CAP_RESTORE (1ull << 3)             /* implements the restore entry points */
#define AFD_CAP_OWN_STATE (1ull << 4)  /* keeps its own incremental state (gen 2: state_get/set) */
#define AFD_CAP_RAW_RESTORABLE (1ull << 5) /* every data stream, written as a plain file, is a
                                              usable file on its own (an MSSQL .bak, a dump) */
#define AFD_CAP_ACCURATE (1ull << 6)    /* reports unchanged files as AFD_FILE_SEEN (gen 2) */
#define AFD_CAP_THREAD_SAFE (1ull << 7) /* separate sessions may run on separate threads at once */
#define AFD_CAP_CANCEL (1ull << 8)      /* polls is_cancelled() during long calls */
#define AFD_CAP_ESTIMATE (1ull << 9)    /* implements estimate() (gen 2) */

/* ---------------------------------------------------------------------------------------------
 * Enumerations
 * ------------------------------------------------------------------------------------------- */
/* Backup levels (afd_backup_params.level). */
#define AFD_LEVEL_FULL 1u
#define AFD_LEVEL_INCREMENTAL 2u
#define AFD_LEVEL_DIFFERENTIAL 3u

/* Kinds of files (afd_file.kind). */
#define AFD_KIND_REGULAR 1u   /* a plain file with a data stream */
#define AFD_KIND_DIRECTORY 2u /* a directory; no streams */
#define AFD_KIND_SYMLINK 3u   /* a symbolic link; link_target set, no streams */
#define AFD_KIND_VIRTUAL 4u   /* an application object (a database, a mailbox store) */

/* Kinds of streams (afd_stream.type). */
#define AFD_STREAM_DATA 1u     /* the file's content */
#define AFD_STREAM_METADATA 2u /* application metadata the agent needs to restore the data */
#define AFD_STREAM_NAMED 3u    /* another named stream (an NTFS alternate stream, a log segment) */

/* Stream flags (afd_stream.flags). */
#define AFD_STREAM_RAW_RESTORABLE 1u /* this stream alone, written to disk, is a usable file */

/* File flags (afd_file.flags). */
#define AFD_FILE_SEEN 1u /* gen 2, accurate mode: unchanged since the reference job and still
                            present; the file has no streams and nothing is saved for it, but
                            it is not recorded as deleted */

/* Log levels (afd_host_api.log). */
#define AFD_LOG_ERROR 1
#define AFD_LOG_WARNING 2
#define AFD_LOG_INFO 3
#define AFD_LOG_DEBUG 4

/* Status passed to restore_end_file() and backup_finish(). */
#define AFD_STATUS_OK 0     /* everything before this call succeeded and is committed */
#define AFD_STATUS_FAILED 1 /* the host failed (bad data, a digest mismatch, cancellation):
                               discard what this file or job produced */

/* ---------------------------------------------------------------------------------------------
 * Structures
 * ------------------------------------------------------------------------------------------- */
typedef struct afd_session afd_session; /* the agent's own per-job state, opaque to the host */

/* A key/value pair of the agent's self-description. Keys the host shows: "vendor",
 * "version" (the agent's own version), "description", "url", "license". */
typedef struct afd_kv {
    const char *key;
    const char *value;
} afd_kv;

/* One stream of a file. */
typedef struct afd_stream {
    uint32_t struct_size; /* sizeof(afd_stream) as the agent compiled it */
    uint32_t type;        /* AFD_STREAM_* */
    const char *name;     /* short name, unique within the file ("data", "meta"); 1 to 64 of
                             [A-Za-z0-9._-] */
    int64_t size_hint;    /* the number of bytes the agent will deliver, or -1 if unknown. A
                             limit, not a guess: a stream that delivers more is refused as lying
                             and fails its file (fewer is allowed: a file may shrink) */
    uint32_t flags;       /* AFD_STREAM_* flags */
    uint32_t reserved;    /* zero */
} afd_stream;

/* One file (or application object) of a backup. Returned by backup_next_file(), owned by the
 * agent, valid until backup_end_file(). Passed to restore_start_file() by the host, valid during
 * that call only. */
typedef struct afd_file {
    uint32_t struct_size;      /* sizeof(afd_file) as its allocator compiled it */
    uint32_t kind;             /* AFD_KIND_* */
    const char *path;          /* absolute logical path (see the rules at the top) */
    const char *link_target;   /* AFD_KIND_SYMLINK only, else NULL */
    uint32_t mode;             /* POSIX permission bits (07777), 0 when not applicable */
    uint32_t flags;            /* AFD_FILE_* */
    int64_t mtime_ns;          /* last modification, or 0 when unknown */
    int64_t size;              /* logical size in bytes, or -1 when unknown */
    uint32_t win_attributes;   /* Windows FILE_ATTRIBUTE_* bits, 0 elsewhere */
    uint32_t stream_count;     /* number of entries in streams */
    const afd_stream *streams; /* the streams the host will ask for, in this order */
} afd_file;

/* What the host offers in afd_negotiate(). */
typedef struct afd_negotiate_request {
    uint32_t struct_size;      /* sizeof(afd_negotiate_request) as the host compiled it */
    uint32_t host_min_abi;     /* the oldest generation the host speaks */
    uint32_t host_max_abi;     /* the newest generation the host speaks */
    uint32_t reserved;         /* zero */
    const char *host_name;     /* "agentfd" */
    const char *host_version;  /* the host's version, for example "0.1.0" */
    const char *host_platform; /* "linux-x64", "win32-x64", ... */
} afd_negotiate_request;

struct afd_agent_api;

/* What the agent answers. The HOST sets struct_size to the size of the buffer it provides; the
 * agent writes only the fields that fit (AFD_HAS_FIELD). */
typedef struct afd_negotiate_reply {
    uint32_t struct_size;             /* set by the host */
    uint32_t agent_min_abi;           /* the oldest generation the agent speaks: always set */
    uint32_t agent_max_abi;           /* the newest generation the agent speaks: always set */
    uint32_t chosen_abi;              /* the newest generation in both ranges, 0 if none */
    const struct afd_agent_api *api;  /* the function table for chosen_abi, NULL if none */
} afd_negotiate_reply;

/* Functions the host gives the agent. Every function takes the host_ctx from afd_open_params
 * first. The table is valid from open() to close(). A host of an older generation hands out a
 * shorter table: check AFD_HAS_FIELD(host, afd_host_api, field) before using a gen 2 field. */
typedef struct afd_host_api {
    uint32_t struct_size; /* sizeof(afd_host_api) as the host compiled it */
    uint32_t abi_version; /* the negotiated generation */

    /* ---- generation 1 ---- */
    /* Write a line to the job log. level is AFD_LOG_*; message is UTF-8 without a newline, at
     * most 64 KiB (a longer one is cut and marked; bytes that are not UTF-8 are shown as \xNN). */
    void (AFD_CALL *log)(void *host_ctx, int32_t level, const char *message);
    /* Is `path` (an absolute path in the agent's namespace) part of the job's fileset, after its
     * include and exclude rules? 1 = include, 0 = exclude, negative = error (also for a path
     * that is NULL, over 64 KiB or not UTF-8). An agent should not return files the fileset
     * excludes. */
    int32_t (AFD_CALL *fileset_check)(void *host_ctx, const char *path);
    /* Look up a job option (the agent's options in the job configuration). Copies the UTF-8 value
     * and a NUL into buf when it fits in cap bytes; returns the value's length in bytes without the
     * NUL (call again with a larger buffer if it is >= cap), or -1 when the option is not set
     * (and for a key that is NULL, over 64 KiB or not UTF-8). */
    int64_t (AFD_CALL *get_option)(void *host_ctx, const char *key, char *buf, uint64_t cap);
    /* 1 when the job has been cancelled: stop and return AFD_E_CANCELLED. */
    int32_t (AFD_CALL *is_cancelled)(void *host_ctx);

#if AFD_TARGET_ABI >= 2
    /* ---- generation 2 ---- */
    /* The state blob the agent stored at the end of the reference job (the job this incremental
     * or differential is based on). Copies it into buf when it fits in cap bytes; returns its
     * length (call again with a larger buffer if it is > cap), or -1 when there is none. */
    int64_t (AFD_CALL *state_get)(void *host_ctx, uint8_t *buf, uint64_t cap);
    /* Store a state blob for this job (a log number, an LSN). The last call wins. It is kept in
     * the catalog and on the volume, and handed back by state_get() to later jobs that use this
     * one as their reference. Returns AFD_OK, or AFD_E_INVALID when it is larger than 1 MiB (or
     * data is NULL with len > 0): the blob is then not stored, the one stored before (if any)
     * stays, a warning is logged, and the job goes on. */
    int32_t (AFD_CALL *state_set)(void *host_ctx, const uint8_t *data, uint64_t len);
#endif

#if AFD_TARGET_ABI >= 3
    /* ---- generation 3: writing restored files (see "Writing restored files" below) ---- */
    /* Open `relative_path` (relative to the restore target) for writing, creating the missing
     * parent directories (mode 0755 less the umask). `flags` is the new file's permission bits
     * (0..0777; 0 means 0600, the umask applies) or'ed with AFD_RESTORE_TRUNCATE or
     * AFD_RESTORE_EXCLUSIVE. A symbolic link at relative_path itself is refused too, never
     * followed or replaced. Returns an OS file descriptor that the agent owns: POSIX, an int
     * opened O_WRONLY | O_CLOEXEC; Windows, a HANDLE (cast to int64_t) opened GENERIC_WRITE,
     * share mode FILE_SHARE_READ, synchronous (no FILE_FLAG_OVERLAPPED), so _open_osfhandle()
     * accepts it; the permission bits of `flags` do not apply there (the file inherits the
     * directory's ACL). The agent writes, may set times and size through it, and must close it
     * (close() / CloseHandle(), or fdopen()/_open_osfhandle() and then fclose()) before
     * restore_end_file() returns. On failure a negative AFD_E_* code: AFD_E_REFUSED when the path would leave the
     * target, AFD_E_INVALID for a bad path or flags, AFD_E_UNSUPPORTED when the host has no
     * target (restore to the original location), AFD_E_IO otherwise; the host logs the reason
     * (with the OS error) as an error of the job. */
    int64_t (AFD_CALL *restore_open)(void *host_ctx, const char *relative_path, uint32_t flags);
    /* Rename the file `from` to `to`, both relative to the target, replacing a file (never a
     * directory) at `to`: how a file written under a temporary name gets its real name.
     * AFD_OK or a negative code as for restore_open(). */
    int32_t (AFD_CALL *restore_rename)(void *host_ctx, const char *from, const char *to);
    /* Remove the file `relative_path` (never a directory): how a discarded file goes. AFD_OK
     * (also when it does not exist) or a negative code as for restore_open(). */
    int32_t (AFD_CALL *restore_remove)(void *host_ctx, const char *relative_path);
#endif
} afd_host_api;

#if AFD_TARGET_ABI >= 3
/* ---------------------------------------------------------------------------------------------
 * Writing restored files (generation 3)
 * ---------------------------------------------------------------------------------------------
 * The target is a directory other people may write to, before and during the restore. An agent
 * that builds "<target>/SG1/Mailbox1.edb" and calls fopen() follows whatever it finds: after
 * `ln -s /outside <target>/SG1` it writes /outside/Mailbox1.edb, and agentfd usually runs as root.
 * Checking first and opening after does not help: the link can be planted between the two.
 * So a gen 3 agent writes every restored file through restore_open(), and renames and removes
 * them through restore_rename() and restore_remove(). The host opened the target once, at
 * restore_prepare(), and resolves each relative path from that open directory one component at
 * a time, never through a symbolic link, a reparse point or "..":
 *   Linux: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or where the kernel lacks it (ENOSYS)
 *          openat(O_NOFOLLOW | O_DIRECTORY) per component and mkdirat() for missing ones; the
 *          file itself with O_NOFOLLOW | O_CLOEXEC; renameat()/unlinkat() in the open parent.
 *   Windows: each directory on the way is opened as itself (FILE_FLAG_OPEN_REPARSE_POINT) and
 *          refused unless it is a plain directory (not a symbolic link, junction or other
 *          reparse point), and stays open without FILE_SHARE_DELETE until the call returns, so
 *          nobody can rename, move or delete it meanwhile; the file is then created (CREATE_NEW
 *          for AFD_RESTORE_EXCLUSIVE, else OPEN_ALWAYS) as itself, and refused if it is a
 *          reparse point. renames and removals go through the same pinned directories.
 *   Other systems: a host that cannot confine offers at most generation 2 (afd_negotiate picks
 *          an older table, and the agent writes as a gen 2 agent does).
 * Relative paths are '/'-separated, without a leading '/', empty, "." or ".." components or NUL
 * (a backslash is an ordinary character, as in every path of this header; on Windows a
 * component that Windows cannot hold as a name, one with a character of \ / : * ? " < > | or
 * below 0x20, ending in a dot or space, or a device name such as CON or LPT1, fails the call
 * with AFD_E_INVALID: the agent may name the file differently). A component that is a symbolic link (Windows: any reparse point), or a
 * non-directory where a directory is needed, fails the call with AFD_E_REFUSED; nothing is created outside the target. Each call resolves its
 * path again from the open target, so a directory swapped for a link between two calls fails the
 * next call through it instead of redirecting it. Only the target itself is named by path, once,
 * by the host.
 * The function pointers are only in a table of generation 3 (AFD_HAS_FIELD(host, afd_host_api,
 * restore_open)); they may only be called between restore_prepare() and close().
 */
#define AFD_RESTORE_MODE_MASK 0777u    /* the new file's permission bits; 0 means 0600 */
#define AFD_RESTORE_TRUNCATE (1u << 16) /* an existing file is emptied (else it is opened as is) */
#define AFD_RESTORE_EXCLUSIVE (1u << 17) /* an existing file fails the call (AFD_E_IO) */
#endif

/* Parameters of open(). */
typedef struct afd_open_params {
    uint32_t struct_size;      /* sizeof(afd_open_params) as the host compiled it */
    uint32_t abi_version;      /* the negotiated generation */
    const afd_host_api *host;  /* host functions, valid until close() */
    void *host_ctx;            /* pass back to every host function */
    const char *job_name;      /* the job's name in the configuration */
    uint64_t job_id;           /* the catalog's job id (0 when there is no catalog) */
} afd_open_params;

/* Parameters of backup_prepare(). */
typedef struct afd_backup_params {
    uint32_t struct_size;     /* sizeof(afd_backup_params) as the host compiled it */
    uint32_t level;           /* AFD_LEVEL_*; only levels the agent declared are asked for */
    int64_t since_ns;         /* incremental/differential: save what changed after this time
                                 (the reference job's start); 0 for full */
    int64_t job_start_ns;     /* when this job started */
    uint32_t delivered_level; /* OUT: set by the host to `level`; the agent lowers it to
                                 AFD_LEVEL_FULL (or DIFFERENTIAL) when it must save more than asked,
                                 e.g. an incremental without a usable checkpoint */
    uint32_t reserved;        /* zero */
} afd_backup_params;

/* ---------------------------------------------------------------------------------------------
 * Where a restore writes
 * ---------------------------------------------------------------------------------------------
 * - A restore writes beneath afd_restore_params.target and nowhere else. agentfd always names a
 *   target (`agentfd restore --to DIR`); only a host that restores "to the original location"
 *   passes NULL, and then the agent decides from its own configuration.
 * - Job options at restore: get_option() answers with the options recorded on the volume at
 *   backup (they describe what was saved: the agent needs them to read its own data back),
 *   replaced one by one by those the user gives for the restore (`--option KEY=VALUE`). A volume
 *   is data from the past, possibly from someone else: an agent must never let an option choose
 *   where a restore writes (no "restore to this directory" option; an option that names a
 *   directory is for the backup). The sample SyntheticFiles once wrote below a recorded
 *   write_to=DIR; it now writes below the target, with the restore-time option write=yes.
 *   agentfd cannot see inside an agent: breaking this rule is not detected, it is a bug of the
 *   agent (gen 3 agents write through restore_open(), which cannot leave the target).
 */

/* Parameters of restore_prepare(). */
typedef struct afd_restore_params {
    uint32_t struct_size;         /* sizeof(afd_restore_params) as the host compiled it */
    uint32_t source_abi;          /* the generation the saving agent negotiated */
    const char *target;           /* where to restore (a directory or an application-specific
                                     target), or NULL to restore to the original location */
    const char *source_agent_version; /* the "version" info of the agent that saved the data */
    uint32_t flags;               /* reserved, zero */
    uint32_t reserved;            /* zero */
} afd_restore_params;

#if AFD_TARGET_ABI >= 2
/* Filled by estimate(). */
typedef struct afd_estimate {
    uint32_t struct_size; /* set by the host */
    uint32_t reserved;
    int64_t files;        /* files the backup would save, -1 unknown */
    int64_t bytes;        /* bytes the backup would save, -1 unknown */
} afd_estimate;
#endif

/* The agent's function table, returned by afd_negotiate() for the chosen generation. It must
 * stay valid until the library is unloaded (a static const table is the usual way). Entry points
 * an agent does not offer are NULL and the matching capability is not declared. */
typedef struct afd_agent_api {
    uint32_t struct_size;  /* sizeof(afd_agent_api) as the agent compiled it */
    uint32_t abi_version;  /* the generation this table implements (= chosen_abi) */
    uint64_t capabilities; /* AFD_CAP_* */
    const afd_kv *info;    /* self-description; at least "vendor" and "version" */
    uint32_t info_count;   /* number of entries in info */
    uint32_t reserved;     /* zero */

    /* ---- generation 1 ---- */
    /* Start a session for one job. *out receives the agent's session handle. */
    int32_t (AFD_CALL *open)(const afd_open_params *params, afd_session **out);
    /* End a session and free everything it holds. Always called, after success or failure. */
    void (AFD_CALL *close)(afd_session *session);
    /* The message of the last failure in this session (UTF-8), or NULL. Valid until the next call
     * into the session. Say what failed and what to do, e.g. "cannot open /srv/exch/SG1/DB1.edb:
     * permission denied; run agentfd as a user that can read the store". */
    const char *(AFD_CALL *last_error)(afd_session *session);

    /* Backup: prepare once, then for each file: next_file, and for each of its streams in order
     * start_stream, read until it returns 0, end_stream; then end_file. A file agentfd refuses
     * (see "What agentfd enforces") is ended early: end_stream before read returned 0, and
     * end_file without its remaining streams (or without any, for a refused afd_file). */
    int32_t (AFD_CALL *backup_prepare)(afd_session *session, afd_backup_params *params);
    /* Hand out the next file: AFD_OK with *out set, AFD_DONE when there are no more files. */
    int32_t (AFD_CALL *backup_next_file)(afd_session *session, const afd_file **out);
    /* Begin reading stream `index` (0-based, in the order of afd_file.streams). */
    int32_t (AFD_CALL *backup_start_stream)(afd_session *session, uint32_t index);
    /* Copy up to cap bytes of the current stream into buf. Returns the number of bytes copied
     * (1..cap), 0 at the end of the stream, or a negative AFD_E_* code. Never more than cap. */
    int64_t (AFD_CALL *backup_read)(afd_session *session, uint8_t *buf, uint64_t cap);
    int32_t (AFD_CALL *backup_end_stream)(afd_session *session);
    int32_t (AFD_CALL *backup_end_file)(afd_session *session);

    /* Restore: prepare once, then for each file: start_file, write its streams' bytes in order
     * (all of stream 0, then all of stream 1, ...), end_file; then finish. */
    int32_t (AFD_CALL *restore_prepare)(afd_session *session, const afd_restore_params *params);
    int32_t (AFD_CALL *restore_start_file)(afd_session *session, const afd_file *file);
    int32_t (AFD_CALL *restore_write)(afd_session *session, uint32_t stream_index,
                                      const uint8_t *buf, uint64_t len);
    /* status is AFD_STATUS_FAILED when the host found the data bad: discard this file. */
    int32_t (AFD_CALL *restore_end_file)(afd_session *session, int32_t status);
    /* All files are written: make the restored data usable (replay logs, mount a database). */
    int32_t (AFD_CALL *restore_finish)(afd_session *session);

#if AFD_TARGET_ABI >= 2
    /* ---- generation 2 ---- */
    /* Called once after the backup, when the host has committed the job (status AFD_STATUS_OK) or
     * given up on it (AFD_STATUS_FAILED). Only after AFD_STATUS_OK may an agent discard what the
     * job saved (truncate transaction logs). Called whenever backup_prepare() returned AFD_OK,
     * before close(), except after a crash or a kill (see "What agentfd enforces"); after a
     * failure it may come at any point of the call sequence, e.g. with a stream still open.
     * May be NULL. */
    int32_t (AFD_CALL *backup_finish)(afd_session *session, int32_t status);
    /* After backup_prepare(): how much a backup would save, without reading data. May be NULL.
     * `agentfd estimate` calls open, backup_prepare, estimate, backup_finish(AFD_STATUS_FAILED)
     * (nothing was saved: discard nothing), close; no file is asked for. */
    int32_t (AFD_CALL *estimate)(afd_session *session, afd_estimate *out);
#endif
} afd_agent_api;

/* ---------------------------------------------------------------------------------------------
 * The two exported entry points
 * ---------------------------------------------------------------------------------------------
 * Their names have no prefix, and other libraries in the process may export the same ones: the
 * libraries of [bacula] preload (bacula-fd's libbac) are opened with global binding
 * (RTLD_GLOBAL), which puts their symbols in the process's global scope. agentfd looks both up in
 * the agent's own library only (dlsym on its handle searches the library and its dependencies,
 * never the global scope; Windows' GetProcAddress searches the one DLL), so another library's
 * Name is never taken for the agent's, and a missing one is not filled in from elsewhere (it is
 * E_MISSING_SYMBOL). Debian's libbac exports neither name. Two things are the agent's to get right:
 *   - Never call Name() or afd_negotiate() from inside the agent. On ELF systems that call binds
 *     like any call to an exported function, global scope first: after a library exporting Name
 *     was loaded with global binding, the agent's own Name() call reaches that library's. Keep the
 *     name in a static constant and use it (the sample agents do), or link with
 *     -Wl,-Bsymbolic-functions (or compile with -fno-semantic-interposition), which binds the
 *     agent's calls to its own functions:
 *       static const char AGENT_NAME[] = "MyAgent";
 *       AFD_EXPORT const char *AFD_CALL Name(void) { return AGENT_NAME; }
 *   - Define both in the agent library itself: one that only a library the agent links against
 *     exports is found there, and agentfd would use that one.
 * ------------------------------------------------------------------------------------------- */
/* The agent's name, by which jobs select it ("MicrosoftExchange", "MSSQL"). A static string of
 * 1 to 64 bytes of UTF-8 without control characters, '/' or '\', and without white space at
 * either end; it never changes. */
AFD_EXPORT const char *AFD_CALL Name(void);

/* Choose an ABI generation. The agent always fills agent_min_abi and agent_max_abi. When the
 * ranges overlap it sets chosen_abi to the newest common generation, api to its function table,
 * and returns AFD_OK; otherwise it sets chosen_abi to 0 and api to NULL and returns
 * AFD_E_VERSION. It must not call the host and may be called more than once. */
AFD_EXPORT int32_t AFD_CALL afd_negotiate(const afd_negotiate_request *request,
                                          afd_negotiate_reply *reply);

#define AFD_SYMBOL_NAME "Name"
#define AFD_SYMBOL_NEGOTIATE "afd_negotiate"

#ifdef __cplusplus
}
#endif

#endif /* AGENTFD_AGENT_H */
