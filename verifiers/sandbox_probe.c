/* The sandbox's start-up probe, once per process: find bwrap, python3 and gcc,
 * compile the seccomp programs, decide the uid scheme, and try one bwrap run. Where
 * bwrap cannot run, say so loudly once: the fallback isolates far less. */
#include "verifiers/sandbox_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

static sandbox_env probe_env;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

/* Declared here, defined in sandbox.c: one run of argv (NULL: /usr/bin/true) in `mode`
 * with env e. Returns 0 when it exited 0; otherwise -1 with a grpo_fail message. */
int sandbox_smoke_test(const sandbox_env *e, sandbox_mode mode, unsigned uid_offset, const char *const *argv);

static int is_executable(const char *path) {
    struct stat st;
    return path && path[0] == '/' && stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* override (an environment variable's value) wins, then the preferred path, then PATH. */
static void find_program(const char *override, const char *preferred, const char *name, char *out) {
    out[0] = '\0';
    if (override && override[0]) {
        if (is_executable(override)) snprintf(out, PATH_MAX, "%s", override);
        else log_warn("sandbox: %s=%s is not an executable absolute path; ignored", name, override);
        if (out[0]) return;
    }
    if (is_executable(preferred)) {
        snprintf(out, PATH_MAX, "%s", preferred);
        return;
    }
    const char *path = getenv("PATH");
    if (!path) return;
    char dir[PATH_MAX], cand[PATH_MAX + 64];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
            snprintf(cand, sizeof cand, "%s/%s", dir, name);
            char real[PATH_MAX];
            /* Shims (pyenv) are scripts that need a home directory: follow to the real file. */
            if (is_executable(cand) && realpath(cand, real)) {
                snprintf(out, PATH_MAX, "%s", real);
                return;
            }
        }
        path += n + (path[n] == ':');
    }
}

static void loud_warning(const char *why) {
    log_warn("################################################################################");
    log_warn("# SANDBOX FALLBACK: bubblewrap cannot run here:");
    log_warn("#   %s", why);
    log_warn("# Untrusted code will run with seccomp + Landlock + rlimits + a new session only:");
    log_warn("# no mount, PID or network namespace. Install bubblewrap and allow user");
    log_warn("# namespaces (or run as root in a container that permits them) for full isolation.");
    log_warn("################################################################################");
}

