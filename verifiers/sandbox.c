/* The sandbox object and one run: work directory, command line (bwrap or fallback),
 * rlimits, stdin from a memfd, stdout/stderr through pipes read with poll under a
 * wall clock and an output cap, and a kill that leaves nothing behind.
 *
 * Killing everything: in bwrap mode the run has its own PID namespace whose init is
 * bwrap's reaper; we learn its host pid from --info-fd and SIGKILL it (through a
 * pidfd), and the kernel kills the rest of the namespace before that init can be
 * reaped, so once the outer bwrap is reaped nothing of the run exists. In fallback
 * mode the run is its own session; we kill that process group and, when we are root
 * (each run has its own uid), every process of the run's uid (sandbox_kill_uid). A
 * non-root fallback cannot find children that left the session: the loud warning. */
#include "verifiers/sandbox_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

struct sandbox {
    const sandbox_env *env;
    sandbox_mode mode;
    char root[PATH_MAX - 64];   /* private run dir, 0711 */
    char work[PATH_MAX];   /* root/box: the program's cwd */
    int change_uid;
    uid_t uid;
    gid_t gid;
    int landlock_fd;
};

int sandbox_smoke_test(const sandbox_env *e, sandbox_mode mode, unsigned uid_offset, const char *const *argv);

static atomic_uint run_counter;

void sandbox_limits_default(sandbox_limits *l) {
    l->cpu_time_s = 2.0;
    l->wall_time_s = 0;
    l->memory_mb = 256;
    l->max_processes = 32;
    l->max_file_mb = 16;
    l->max_open_files = 64;
    l->tmp_mb = 64;
    l->output_limit_bytes = 8u << 20;
}

