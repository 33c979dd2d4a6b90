/* Sandboxed execution of untrusted programs: the bottom layer of the code verifier.
 * A sandbox is one fresh work directory plus the means to run commands in it:
 * - bubblewrap (preferred): new user/mount/PID/net/IPC/UTS namespaces, no network,
 *   read-only /usr (+ /lib, /bin symlinks), private size-capped /tmp, the work dir
 *   bound read-write at /box as the cwd, a seccomp filter, rlimits; as root, the
 *   sandbox runs as an unprivileged uid unique to this run (so RLIMIT_NPROC bites).
 * - fallback (bwrap cannot run here): seccomp + Landlock + rlimits + a new session in
 *   the same fresh directory, same uid rule; announced once with a loud warning. Not
 *   root, the fallback cannot give runs their own uid: then a daemon that leaves its
 *   session outlives the run, and files our uid owns outside can be chmod-ed (Landlock
 *   does not cover metadata); RLIMIT_NPROC is set to our process count + the limit.
 *   The fallback also has no /dev/shm (POSIX semaphores, multiprocessing locks fail).
 * Files: /tmp and /dev/shm are tmpfs capped at limits.tmp_mb each; the work dir is on
 * the host's disk, each file capped by RLIMIT_FSIZE (their number only by time). 
 * Every run is bounded by CPU time, a wall clock, an address-space cap and an output
 * cap; whatever it started is killed and reaped before sandbox_run returns. */
#ifndef GRPO_SANDBOX_H
#define GRPO_SANDBOX_H

#include <stddef.h>

#include "core/status.h"

typedef enum {
    SANDBOX_AUTO = 0,  /* bwrap when the start-up probe succeeded, else the fallback */
    SANDBOX_BWRAP,     /* bwrap or an error */
    SANDBOX_FALLBACK   /* seccomp + Landlock + rlimits only (tests use it to cover that path) */
} sandbox_mode;

typedef struct {
    double cpu_time_s;          /* RLIMIT_CPU (soft = ceil, hard = ceil + 1); also checked after the run */
    double wall_time_s;         /* wall clock; <= 0 means 1.5 * cpu_time_s + 0.5 */
    long memory_mb;             /* RLIMIT_AS */
    int max_processes;          /* RLIMIT_NPROC, counted per sandbox uid (see sandbox.c) */
    long max_file_mb;           /* RLIMIT_FSIZE */
    int max_open_files;         /* RLIMIT_NOFILE */
    long tmp_mb;                /* size of the private /tmp tmpfs (bwrap mode) */
    size_t output_limit_bytes;  /* cap on stdout and on stderr; past it the run is killed */
} sandbox_limits;

/* 2 s CPU, 256 MiB, 32 processes, 16 MiB files, 64 fds, 64 MiB /tmp, 8 MiB output. */
void sandbox_limits_default(sandbox_limits *limits);

/* In bwrap mode the exit status comes through bwrap, which reports a program killed by
 * signal s as exit code 128 + s: such codes are read back as signals (a program that
 * itself exits with 129..192 is taken for one killed by a signal). */
typedef struct {
    int exited;            /* 1: ended by exit(), exit_code is valid */
    int exit_code;
    int term_signal;       /* the signal that ended it, 0 if none */
    int wall_timeout;      /* 1: killed by the wall clock */
    int output_exceeded;   /* 1: killed for writing more than output_limit_bytes */
    double wall_s;         /* from spawn to reap */
    double cpu_s;          /* user + system of everything the run reaped */
    long max_rss_kb;       /* peak resident set of the largest process */
    char *out;             /* stdout, NUL-terminated, at most output_limit_bytes */
    size_t out_len;
    char *err;             /* the first SANDBOX_STDERR_KEEP bytes of stderr, NUL-terminated */
    size_t err_len;
} sandbox_result;

#define SANDBOX_STDERR_KEEP 65536
#define SANDBOX_DIR_INSIDE "/box"   /* where the work dir appears inside a bwrap sandbox */

/* Frees out/err and zeroes the result; NULL is a no-op. */
void sandbox_result_clear(sandbox_result *result);

typedef struct sandbox sandbox;

/* A fresh work directory (under $TMPDIR or /tmp) ready to run commands in. The mode is
 * chosen once per process by probing (see sandbox_available_mode). Fails with
 * GRPO_ERR_UNSUPPORTED when mode is SANDBOX_BWRAP and bwrap does not work here. */
grpo_status sandbox_create(sandbox_mode mode, sandbox **out);
/* Kills anything the sandbox still runs, removes its directory. NULL is a no-op. */
void sandbox_free(sandbox *sb);

sandbox_mode sandbox_mode_of(const sandbox *sb);   /* SANDBOX_BWRAP or SANDBOX_FALLBACK */
const char *sandbox_workdir(const sandbox *sb);    /* host path of the work dir */
/* The work dir as the sandboxed program sees it (SANDBOX_DIR_INSIDE, or the host path). */
const char *sandbox_workdir_inside(const sandbox *sb);

/* Writes `name` (a plain file name, no '/') into the work dir, readable by the sandbox. */
grpo_status sandbox_write_file(sandbox *sb, const char *name, const void *data, size_t len);

/* Removes everything in the work dir except the plain names in keep (NULL-ended), so
 * one test's files neither reach the next nor pile up on disk. */
void sandbox_clean(sandbox *sb, const char *const *keep);

/* Runs argv (argv[0] an absolute path, or "./name" for a file in the work dir; NULL-
 * terminated) with the work dir as cwd, stdin_data on stdin, under `limits`. Fills
 * `result` (the caller clears it) and returns GRPO_OK whenever the program ran, however
 * it ended; an error only when the sandbox itself could not be set up. */
grpo_status sandbox_run(sandbox *sb, const char *const *argv, const void *stdin_data, size_t stdin_len,
                        const sandbox_limits *limits, sandbox_result *result);

/* What SANDBOX_AUTO resolves to in this process (probes once, thread-safe; the first
 * call may take ~20 ms). GRPO_SANDBOX=fallback in the environment forces the fallback. */
sandbox_mode sandbox_available_mode(void);
const char *sandbox_mode_name(sandbox_mode mode);
/* Interpreters and compilers found at probe time (NULL when absent): python3 (GRPO_PYTHON
 * overrides; /usr/bin/python3 preferred) and gcc (GRPO_GCC overrides). */
const char *sandbox_python_path(void);
const char *sandbox_gcc_path(void);
/* 1 when a seccomp filter is applied (libseccomp was found at build time and compiled it). */
int sandbox_has_seccomp(void);
/* The uids this process's runs use: [first, first + count) when we are root (each
 * sandbox takes the next one, round robin); count 0 when runs keep our own uid. */
void sandbox_uid_window(unsigned *first, unsigned *count);

#endif
