/* The spawn primitive of the sandbox: a child made with clone(CLONE_VM | CLONE_VFORK)
 * (no copy of a large trainer's page tables, as posix_spawn does) that sets up fds,
 * session, rlimits, uid, Landlock and seccomp with raw system calls only, then execs.
 * Raw syscalls because the child shares the parent's memory: no libc locks, no
 * sanitizer interceptors, no glibc set*id broadcast to threads that are not there. */
#include "verifiers/sandbox_impl.h"

#include <errno.h>
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif

#define CHILD_NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))

enum {
    STEP_NONE = 0, STEP_SIGNALS, STEP_SESSION, STEP_DUP, STEP_CHDIR, STEP_RLIMIT, STEP_SETGROUPS,
    STEP_SETGID, STEP_SETUID, STEP_PDEATHSIG, STEP_PARENT_GONE, STEP_NO_NEW_PRIVS, STEP_LANDLOCK,
    STEP_SECCOMP, STEP_EXEC
};
static const char *const step_names[] = {
    "", "reset signals", "new session/group", "dup fds", "chdir", "setrlimit", "setgroups",
    "setresgid", "setresuid", "PR_SET_PDEATHSIG", "parent exited", "PR_SET_NO_NEW_PRIVS",
    "landlock_restrict_self", "seccomp filter", "execve"};

typedef struct {
    const sandbox_spawn_spec *spec;
    long parent;
    volatile int err_no;
    volatile int err_step;
} child_ctx;

/* The kernel's struct sigaction (x86_64, aarch64 layout; no restorer needed for SIG_DFL). */
struct kernel_sigaction_dfl {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

CHILD_NO_SANITIZE static int child_main(void *arg) {
    child_ctx *c = arg;
    const sandbox_spawn_spec *s = c->spec;
    int step = STEP_SIGNALS;
    struct kernel_sigaction_dfl dfl = {0};   /* SIG_DFL, no flags, empty mask */
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);

    step = STEP_SESSION;
    if ((s->new_session ? syscall(SYS_setsid) : syscall(SYS_setpgid, 0, 0)) < 0) goto fail;

    step = STEP_DUP;
    int src[5] = {s->fd_in, s->fd_out, s->fd_err, s->extra_fd[0], s->extra_fd[1]};
    int tmp[5];
    for (int i = 0; i < 5; i++) {
        tmp[i] = -1;
        if (src[i] >= 0 && (tmp[i] = (int)syscall(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 64)) < 0) goto fail;
    }
    for (int i = 0; i < 5; i++)
        if (tmp[i] >= 0 && syscall(SYS_dup3, tmp[i], i, 0) < 0) goto fail;

    step = STEP_CHDIR;
    if (s->chdir_to && syscall(SYS_chdir, s->chdir_to) < 0) goto fail;

    step = STEP_RLIMIT;
    for (int i = 0; i < s->n_rlimits; i++)
        if (syscall(SYS_prlimit64, 0, s->rlimit_resource[i], &s->rlimit_value[i], NULL) < 0) goto fail;

    if (s->change_uid) {
        step = STEP_SETGROUPS;
        if (syscall(SYS_setgroups, 0, NULL) < 0) goto fail;
        step = STEP_SETGID;
        if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0) goto fail;
        step = STEP_SETUID;
        if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) goto fail;
    }
    /* After the uid change: a credential change clears the parent-death signal. */
    step = STEP_PDEATHSIG;
    if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) goto fail;
    step = STEP_PARENT_GONE;
    if (syscall(SYS_getppid) != c->parent) { errno = ESRCH; goto fail; }

    if (s->landlock_fd >= 0 || s->seccomp) {
        step = STEP_NO_NEW_PRIVS;
        if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) goto fail;
    }
    if (s->landlock_fd >= 0) {
        step = STEP_LANDLOCK;
        if (syscall(SYS_landlock_restrict_self, s->landlock_fd, 0) < 0) goto fail;
    }
    /* Everything but 0..4 goes: the trainer's files (run store, sockets) never leak in. */
    if (syscall(SYS_close_range, 5, ~0U, 0) < 0)
        for (int fd = 5; fd < 4096; fd++) syscall(SYS_close, fd);

    if (s->seccomp) {
        step = STEP_SECCOMP;
        struct sock_fprog prog = {.len = s->seccomp->count, .filter = (struct sock_filter *)s->seccomp->bytes};
        if (syscall(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) goto fail;
    }
    step = STEP_EXEC;
    uint64_t empty_mask = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty_mask, NULL, 8);
    syscall(SYS_execve, s->path, s->argv, s->envp);