void sandbox_result_clear(sandbox_result *r) {
    if (!r) return;
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

sandbox_mode sandbox_mode_of(const sandbox *sb) { return sb->mode; }
const char *sandbox_workdir(const sandbox *sb) { return sb->work; }
const char *sandbox_workdir_inside(const sandbox *sb) {
    return sb->mode == SANDBOX_BWRAP ? SANDBOX_DIR_INSIDE : sb->work;
}

/* ---- directories ------------------------------------------------------------ */

/* Removes everything under dirfd (a directory the run may have filled with odd modes). */
static void remove_tree_at(int dirfd, int depth) {
    if (depth > 64) return;
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        if (unlinkat(dirfd, ent->d_name, 0) == 0) continue;
        if (errno != EISDIR && errno != EPERM) continue;
        fchmodat(dirfd, ent->d_name, 0700, 0);
        int sub = openat(dirfd, ent->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) remove_tree_at(sub, depth + 1);
        unlinkat(dirfd, ent->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

static void remove_tree(const char *path) {
    chmod(path, 0700);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) remove_tree_at(fd, 0);
    rmdir(path);
}

static grpo_status sandbox_open(const sandbox_env *e, sandbox_mode mode, unsigned uid_offset, sandbox **out) {
    *out = NULL;
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory for a sandbox", __FILE__, __LINE__);
    sb->env = e;
    sb->mode = mode;
    sb->landlock_fd = -1;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || tmp[0] != '/' || strlen(tmp) > sizeof sb->root - 32) tmp = "/tmp";
    snprintf(sb->root, sizeof sb->root, "%s/grpo-sandbox-XXXXXX", tmp);
    if (!mkdtemp(sb->root)) {
        grpo_status s = grpo_fail(GRPO_ERR_IO, "%s:%d: mkdtemp %s: %s", __FILE__, __LINE__, sb->root, strerror(errno));
        free(sb);
        return s;
    }
    snprintf(sb->work, sizeof sb->work, "%s/box", sb->root);
    if (e->as_root) {
        sb->change_uid = 1;
        sb->uid = sb->gid = e->uid_base + uid_offset % e->uid_span;
    }
    if (chmod(sb->root, 0711) != 0 || mkdir(sb->work, 0700) != 0 ||
        (sb->change_uid && chown(sb->work, sb->uid, sb->gid) != 0)) {
        grpo_status s = grpo_fail(GRPO_ERR_IO, "%s:%d: preparing %s: %s", __FILE__, __LINE__, sb->work, strerror(errno));
        sandbox_free(sb);
        return s;
    }
    if (mode == SANDBOX_FALLBACK) {
        const char *ro[] = {"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc",
                            e->python_prefix[0] ? e->python_prefix : NULL, NULL};
        const char *rw_files[] = {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", NULL};
        sb->landlock_fd = sandbox_landlock_ruleset(sb->work, ro, rw_files);
        static atomic_int warned;
        if (sb->landlock_fd < 0 && atomic_exchange(&warned, 1) == 0)
            log_warn("sandbox: no Landlock in this kernel: fallback runs can read and write "
                     "whatever their uid may (host /tmp included)");
    }
    *out = sb;
    return GRPO_OK;
}

grpo_status sandbox_create(sandbox_mode mode, sandbox **out) {
    *out = NULL;
    const sandbox_env *e = sandbox_env_get();
    if (mode == SANDBOX_AUTO) mode = e->mode;
    if (mode == SANDBOX_BWRAP && !e->bwrap_ok)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s:%d: bwrap sandbox requested but bwrap does not run here",
                         __FILE__, __LINE__);
    return sandbox_open(e, mode, atomic_fetch_add(&run_counter, 1), out);
}

void sandbox_free(sandbox *sb) {
    if (!sb) return;
    /* bwrap runs die with their PID namespace; fallback runs may have left the session. */
    if (sb->change_uid && sb->mode == SANDBOX_FALLBACK) sandbox_kill_uid(sb->uid, sb->gid);
    if (sb->landlock_fd >= 0) close(sb->landlock_fd);
    if (sb->root[0]) remove_tree(sb->root);
    free(sb);
}

void sandbox_clean(sandbox *sb, const char *const *keep) {
    int fd = open(sb->work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        int kept = 0;
        for (int i = 0; keep && keep[i] && !kept; i++) kept = strcmp(keep[i], ent->d_name) == 0;
        if (kept || unlinkat(fd, ent->d_name, 0) == 0) continue;
        fchmodat(fd, ent->d_name, 0700, 0);
        int sub = openat(fd, ent->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) remove_tree_at(sub, 1);
        unlinkat(fd, ent->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

grpo_status sandbox_write_file(sandbox *sb, const char *name, const void *data, size_t len) {
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: sandbox file name must be a plain name, found \"%s\"",
                         __FILE__, __LINE__, name);
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", sb->work, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return grpo_fail(GRPO_ERR_IO, "%s:%d: open %s: %s", __FILE__, __LINE__, path, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            grpo_status s = grpo_fail(GRPO_ERR_IO, "%s:%d: write %s: %s", __FILE__, __LINE__, path, strerror(errno));
            close(fd);
            return s;
        }
        p += n;
        left -= (size_t)n;
    }
    if (sb->change_uid && fchown(fd, sb->uid, sb->gid) != 0) {
        grpo_status s = grpo_fail(GRPO_ERR_IO, "%s:%d: chown %s: %s", __FILE__, __LINE__, path, strerror(errno));
        close(fd);
        return s;
    }
    close(fd);
    return GRPO_OK;
}

/* ---- command line ----------------------------------------------------------- */

#define ARGV_OWNED_MAX 16

typedef struct {
    char **v;
    int n, cap;
    char *owned[ARGV_OWNED_MAX];   /* strings we made (freed after the run) */
    int n_owned;
} argv_builder;

static int argv_push(argv_builder *b, const char *s) {
    if (b->n + 2 > b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        char **v = realloc(b->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = (char *)s;
    b->v[b->n] = NULL;
    return 0;
}

static const char *argv_own(argv_builder *b, const char *fmt, long value) {
    if (b->n_owned >= ARGV_OWNED_MAX) return NULL;
    char *s = malloc(32);
    if (!s) return NULL;
    snprintf(s, 32, fmt, value);
    b->owned[b->n_owned++] = s;
    return s;
}

static void argv_free(argv_builder *b) {
    for (int i = 0; i < b->n_owned; i++) free(b->owned[i]);
    free(b->v);
}

/* The host's layout of one top-level system path, mirrored into the sandbox:
 * a symlink (merged /usr: /lib -> usr/lib) stays a symlink, a directory is bound. */
static int push_system_path(argv_builder *b, const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) return 0;
        target[n] = '\0';
        char *copy = strdup(target);
        if (!copy || b->n_owned >= ARGV_OWNED_MAX) {
            free(copy);
            return -1;
        }
        b->owned[b->n_owned++] = copy;
        return argv_push(b, "--symlink") | argv_push(b, copy) | argv_push(b, path);
    }
    if (S_ISDIR(st.st_mode)) return argv_push(b, "--ro-bind") | argv_push(b, path) | argv_push(b, path);
    return 0;
}

static int build_bwrap_argv(const sandbox *sb, const sandbox_limits *lim, const char *const *cmd,
                            int with_seccomp, argv_builder *b) {
    int rc = 0;
    const char *fixed[] = {sb->env->bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
                           "--die-with-parent", "--new-session", "--as-pid-1", "--ro-bind", "/usr", "/usr", NULL};
    for (int i = 0; fixed[i]; i++) rc |= argv_push(b, fixed[i]);
    const char *system_paths[] = {"/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"};
    for (size_t i = 0; i < sizeof system_paths / sizeof *system_paths; i++) rc |= push_system_path(b, system_paths[i]);
    rc |= argv_push(b, "--ro-bind-try") | argv_push(b, "/etc/ld.so.cache") | argv_push(b, "/etc/ld.so.cache");
    rc |= argv_push(b, "--ro-bind-try") | argv_push(b, "/etc/alternatives") | argv_push(b, "/etc/alternatives");
    if (sb->env->python_prefix[0])
        rc |= argv_push(b, "--ro-bind") | argv_push(b, sb->env->python_prefix) | argv_push(b, sb->env->python_prefix);
    const char *tmp_size = argv_own(b, "%ld", (lim->tmp_mb > 0 ? lim->tmp_mb : 64) << 20);
    if (!tmp_size) return -1;
    rc |= argv_push(b, "--proc") | argv_push(b, "/proc") | argv_push(b, "--dev") | argv_push(b, "/dev");
    rc |= argv_push(b, "--size") | argv_push(b, tmp_size) | argv_push(b, "--tmpfs") | argv_push(b, "/tmp");
    /* --dev leaves /dev/shm an unbounded directory of its tmpfs: cap it like /tmp. */
    rc |= argv_push(b, "--size") | argv_push(b, tmp_size) | argv_push(b, "--tmpfs") | argv_push(b, "/dev/shm");
    rc |= argv_push(b, "--bind") | argv_push(b, sb->work) | argv_push(b, SANDBOX_DIR_INSIDE);
    rc |= argv_push(b, "--chdir") | argv_push(b, SANDBOX_DIR_INSIDE);
    rc |= argv_push(b, "--remount-ro") | argv_push(b, "/");
    if (with_seccomp) rc |= argv_push(b, "--seccomp") | argv_push(b, "3");
    rc |= argv_push(b, "--info-fd") | argv_push(b, "4") | argv_push(b, "--");
    for (int i = 0; cmd[i]; i++) rc |= argv_push(b, cmd[i]);
    return rc;
}

/* ---- one run ---------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap, limit;   /* limit: bytes kept */
    size_t seen;              /* bytes read in all */
} capture;

