/* Internals shared by the sandbox_*.c files: the process-wide probe results, the
 * spawn primitive (a vfork-style child that only makes system calls before exec), the
 * seccomp program and the Landlock ruleset. Not for use outside verifiers/sandbox*. */
#ifndef GRPO_SANDBOX_IMPL_H
#define GRPO_SANDBOX_IMPL_H

#include <limits.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "verifiers/sandbox.h"

/* One BPF program as the kernel takes it (struct sock_filter is 8 bytes). */
typedef struct {
    unsigned char *bytes;   /* struct sock_filter[count] */
    unsigned short count;
} sandbox_bpf;

/* What the probe found, filled once per process (sandbox_env_get). Read-only afterwards. */
typedef struct {
    sandbox_mode mode;              /* what AUTO means here */
    int bwrap_ok;                   /* the bwrap smoke run worked */
    char bwrap[PATH_MAX];           /* "" when not found */
    char python[PATH_MAX];
    char gcc[PATH_MAX];
    char python_prefix[PATH_MAX];   /* extra read-only bind when python lives outside /usr; "" if none */
    int as_root;                    /* euid 0: each run gets its own unprivileged uid */
    unsigned uid_base, uid_span;    /* run uids are uid_base + k, k < uid_span (1 span: shared uid) */
    sandbox_bpf seccomp_bwrap;      /* count 0 when seccomp is unavailable */
    sandbox_bpf seccomp_fallback;
    pid_t trainer_pid;              /* the process that probed (the fallback filter protects it) */
} sandbox_env;

const sandbox_env *sandbox_env_get(void);

/* Seccomp: compiles the deny list (EPERM) for bwrap runs or for fallback runs (which
 * also forbid all sockets and signalling the trainer). Returns 0 and fills prog, or -1
 * when libseccomp is not compiled in or failed (prog left empty). */
int sandbox_seccomp_build(int fallback, pid_t trainer_pid, sandbox_bpf *prog);

/* Landlock: a ruleset fd allowing read/execute under each of ro_paths (NULL-ended) and
 * everything under rw_dir, nothing else; -1 when the kernel has no Landlock. */
int sandbox_landlock_ruleset(const char *rw_dir, const char *const *ro_paths, const char *const *rw_files);

#define SANDBOX_MAX_RLIMITS 8

typedef struct {
    const char *path;            /* absolute path given to execve */
    char *const *argv;
    char *const *envp;
    const char *chdir_to;        /* NULL: stay */
    int fd_in, fd_out, fd_err;   /* become 0, 1, 2 */
    int extra_fd[2];             /* become 3 and 4 when >= 0 */
    int new_session;             /* 1: setsid (fallback); 0: own process group (bwrap) */
    int n_rlimits;
    int rlimit_resource[SANDBOX_MAX_RLIMITS];
    struct rlimit rlimit_value[SANDBOX_MAX_RLIMITS];
    int change_uid;              /* 1: setgroups([]), setresgid(gid), setresuid(uid) */
    uid_t uid;
    gid_t gid;
    int landlock_fd;             /* >= 0: restrict_self with it (fallback) */
    const sandbox_bpf *seccomp;  /* non-NULL: loaded before exec (fallback) */
} sandbox_spawn_spec;

/* Starts the child described by spec. Returns its pid, or -1 with a grpo_fail message
 * naming the step that failed in the child (chdir, setuid, exec, ...). */
pid_t sandbox_spawn(const sandbox_spawn_spec *spec);

/* Sends SIGKILL to every process of `uid` (run as that uid, kill(-1) until none is
 * left); used after fallback runs whose children may have left their session. */
void sandbox_kill_uid(uid_t uid, gid_t gid);

double sandbox_now(void);   /* CLOCK_MONOTONIC seconds */

#endif