fail:
    c->err_no = errno;
    c->err_step = step;
    syscall(SYS_exit_group, 127);
    return 127;
}

#define SPAWN_STACK (64 * 1024)

/* clone(CLONE_VM | CLONE_VFORK) with every signal blocked in this thread meanwhile, so
 * no handler of ours runs on the child's stack before it resets them. */
static pid_t clone_vfork(int (*fn)(void *), void *arg) {
    char *stack = mmap(NULL, SPAWN_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(fn, stack + SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, SPAWN_STACK);
    errno = saved;
    return pid;
}

pid_t sandbox_spawn(const sandbox_spawn_spec *spec) {
    child_ctx c = {.spec = spec, .parent = (long)getpid(), .err_no = 0, .err_step = STEP_NONE};
    pid_t pid = clone_vfork(child_main, &c);
    if (pid < 0) {
        grpo_fail(GRPO_ERR_IO, "%s:%d: clone for %s: %s", __FILE__, __LINE__, spec->path, strerror(errno));
        return -1;
    }
    if (c.err_step != STEP_NONE) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        grpo_fail(GRPO_ERR_IO, "%s:%d: sandbox child for %s failed at %s: %s", __FILE__, __LINE__, spec->path,
                  step_names[c.err_step], strerror(c.err_no));
        return -1;
    }
    return pid;
}

typedef struct {
    uid_t uid;
    gid_t gid;
} kill_ctx;

CHILD_NO_SANITIZE static int kill_uid_main(void *arg) {
    kill_ctx *k = arg;
    struct kernel_sigaction_dfl dfl = {0};
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
    if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, k->gid, k->gid, k->gid) < 0 ||
        syscall(SYS_setresuid, k->uid, k->uid, k->uid) < 0)
        syscall(SYS_exit_group, 1);
    /* kill(-1) reaches every process this uid may signal except ourselves (its return
     * value says nothing about whether any was found: EPERM ones count as tried). */
    syscall(SYS_kill, -1, SIGKILL);
    syscall(SYS_exit_group, 0);
    return 0;
}

/* 1 when a live (not zombie) process with real uid `uid` exists, from /proc. */
static int uid_has_processes(uid_t uid) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int found = 0;
    struct dirent *ent;
    char path[300], buf[1024];
    while (!found && (ent = readdir(d)) != NULL) {
        if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/status", ent->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        const char *state = strstr(buf, "\nState:");
        const char *uid_line = strstr(buf, "\nUid:");
        unsigned long ruid;
        if (!uid_line || sscanf(uid_line + 5, "%lu", &ruid) != 1 || ruid != uid) continue;
        if (state && (strstr(state, "State:\tZ") == state + 1 || strstr(state, "State:\tX") == state + 1)) continue;
        found = 1;
    }
    closedir(d);
    return found;
}

void sandbox_kill_uid(uid_t uid, gid_t gid) {
    /* Never as root or as ourselves: kill(-1) would take the machine or the trainer down. */
    if (uid == 0 || uid == getuid()) return;
    kill_ctx k = {uid, gid};
    /* Sweep until no live process of the uid is left (a fork bomb refills during a
     * sweep); bounded, since RLIMIT_NPROC bounds how many can be made per sweep. */
    for (int sweep = 0; sweep < 200; sweep++) {
        pid_t pid = clone_vfork(kill_uid_main, &k);
        if (pid < 0) return;
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (!uid_has_processes(uid)) return;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
}

double sandbox_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