/* Reads what is there; returns 0 on EOF, 1 when the fd stays open. */
static int capture_read(int fd, capture *c) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 1 : 0;
        c->seen += (size_t)n;
        size_t keep = c->len < c->limit ? c->limit - c->len : 0;
        if ((size_t)n < keep) keep = (size_t)n;
        if (keep > 0) {
            if (c->len + keep + 1 > c->cap) {
                size_t cap = c->cap ? c->cap : 4096;
                while (cap < c->len + keep + 1) cap *= 2;
                char *d = realloc(c->data, cap);
                if (!d) return 0;
                c->data = d;
                c->cap = cap;
            }
            memcpy(c->data + c->len, buf, keep);
            c->len += keep;
            c->data[c->len] = '\0';
        }
        if ((size_t)n < sizeof buf) return 1;
    }
}

static int memfd_with(const char *name, const void *data, size_t len) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -1;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Parses "child-pid": N from bwrap's --info-fd JSON; 0 if absent. */
static pid_t parse_child_pid(const char *json) {
    const char *p = json ? strstr(json, "\"child-pid\"") : NULL;
    if (!p) return 0;
    p = strchr(p, ':');
    if (!p) return 0;
    long v = strtol(p + 1, NULL, 10);
    return v > 1 && v < (1L << 22) ? (pid_t)v : 0;
}

/* The parent pid of `pid` from /proc, -1 when unreadable. */
static pid_t parent_of(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');   /* comm may hold spaces and parens */
    int ppid;
    char state;
    if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2) return -1;
    return (pid_t)ppid;
}

/* Processes of our own uid, for RLIMIT_NPROC when we cannot give the run its own uid. */
static int count_own_processes(void) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    uid_t me = getuid();
    struct dirent *ent;
    char path[300];
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
        struct stat st;
        snprintf(path, sizeof path, "/proc/%s", ent->d_name);
        if (stat(path, &st) == 0 && st.st_uid == me) n++;
    }
    closedir(d);
    return n;
}