static void probe(void) {
    sandbox_env *e = &probe_env;
    memset(e, 0, sizeof *e);
    e->trainer_pid = getpid();
    e->as_root = geteuid() == 0;
    /* Run uids: a window unlikely to hold real users (below systemd's dynamic range),
     * offset by our pid so two trainers on one host rarely share one. */
    e->uid_base = 40000;
    e->uid_span = 16384;
    find_program(getenv("GRPO_BWRAP"), "/usr/bin/bwrap", "bwrap", e->bwrap);
    find_program(getenv("GRPO_PYTHON"), "/usr/bin/python3", "python3", e->python);
    find_program(getenv("GRPO_GCC"), "/usr/bin/gcc", "gcc", e->gcc);
    if (sandbox_seccomp_build(0, e->trainer_pid, &e->seccomp_bwrap) != 0 ||
        sandbox_seccomp_build(1, e->trainer_pid, &e->seccomp_fallback) != 0) {
        log_warn("sandbox: no seccomp filter (%s): judged programs may call ptrace, mount, ... "
                 "(namespaces and rlimits still apply)",
#ifdef GRPO_HAVE_SECCOMP
                 "libseccomp failed to compile it"
#else
                 "built without libseccomp"
#endif
        );
        free(e->seccomp_bwrap.bytes);
        free(e->seccomp_fallback.bytes);
        memset(&e->seccomp_bwrap, 0, sizeof e->seccomp_bwrap);
        memset(&e->seccomp_fallback, 0, sizeof e->seccomp_fallback);
    }

    const char *forced = getenv("GRPO_SANDBOX");
    char why[512] = "";
    if (!e->bwrap[0]) {
        snprintf(why, sizeof why, "no bwrap executable (looked at /usr/bin/bwrap and PATH)");
    } else if (sandbox_smoke_test(e, SANDBOX_BWRAP, 0, NULL) != 0) {
        snprintf(why, sizeof why, "%s", grpo_error_message());
        if (e->as_root) {
            /* Perhaps our uid window is not mapped in this container: one shared uid. */
            e->uid_base = 65534;
            e->uid_span = 1;
            if (sandbox_smoke_test(e, SANDBOX_BWRAP, 0, NULL) == 0) why[0] = '\0';
        }
    }
    e->bwrap_ok = why[0] == '\0';
    if (e->bwrap_ok && forced && strcmp(forced, "fallback") == 0) {
        e->mode = SANDBOX_FALLBACK;
        log_warn("sandbox: GRPO_SANDBOX=fallback: running untrusted code WITHOUT bubblewrap namespaces");
    } else {
        e->mode = e->bwrap_ok ? SANDBOX_BWRAP : SANDBOX_FALLBACK;
        if (!e->bwrap_ok) loud_warning(why);
    }
    /* 64 slots of 256 uids: two trainers share a slot with odds 1/64; within one,
     * a uid comes back only after 256 further sandboxes (never while one is running
     * unless 256 run at once). */
    if (e->as_root && e->uid_span > 1) e->uid_base += (unsigned)(e->trainer_pid % 64) * 256, e->uid_span = 256;
    /* Bound only now, so that an unreadable prefix cannot fail the bwrap probe above. */
    if (e->python[0] && strncmp(e->python, "/usr/", 5) != 0) {
        /* e.g. /opt/py/bin/python3 -> bind /opt/py read-only into the sandbox */
        memcpy(e->python_prefix, e->python, sizeof e->python_prefix);
        for (int cut = 0; cut < 2; cut++) {
            char *slash = strrchr(e->python_prefix, '/');
            if (slash && slash != e->python_prefix) *slash = '\0';
        }
    }
    /* An interpreter outside /usr (a virtualenv, pyenv under a private home) may not
     * start as the sandbox's uid: say so now rather than judge every program wrong. */
    if (e->python[0]) {
        const char *argv[] = {e->python, "-I", "-c", "pass", NULL};
        if (sandbox_smoke_test(e, e->mode, 1, argv) != 0)
            log_error("sandbox: %s does not start inside the %s sandbox (%s); every python program will fail. "
                      "Point GRPO_PYTHON at a system python3 (/usr/bin/python3).",
                      e->python, sandbox_mode_name(e->mode), grpo_error_message());
    }
    grpo_error_clear();
}

const sandbox_env *sandbox_env_get(void) {
    pthread_once(&probe_once, probe);
    return &probe_env;
}

sandbox_mode sandbox_available_mode(void) { return sandbox_env_get()->mode; }

const char *sandbox_mode_name(sandbox_mode mode) {
    switch (mode) {
    case SANDBOX_AUTO: return "auto";
    case SANDBOX_BWRAP: return "bwrap";
    case SANDBOX_FALLBACK: return "fallback";
    }
    return "?";
}

const char *sandbox_python_path(void) {
    const sandbox_env *e = sandbox_env_get();
    return e->python[0] ? e->python : NULL;
}

const char *sandbox_gcc_path(void) {
    const sandbox_env *e = sandbox_env_get();
    return e->gcc[0] ? e->gcc : NULL;
}

int sandbox_has_seccomp(void) { return sandbox_env_get()->seccomp_bwrap.count > 0; }

void sandbox_uid_window(unsigned *first, unsigned *count) {
    const sandbox_env *e = sandbox_env_get();
    *first = e->as_root ? e->uid_base : (unsigned)getuid();
    *count = e->as_root ? e->uid_span : 0;
}