static void add_rlimit(sandbox_spawn_spec *s, int resource, rlim_t soft, rlim_t hard) {
    GRPO_ASSERT(s->n_rlimits < SANDBOX_MAX_RLIMITS);
    s->rlimit_resource[s->n_rlimits] = resource;
    s->rlimit_value[s->n_rlimits].rlim_cur = soft;
    s->rlimit_value[s->n_rlimits].rlim_max = hard;
    s->n_rlimits++;
}

typedef struct {
    pid_t pid;          /* outer child: bwrap, or the program itself in fallback */
    int pidfd;          /* of pid, -1 when the kernel has none */
    pid_t init_pid;     /* bwrap: the namespace's init, validated; 0 unknown */
    int init_pidfd;
    int killed;
} run_procs;

static void kill_run(const sandbox *sb, run_procs *p) {
    if (p->killed) return;
    p->killed = 1;
    if (sb->mode == SANDBOX_BWRAP && p->init_pidfd >= 0) {
        /* The init's death takes the whole namespace; the outer bwrap then exits. */
        syscall(SYS_pidfd_send_signal, p->init_pidfd, SIGKILL, NULL, 0);
        return;
    }
    kill(-p->pid, SIGKILL);
    if (sb->change_uid && sb->mode == SANDBOX_FALLBACK) sandbox_kill_uid(sb->uid, sb->gid);
}

grpo_status sandbox_run(sandbox *sb, const char *const *argv, const void *stdin_data, size_t stdin_len,
                        const sandbox_limits *limits, sandbox_result *res) {
    memset(res, 0, sizeof *res);
    sandbox_limits lim;
    if (limits) lim = *limits;
    else sandbox_limits_default(&lim);
    if (!argv || !argv[0] || !(lim.cpu_time_s > 0) || lim.cpu_time_s > 3600 || lim.memory_mb <= 0 ||
        lim.max_processes <= 0 || lim.max_file_mb <= 0 || lim.max_open_files < 8 || lim.output_limit_bytes == 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s:%d: sandbox_run: bad command or limits (cpu %.3g s, memory %ld MiB, "
                         "processes %d, file %ld MiB, fds %d, output %zu B)", __FILE__, __LINE__, lim.cpu_time_s,
                         lim.memory_mb, lim.max_processes, lim.max_file_mb, lim.max_open_files, lim.output_limit_bytes);
    double wall = lim.wall_time_s > 0 ? lim.wall_time_s : 1.5 * lim.cpu_time_s + 0.5;
    const sandbox_env *e = sb->env;
    int bwrap = sb->mode == SANDBOX_BWRAP;
    const sandbox_bpf *filter = bwrap ? &e->seccomp_bwrap : &e->seccomp_fallback;
    int with_seccomp = filter->count > 0;

    grpo_status status = GRPO_OK;
    int fd_in = -1, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, info_pipe[2] = {-1, -1}, fd_seccomp = -1;
    argv_builder b = {0};
    run_procs procs = {.pid = -1, .pidfd = -1, .init_pidfd = -1};
    capture out = {.limit = lim.output_limit_bytes}, err = {.limit = SANDBOX_STDERR_KEEP}, info = {.limit = 4096};

    fd_in = memfd_with("grpo-stdin", stdin_data ? stdin_data : "", stdin_data ? stdin_len : 0);
    if (fd_in < 0 || pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
        (bwrap && pipe2(info_pipe, O_CLOEXEC) != 0)) {
        status = grpo_fail(GRPO_ERR_IO, "%s:%d: sandbox pipes: %s", __FILE__, __LINE__, strerror(errno));
        goto done;
    }
    if (bwrap && with_seccomp && (fd_seccomp = memfd_with("grpo-seccomp", filter->bytes, (size_t)filter->count * 8)) < 0) {
        status = grpo_fail(GRPO_ERR_IO, "%s:%d: seccomp memfd: %s", __FILE__, __LINE__, strerror(errno));
        goto done;
    }

    char env_home[PATH_MAX + 8], env_tmp[PATH_MAX + 8];
    snprintf(env_home, sizeof env_home, "HOME=%s", sandbox_workdir_inside(sb));
    snprintf(env_tmp, sizeof env_tmp, "TMPDIR=%s", bwrap ? "/tmp" : sb->work);
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", env_home, env_tmp, "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
                    "PYTHONDONTWRITEBYTECODE=1", NULL};

    sandbox_spawn_spec spec = {0};
    spec.envp = envp;
    spec.fd_in = fd_in;
    spec.fd_out = out_pipe[1];
    spec.fd_err = err_pipe[1];
    spec.extra_fd[0] = bwrap ? fd_seccomp : -1;
    spec.extra_fd[1] = bwrap ? info_pipe[1] : -1;
    spec.landlock_fd = bwrap ? -1 : sb->landlock_fd;
    spec.seccomp = (!bwrap && with_seccomp) ? filter : NULL;
    spec.change_uid = sb->change_uid;
    spec.uid = sb->uid;
    spec.gid = sb->gid;
    if (bwrap) {
        if (build_bwrap_argv(sb, &lim, argv, with_seccomp, &b) != 0) {
            status = grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory building the bwrap command", __FILE__, __LINE__);
            goto done;
        }
        spec.path = e->bwrap;
        spec.argv = b.v;
        spec.new_session = 0;
    } else {
        spec.path = argv[0];
        spec.argv = (char *const *)argv;
        spec.chdir_to = sb->work;
        spec.new_session = 1;
    }
    rlim_t cpu = (rlim_t)ceil(lim.cpu_time_s);
    add_rlimit(&spec, RLIMIT_CPU, cpu, cpu);   /* SIGKILL at the limit: SIGXCPU is ignored by a PID-1 program */
    add_rlimit(&spec, RLIMIT_AS, (rlim_t)lim.memory_mb << 20, (rlim_t)lim.memory_mb << 20);
    rlim_t nproc = (rlim_t)lim.max_processes;
    if (!sb->change_uid) nproc += (rlim_t)count_own_processes();   /* the limit counts all our processes */
    add_rlimit(&spec, RLIMIT_NPROC, nproc, nproc);
    add_rlimit(&spec, RLIMIT_FSIZE, (rlim_t)lim.max_file_mb << 20, (rlim_t)lim.max_file_mb << 20);
    add_rlimit(&spec, RLIMIT_NOFILE, (rlim_t)lim.max_open_files, (rlim_t)lim.max_open_files);
    add_rlimit(&spec, RLIMIT_CORE, 0, 0);
    add_rlimit(&spec, RLIMIT_STACK, 8u << 20, 8u << 20);

    double t0 = sandbox_now();
    procs.pid = sandbox_spawn(&spec);
    if (procs.pid < 0) {
        status = GRPO_ERR_IO;   /* message set by sandbox_spawn */
        goto done;
    }
    close(out_pipe[1]), out_pipe[1] = -1;
    close(err_pipe[1]), err_pipe[1] = -1;
    if (info_pipe[1] >= 0) close(info_pipe[1]), info_pipe[1] = -1;
    close(fd_in), fd_in = -1;
    fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
    if (info_pipe[0] >= 0) fcntl(info_pipe[0], F_SETFL, O_NONBLOCK);
    procs.pidfd = (int)syscall(SYS_pidfd_open, procs.pid, 0);

    int out_open = 1, err_open = 1, info_open = info_pipe[0] >= 0, exited = 0, wait_status = 0;
    struct rusage ru = {0};
    double deadline = t0 + wall, drain_until = 0;
    for (;;) {
        if (!exited) {
            int w = wait4(procs.pid, &wait_status, WNOHANG, &ru);
            if (w == procs.pid) {
                exited = 1;
                /* bwrap: its exit means the namespace is gone. Fallback: end what is left. */
                if (!bwrap) kill_run(sb, &procs);
                drain_until = sandbox_now() + 0.5;
            }
        }
        if (exited && !out_open && !err_open) break;
        double now = sandbox_now();
        if (exited && now >= drain_until) break;   /* a holder of the pipes escaped (non-root fallback) */
        if (!exited && now >= deadline && !procs.killed) {
            res->wall_timeout = 1;
            kill_run(sb, &procs);
            deadline = now + 2.0;   /* time for the kill to land */
        } else if (!exited && now >= deadline) {
            break;   /* the kill did not land in 2 s: the blocking reap below takes the outer process too */
        }
        struct pollfd pfd[4];
        int n = 0, i_out = -1, i_err = -1, i_info = -1;
        if (out_open) pfd[i_out = n++] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
        if (err_open) pfd[i_err = n++] = (struct pollfd){.fd = err_pipe[0], .events = POLLIN};
        if (info_open) pfd[i_info = n++] = (struct pollfd){.fd = info_pipe[0], .events = POLLIN};
        if (!exited && procs.pidfd >= 0) pfd[n++] = (struct pollfd){.fd = procs.pidfd, .events = POLLIN};
        double until = exited ? drain_until : deadline;
        int timeout_ms = (int)ceil((until - now) * 1000.0);
        if (procs.pidfd < 0 && !exited && timeout_ms > 10) timeout_ms = 10;   /* no pidfd: poll waitpid */
        if (timeout_ms < 0) timeout_ms = 0;
        int pr = poll(pfd, (nfds_t)n, timeout_ms);
        if (pr < 0 && errno != EINTR) break;
        if (pr <= 0) continue;
        if (i_out >= 0 && pfd[i_out].revents) out_open = capture_read(out_pipe[0], &out);
        if (i_err >= 0 && pfd[i_err].revents) err_open = capture_read(err_pipe[0], &err);
        if (i_info >= 0 && pfd[i_info].revents) {
            info_open = capture_read(info_pipe[0], &info);
            if (!procs.init_pid) {
                pid_t ip = parse_child_pid(info.data);
                /* Only bwrap's own child counts (parent check: never signal a stranger). */
                if (ip > 0 && parent_of(ip) == procs.pid) {
                    int fd = (int)syscall(SYS_pidfd_open, ip, 0);
                    if (fd >= 0 && parent_of(ip) == procs.pid) {
                        procs.init_pid = ip;
                        procs.init_pidfd = fd;
                    } else if (fd >= 0) {
                        close(fd);
                    }
                }
            }
        }
        if (!procs.killed && (out.seen > lim.output_limit_bytes || err.seen > lim.output_limit_bytes)) {
            res->output_exceeded = 1;
            kill_run(sb, &procs);
        }
    }
    if (!exited) {
        /* Only when a kill did not land in time (or poll failed): take the outer
         * process and its group directly and wait for it. */
        kill(-procs.pid, SIGKILL);
        kill(procs.pid, SIGKILL);
        while (wait4(procs.pid, &wait_status, 0, &ru) < 0 && errno == EINTR) {}
    }
    res->wall_s = sandbox_now() - t0;
    res->cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                 1e-6 * (double)ru.ru_stime.tv_usec;
    res->max_rss_kb = ru.ru_maxrss;
    if (WIFEXITED(wait_status)) {
        int code = WEXITSTATUS(wait_status);
        /* bwrap reports a child killed by signal s as exit code 128 + s. */
        if (bwrap && code > 128 && code < 128 + 65) res->term_signal = code - 128;
        else res->exited = 1, res->exit_code = code;
    } else if (WIFSIGNALED(wait_status)) {
        res->term_signal = WTERMSIG(wait_status);
    }
    res->out = out.data ? out.data : calloc(1, 1);
    res->out_len = out.len;
    res->err = err.data ? err.data : calloc(1, 1);
    res->err_len = err.len;
    out.data = err.data = NULL;
    if (!res->out || !res->err) {
        sandbox_result_clear(res);
        status = grpo_fail(GRPO_ERR_NOMEM, "%s:%d: out of memory for run output", __FILE__, __LINE__);
    }

done:
    if (procs.pidfd >= 0) close(procs.pidfd);
    if (procs.init_pidfd >= 0) close(procs.init_pidfd);
    int fds[] = {fd_in, out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], info_pipe[0], info_pipe[1], fd_seccomp};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(out.data);
    free(err.data);
    free(info.data);
    argv_free(&b);
    return status;
}

int sandbox_smoke_test(const sandbox_env *e, sandbox_mode mode, unsigned uid_offset, const char *const *argv) {
    sandbox *sb = NULL;
    if (sandbox_open(e, mode, uid_offset, &sb) != GRPO_OK) return -1;
    const char *true_path = access("/usr/bin/true", X_OK) == 0 ? "/usr/bin/true" : "/bin/true";
    const char *true_argv[] = {true_path, NULL};
    if (!argv) argv = true_argv;
    sandbox_limits lim;
    sandbox_limits_default(&lim);
    lim.wall_time_s = 10;
    sandbox_result r;
    int rc = -1;
    if (sandbox_run(sb, argv, NULL, 0, &lim, &r) == GRPO_OK) {
        if (r.exited && r.exit_code == 0) rc = 0;
        else grpo_fail(GRPO_ERR_UNSUPPORTED, "smoke run of %s exited %d (signal %d): %.300s", argv[0], r.exit_code,
                       r.term_signal, r.err ? r.err : "");
        sandbox_result_clear(&r);
    }
    sandbox_free(sb);
    return rc;
}
